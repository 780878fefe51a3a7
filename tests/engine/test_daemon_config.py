"""pyboxd's daemon configuration (issue 16, point 5): daemon.json's keys for
the containers' defaults (log driver and options, address pools, DNS,
ulimits), live restore and the roots, dockerd's errors for a key given twice
or unknown, and the API on TCP with mutual TLS, driven with the docker CLI.

One private pyboxd for the module (``configured``) runs with a daemon.json of
defaults, live-restore off, and a TLS listener on a free port of 127.0.0.1
whose CA, server and client certificates the test makes with openssl.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import uuid

import pytest

from support import fixtures
from support.paths import DOCKER, IMAGE, PYTHON, SRC
from support.pyboxd import Pyboxd
from support.unixhttp import api
from support.wait import wait_for

POOL_BASE = "10.213.0.0/16"
DEFAULTS = {
    "log-driver": "json-file",
    "log-opts": {"max-size": "1m", "max-file": "2"},
    "default-address-pools": [{"base": POOL_BASE, "size": 24}],
    "dns": ["192.0.2.53"],
    "dns-search": ["example.test"],
    "dns-opts": ["ndots:3"],
    "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1111, "Hard": 2222}},
    "live-restore": False,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: str, name: str) -> None:
    """A CA (NAME-ca.pem, NAME-ca-key.pem) and a certificate it signs for the
    server (NAME-server*.pem: 127.0.0.1, localhost) and one for a client
    (NAME-client*.pem)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", f"{name}-ca-key.pem", "-out", f"{name}-ca.pem",
            "-days", "2", "-subj", f"/CN={name} test CA", cwd=directory)
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                "extendedKeyUsage=serverAuth\n"),
                     ("client", "extendedKeyUsage=clientAuth\n")):
        with open(os.path.join(directory, f"{name}-{who}.ext"), "w") as f:
            f.write(ext)
        openssl("req", *ec, "-keyout", f"{name}-{who}-key.pem", "-out", f"{name}-{who}.csr",
                "-subj", f"/CN={who}", cwd=directory)
        openssl("x509", "-req", "-in", f"{name}-{who}.csr", "-CA", f"{name}-ca.pem",
                "-CAkey", f"{name}-ca-key.pem", "-CAcreateserial", "-days", "2",
                "-extfile", f"{name}-{who}.ext", "-out", f"{name}-{who}.pem", cwd=directory)


@pytest.fixture(scope="module")
def certs():
    fixtures.needs_root_and_docker_cli()
    directory = tempfile.mkdtemp(prefix="pybox-tls-")
    make_ca(directory, "good")
    make_ca(directory, "other")  # a CA pyboxd does not trust
    yield directory
    subprocess.run(["rm", "-rf", directory])


@pytest.fixture(scope="module")
def configured(certs):
    """A private pyboxd with DEFAULTS as its daemon.json and a TLS listener."""
    fixtures.needs_root_and_docker_cli()
    config = os.path.join(certs, "daemon.json")
    with open(config, "w") as f:
        json.dump(DEFAULTS, f)
    port = free_port()
    daemon = Pyboxd(extra_args=[
        "--config-file", config, "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
        "--tlscacert", os.path.join(certs, "good-ca.pem"),
        "--tlscert", os.path.join(certs, "good-server.pem"),
        "--tlskey", os.path.join(certs, "good-server-key.pem")])
    daemon.tcp = f"tcp://127.0.0.1:{port}"
    with fixtures.running(daemon) as d:
        yield d


@pytest.fixture
def made(configured):
    """Names of containers and networks this test makes, removed at the end."""
    book: list[str] = []
    yield book
    for name in book:
        configured.docker("rm", "-f", name, check=False)
        configured.docker("network", "rm", name, check=False)


