"""Exec, Attach and PortForward through pyboxd's CRI and its streaming server
(pybox.cri.streaming), driven as crictl, critest and kubelet's clients drive
them: the gRPC call gives a URL; the test then speaks to that URL with the
minimal SPDY/3.1 client (client-go's v4 channel protocol, portforward.k8s.io)
and websocket client of tests/unit/test_spdy_server.py, against containers of
real pods in the private pyboxd.

When C4's build of cri-tools is there (/var/tmp/critest/bin/crictl, never part
of the repo), Go's own client-go code runs an exec through crictl as well.
"""

import json
import os
import socket
import subprocess
import threading

import pytest

from pybox.network import netns
from unit.test_spdy_server import READ_TIMEOUT, SpdyClient, WsClient, collect, remote_command

grpc = pytest.importorskip("grpc", reason="needs grpcio (pyproject's dependencies)")
api_pb2 = pytest.importorskip("cri_api.v1.api_pb2", reason="needs the runtime.v1 stubs")

CRICTL = "/var/tmp/critest/bin/crictl"


def exec_url(cri, cid, cmd, *, tty=False, stdin=False, stdout=True, stderr=True):
    return cri.call("Exec", api_pb2.ExecRequest(container_id=cid, cmd=list(cmd), tty=tty,
                                                stdin=stdin, stdout=stdout, stderr=stderr)).url


def attach_url(cri, cid, *, tty=False, stdin=False, stdout=True, stderr=True):
    return cri.call("Attach", api_pb2.AttachRequest(container_id=cid, tty=tty, stdin=stdin,
                                                    stdout=stdout, stderr=stderr)).url


def running(cri, **kw):
    """A pod and one started container in it -> (pod id, container id)."""
    pod_id, pod_config = cri.run_pod()
    return pod_id, cri.run(pod_id, pod_config, **kw)