def unique(prefix: str = "dc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def tls_docker(daemon, certs, *args, ca="good", client="good", cert=True, timeout=60,
               input=None):
    """The docker CLI over the TCP listener: verifying the server against
    ``ca``'s certificate, showing ``client``'s certificate (none if not ``cert``)."""
    flags = ["--tlsverify", "--tlscacert", os.path.join(certs, f"{ca}-ca.pem")]
    if cert:
        flags += ["--tlscert", os.path.join(certs, f"{client}-client.pem"),
                  "--tlskey", os.path.join(certs, f"{client}-client-key.pem")]
    return subprocess.run([DOCKER, *flags, "-H", daemon.tcp, *args], env=daemon.cli_env,
                          capture_output=True, text=True, timeout=timeout, input=input)


# -- the defaults ------------------------------------------------------------------------------
def test_info_reflects_the_configuration(configured):
    info = json.loads(configured.ok("info", "--format", "{{json .}}"))
    assert info["LoggingDriver"] == "json-file"
    assert info["LiveRestoreEnabled"] is False
    assert info["DockerRootDir"] == configured.data_root
    assert info["DefaultAddressPools"] == [{"Base": POOL_BASE, "Size": 24}]
    text = configured.ok("info")
    assert "Live Restore Enabled: false" in text
    assert f"Base: {POOL_BASE}, Size: 24" in text