def test_exec_streams_and_exit_code(cri):
    _, cid = running(cri)
    url = exec_url(cri, cid, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert url.startswith("http://127.0.0.1:")
    client, streams = remote_command(url)
    assert client.protocol == "v4.channel.k8s.io"
    out, status = collect(client, streams)
    assert out == {"stdout": b"out\n", "stderr": b"err\n"}
    st = json.loads(status)
    assert (st["status"], st["reason"]) == ("Failure", "NonZeroExitCode")
    assert st["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    # the URL was single-use
    assert SpdyClient(url).status == 404


def test_exec_stdin(cri):
    _, cid = running(cri)
    client, streams = remote_command(exec_url(cri, cid, ["cat"], stdin=True), stdin=True)
    streams["stdin"].write(b"echo me\n")
    streams["stdin"].close()
    out, status = collect(client, streams)
    assert out["stdout"] == b"echo me\n"
    assert json.loads(status) == {"metadata": {}, "status": "Success"}


def test_exec_large_streams(cri):
    """Megabytes each way: output cut into data frames, stdin beyond the
    server's per-stream buffer (the client is held back, nothing is lost)."""
    _, cid = running(cri)
    url = exec_url(cri, cid, ["sh", "-c", "wc -c; head -c 3000000 /dev/zero | tr '\\0' x"],
                   stdin=True)
    client, streams = remote_command(url, stdin=True)
    chunk = b"y" * 65536
    for _ in range(100):  # 6.5 MB
        streams["stdin"].write(chunk)
    streams["stdin"].close()
    out, status = collect(client, streams)
    count, _, rest = out["stdout"].partition(b"\n")
    assert int(count) == 6553600
    assert rest == b"x" * 3000000
    assert json.loads(status)["status"] == "Success"


def test_tty_exec_with_resize(cri):
    _, cid = running(cri)
    url = exec_url(cri, cid, ["sh"], tty=True, stdin=True, stderr=False)
    client, streams = remote_command(url, tty=True, stdin=True, stderr=False, resize=(80, 24))
    assert set(streams) == {"error", "stdin", "stdout", "resize"}
    streams["stdin"].write(b"stty size\n")
    assert b"24 80" in streams["stdout"].read_until(b"24 80")  # the size it started with
    streams["resize"].write(b'{"Width":120,"Height":40}\n')
    seen = b""
    for _ in range(100):  # the new size reaches the shell's terminal with SIGWINCH
        streams["stdin"].write(b"stty size\n")
        seen += streams["stdout"].read_until(b"\n", timeout=READ_TIMEOUT)
        if b"40 120" in seen:
            break
    assert b"40 120" in seen
    # docker's detach keys (ctrl-p ctrl-q) mean nothing to kubelet's exec: still attached
    streams["stdin"].write(b"\x10\x11\x03echo still$((20+22))\n")
    assert b"still42" in streams["stdout"].read_until(b"still42")
    streams["stdin"].write(b"exit 5\n")
    _, status = collect(client, streams)
    assert json.loads(status)["details"]["causes"] == [{"reason": "ExitCode", "message": "5"}]


def test_exec_request_validation(cri):
    _, cid = running(cri)
    with pytest.raises(grpc.RpcError) as e:
        exec_url(cri, cid, ["sh"], tty=True, stdin=True, stderr=True)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tty and stderr cannot both be true" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        exec_url(cri, cid, ["sh"], stdout=False, stderr=False)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "one of stdin, stdout, or stderr must be set" in e.value.details()


def test_websocket_exec(cri):
    _, cid = running(cri)
    ws = WsClient(exec_url(cri, cid, ["sh", "-c", "echo ws; exit 7"]), ["v4.channel.k8s.io"])
    assert ws.accepted == "v4.channel.k8s.io"
    first, got = ws.channels_until_close()
    assert first == (1, b"")
    assert got[1] == b"ws\n"
    assert json.loads(got[3])["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]


def test_attach(cri):
    pod_id, pod_config = cri.run_pod()
    cid = cri.run(pod_id, pod_config, command=["sh", "-c", "read l; echo got:$l; echo err:$l >&2"],
                  stdin=True, stdin_once=True)
    client, streams = remote_command(attach_url(cri, cid, stdin=True), stdin=True)
    streams["stdin"].write(b"abc\n")
    streams["stdin"].close()
    out, status = collect(client, streams)
    assert b"got:abc\n" in out["stdout"]
    assert b"err:abc\n" in out["stderr"]
    assert json.loads(status) == {"metadata": {}, "status": "Success"}


# -- port forward --------------------------------------------------------------------------------
def pod_netns_path(cri_pyboxd, pod_id):
    """The sandbox's network namespace, by its process (the Docker API shows CRI's containers
    to an inspect by id)."""
    out = cri_pyboxd.docker("inspect", pod_id).stdout
    pid = json.loads(out)[0]["State"]["Pid"]
    assert pid
    return f"/proc/{pid}/ns/net"


@pytest.fixture
def pod_listener(cri, cri_pyboxd):
    """A pod, and a listener on 127.0.0.1:8080 inside its network namespace
    that answers each line in upper case -> pod id."""
    pod_id, _ = cri.run_pod()

    def listen():
        s = socket.socket()
        s.bind(("127.0.0.1", 8080))
        s.listen(8)
        return s

    lst = netns.run_in(pod_netns_path(cri_pyboxd, pod_id), listen)

    def serve():
        while True:
            try:
                c, _ = lst.accept()
            except OSError:
                return
            with c:
                data = b""
                while True:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if data.endswith(b"\n"):
                        c.sendall(data.upper())
                        data = b""

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield pod_id
    lst.shutdown(socket.SHUT_RDWR)
    lst.close()
    t.join(READ_TIMEOUT)


def port_forward_url(cri, pod_id, ports):
    return cri.call("PortForward", api_pb2.PortForwardRequest(pod_sandbox_id=pod_id,
                                                              port=list(ports))).url


def test_port_forward(cri, pod_listener):
    pod_id = pod_listener
    client = SpdyClient(port_forward_url(cri, pod_id, [8080]), protocols=("portforward.k8s.io",))
    assert (client.status, client.protocol) == (101, "portforward.k8s.io")
    for rid in ("0", "1"):
        err = client.open({"streamType": "error", "port": "8080", "requestID": rid})
        data = client.open({"streamType": "data", "port": "8080", "requestID": rid})
        data.write(b"hello pod " + rid.encode() + b"\n")
        assert data.read_until(b"\n") == b"HELLO POD " + rid.encode() + b"\n"
        data.close()
        assert data.read_all() == b""
        assert err.read_all() == b""
    # nothing listens on 8081 in the pod (whatever the host has there)
    err = client.open({"streamType": "error", "port": "8081", "requestID": "2"})
    client.open({"streamType": "data", "port": "8081", "requestID": "2"})
    assert err.read_all().decode().startswith(
        f"error forwarding port 8081 to pod {pod_id}, uid : failed to connect to localhost:8081")
    client.close()


def test_websocket_port_forward(cri, pod_listener):
    ws = WsClient(port_forward_url(cri, pod_listener, [8080]), ["v4.channel.k8s.io"])
    assert ws.accepted == "v4.channel.k8s.io"
    prefix = (8080).to_bytes(2, "little")
    assert ws.messages.get(timeout=READ_TIMEOUT) == b"\x00" + prefix
    assert ws.messages.get(timeout=READ_TIMEOUT) == b"\x01" + prefix
    ws.send(0, b"via websocket\n")
    assert ws.messages.get(timeout=READ_TIMEOUT) == b"\x00VIA WEBSOCKET\n"
    ws.close()


# -- Go's client (optional) ---------------------------------------------------------------------
@pytest.mark.skipif(not os.path.exists(CRICTL), reason=f"no crictl build at {CRICTL}")
def test_crictl_exec(cri, cri_pyboxd):
    _, cid = running(cri)
    base = [CRICTL, "--runtime-endpoint", "unix://" + cri_pyboxd.cri_socket, "--timeout", "30s"]
    r = subprocess.run(base + ["exec", cid, "sh", "-c", "echo from go; echo err >&2; exit 3"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout == "from go\n"
    assert r.stderr.startswith("err\n")
    # client-go's errorDecoderV4 made the exit code of our status (crictl 1.26 then exits 1)
    assert "command terminated with exit code 3" in r.stderr
    r = subprocess.run(base + ["exec", "-i", cid, "cat"], input="piped\n", capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stdout) == (0, "piped\n")


@pytest.mark.skipif(not os.path.exists(CRICTL), reason=f"no crictl build at {CRICTL}")
def test_crictl_port_forward(cri_pyboxd, pod_listener):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    local = probe.getsockname()[1]
    probe.close()
    proc = subprocess.Popen([CRICTL, "--runtime-endpoint", "unix://" + cri_pyboxd.cri_socket,
                             "port-forward", pod_listener, f"{local}:8080"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"Forwarding from 127.0.0.1:{local} -> 8080"), line
        with socket.create_connection(("127.0.0.1", local), timeout=READ_TIMEOUT) as c:
            c.sendall(b"through crictl\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = c.recv(100)
                if not chunk:
                    break
                got += chunk
        assert got == b"THROUGH CRICTL\n"
    finally:
        proc.terminate()
        proc.wait(READ_TIMEOUT)
        proc.stdout.close()


@pytest.mark.skipif(not os.path.exists(CRICTL), reason=f"no crictl build at {CRICTL}")
def test_crictl_tty_exec(cri, cri_pyboxd):
    """crictl exec -it on a terminal (script(1)'s pty at 30x100): client-go's tty path,
    its first resize event, the terminal's size inside the container."""
    _, cid = running(cri)
    crictl = f"{CRICTL} --runtime-endpoint unix://{cri_pyboxd.cri_socket}"
    r = subprocess.run(["script", "-qec", f"stty rows 30 cols 100; {crictl} exec -it {cid} stty size",
                        "/dev/null"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "30 100" in r.stdout