def test_log_defaults_join_a_containers_own(configured, made):
    plain, own, other = unique(), unique(), unique()
    made += [plain, own, other]
    configured.ok("create", "--name", plain, IMAGE, "true")
    configured.ok("create", "--name", own, "--log-opt", "max-size=5m", IMAGE, "true")
    configured.ok("create", "--name", other, "--log-driver", "none", IMAGE, "true")
    assert configured.inspect(plain)["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}}
    assert configured.inspect(own)["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": "5m", "max-file": "2"}}
    # another driver: the default driver's options are not its own
    assert configured.inspect(other)["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}


def test_networks_get_subnets_from_the_default_address_pools(configured, made):
    name = unique("dcnet")
    made.append(name)
    configured.ok("network", "create", name)
    subnet = configured.inspect(name)["IPAM"]["Config"][0]["Subnet"]
    assert subnet.startswith("10.213.") and subnet.endswith("/24"), subnet
    explicit = unique("dcnet")
    made.append(explicit)
    configured.ok("network", "create", "--subnet", "10.214.7.0/24", explicit)
    assert configured.inspect(explicit)["IPAM"]["Config"][0]["Subnet"] == "10.214.7.0/24"


def test_dns_defaults_unless_the_container_sets_its_own(configured, made):
    default = configured.ok("run", "--rm", IMAGE, "cat", "/etc/resolv.conf")
    assert "nameserver 192.0.2.53" in default.splitlines(), default
    assert "search example.test" in default.splitlines(), default
    assert "options ndots:3" in default.splitlines(), default
    own = configured.ok("run", "--rm", "--dns", "192.0.2.54", "--dns-search", "own.test",
                        IMAGE, "cat", "/etc/resolv.conf")
    assert "nameserver 192.0.2.54" in own.splitlines(), own
    assert "nameserver 192.0.2.53" not in own
    assert "search own.test" in own.splitlines(), own
    assert "options ndots:3" in own.splitlines(), own  # not set by the container: the daemon's


def test_default_ulimits_unless_the_container_sets_its_own(configured, made):
    out = configured.ok("run", "--rm", IMAGE, "sh", "-c", "ulimit -Sn; ulimit -Hn")
    assert out.split() == ["1111", "2222"]
    out = configured.ok("run", "--rm", "--ulimit", "nofile=100:200", IMAGE, "sh", "-c",
                        "ulimit -Sn; ulimit -Hn")
    assert out.split() == ["100", "200"]
    name = unique()
    made.append(name)
    configured.ok("run", "--name", name, IMAGE, "true")
    assert {"Name": "nofile", "Soft": 1111, "Hard": 2222} in \
        configured.inspect(name)["HostConfig"]["Ulimits"]


# -- TCP with mutual TLS -----------------------------------------------------------------------
def test_tls_client_with_a_certificate_of_the_ca(configured, certs):
    out = tls_docker(configured, certs, "version", "--format", "{{.Server.Version}}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == configured.ok("version", "--format",
                                               "{{.Server.Version}}").strip()


def test_tls_streams_and_hijacked_connections(configured, certs):
    """run (attach's hijacked connection, the exit status) and stdin's end
    passed on (the CLI half-closes after stdin)."""
    out = tls_docker(configured, certs, "run", "--rm", IMAGE, "echo", "hello over tls")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello over tls\n"
    out = tls_docker(configured, certs, "run", "--rm", "-i", IMAGE, "sh", "-c", "cat; exit 3",
                     input="from stdin\n")
    assert out.stdout == "from stdin\n"
    assert out.returncode == 3, out.stderr


def test_tls_refuses_clients_without_a_certificate_of_the_ca(configured, certs):
    no_cert = tls_docker(configured, certs, "version", cert=False)
    assert no_cert.returncode != 0
    assert "certificate" in no_cert.stderr, no_cert.stderr
    other = tls_docker(configured, certs, "version", client="other")
    assert other.returncode != 0
    assert "certificate" in other.stderr, other.stderr
    # and no plain HTTP on the TLS port
    host, port = configured.tcp.removeprefix("tcp://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        try:
            reply = s.recv(4096)
        except OSError:
            reply = b""
    assert b"200 OK" not in reply and b"OK" != reply.split(b"\r\n\r\n")[-1]
    # a TLS client that shows no certificate is refused before any HTTP
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "good-ca.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        with socket.create_connection((host, int(port)), timeout=10) as s, \
                ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            data = t.recv(4096)
            if not data:
                raise ConnectionError("closed")
            raise AssertionError(f"answered without a client certificate: {data!r}")


def test_plain_tcp_only_when_asked_with_dockers_warning():
    fixtures.needs_root_and_docker_cli()
    port = free_port()
    daemon = Pyboxd(extra_args=["-H", f"tcp://127.0.0.1:{port}"])
    try:
        daemon.start()
        log = daemon.log_tail()
        assert "Binding to IP address without --tlsverify is insecure and gives root access " \
               "on this machine to everyone who has access to your network." in log
        assert f"tcp://127.0.0.1:{port}" in log
        out = subprocess.run([DOCKER, "-H", f"tcp://127.0.0.1:{port}", "version", "--format",
                              "{{.Server.Os}}"], env=daemon.cli_env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "linux", out.stderr
    finally:
        problems = daemon.stop()
    assert not problems, "\n".join(problems)


# -- errors at start -----------------------------------------------------------------------------
def start_failing(tmp_path, config, *flags):
    """pyboxd with ``config`` as its daemon.json and ``flags``: it must exit 1
    at once, having made nothing -> its stderr."""
    path = tmp_path / "daemon.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    data_root = tmp_path / "data"
    exec_root = tmp_path / "exec"
    proc = subprocess.run([PYTHON, "-m", "pybox.cli.pyboxd", "--config-file", str(path),
                           "-H", f"unix://{tmp_path}/s.sock", "--data-root", str(data_root),
                           "--exec-root", str(exec_root), *flags],
                          env=dict(os.environ, PYTHONPATH=SRC), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert not data_root.exists() and not exec_root.exists()
    assert not (tmp_path / "s.sock").exists()
    return proc.stderr


def test_unknown_directives_fail_the_start(tmp_path):
    err = start_failing(tmp_path, {"dns": ["192.0.2.1"], "log-opt": {"max-size": "1m"},
                                   "no-such-key": 1})
    assert "the following directives don't match any configuration option: log-opt, " \
           "no-such-key" in err, err


def test_a_directive_given_as_flag_and_in_the_file_fails_the_start(tmp_path):
    err = start_failing(tmp_path, {"dns": ["192.0.2.1"], "debug": True}, "--dns", "192.0.2.2")
    assert "the following directives are specified both as a flag and in the configuration " \
           "file: dns: (from flag: [192.0.2.2], from file: [192.0.2.1])" in err, err
    err = start_failing(tmp_path, {"data-root": "/tmp/x"})  # the fixture-like --data-root
    assert "data-root: (from flag: " in err, err


def test_bad_values_fail_the_start(tmp_path):
    assert "invalid JSON" in start_failing(tmp_path, "{not json")
    assert "not supported by pyboxd: iptables" in start_failing(tmp_path, {"iptables": False})
    assert "invalid ulimit type: nofiles" in start_failing(
        tmp_path, {"default-ulimits": {"nofiles": {"Name": "nofiles", "Soft": 1, "Hard": 1}}})
    assert "failed to set log opts" in start_failing(
        tmp_path, {"log-opts": {"max-size": "huge"}})
    assert "invalid TLS configuration" in start_failing(
        tmp_path, {}, "-H", "tcp://127.0.0.1:1", "--tlsverify",
        "--tlscacert", str(tmp_path / "missing.pem"))


def answers(sock: str) -> bool:
    try:
        return api(sock, "GET", "/_ping", timeout=2)[0] == 200
    except OSError:
        return False


def test_roots_and_hosts_from_the_file_and_live_restore_by_default(tmp_path):
    """data-root, exec-root, hosts only in daemon.json; without live-restore in
    it a container outlives pyboxd (pybox's default)."""
    fixtures.needs_root_and_docker_cli()
    base = tempfile.mkdtemp(prefix="pybox-engine-")
    exec_root = f"/run/pbe-{uuid.uuid4().hex[:8]}"
    sock = os.path.join(base, "api.sock")
    config = os.path.join(base, "daemon.json")
    with open(config, "w") as f:
        json.dump({"data-root": os.path.join(base, "root"), "exec-root": exec_root,
                   "hosts": [f"unix://{sock}"]}, f)
    log = open(os.path.join(base, "log"), "wb")
    proc = subprocess.Popen([PYTHON, "-m", "pybox.cli.pyboxd", "--config-file", config],
                            env=dict(os.environ, PYTHONPATH=SRC), stdout=log, stderr=log,
                            start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(sock) and answers(sock), "pyboxd to answer", timeout=30)
        status, info = api(sock, "GET", "/info")
        assert info["DockerRootDir"] == os.path.join(base, "root")
        assert info["LiveRestoreEnabled"] is True
        assert os.path.exists(os.path.join(exec_root, "pyboxd.pid"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        subprocess.run(["rm", "-rf", base, exec_root])


# -- live restore off ----------------------------------------------------------------------------
def test_live_restore_off_stops_containers_at_shutdown(configured, made):
    """Last: it restarts the module's pyboxd.  Without live restore pyboxd stops
    its containers as it goes (dockerd's Shutdown); a stop at shutdown is not
    the user's, so a restart policy still brings a container back."""
    plain, always = unique(), unique()
    made += [plain, always]
    for name, policy in ((plain, "no"), (always, "always")):
        configured.ok("run", "-d", "--name", name, "--restart", policy, "--stop-timeout", "1",
                      IMAGE, "sleep", "1000")
    configured.restart()
    state = configured.inspect(plain)["State"]
    assert state["Running"] is False and state["Status"] == "exited", state
    assert state["ExitCode"] in (137, 143), state  # SIGKILL after the stop timeout
    wait_for(lambda: configured.inspect(always)["State"]["Running"], "the always container back",
             timeout=30)
    # a pyboxd killed (no shutdown): the next one stops what it finds running,
    # and starts again what its policy brings back (dockerd's restore)
    survivor = unique()
    made.append(survivor)
    configured.ok("run", "-d", "--name", survivor, "--stop-timeout", "1", IMAGE, "sleep", "1000")
    configured.process.kill()
    configured.process.wait(timeout=30)
    configured.start()
    state = configured.inspect(survivor)["State"]
    assert state["Running"] is False and state["Status"] == "exited", state
    wait_for(lambda: configured.inspect(always)["State"]["Running"], "the always container back",
             timeout=30)
