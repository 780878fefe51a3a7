"""Bad request bodies and query values: refused as dockerd refuses them.

Issue 13: pyboxd took what dockerd refuses -- ``"Privileged": "false"`` gave a
privileged container (an authorization proxy blocking ``Privileged: true`` was
bypassed), 2,200 generated create bodies gave 592 HTTP 500s with tracebacks,
39 kinds of invalid value were accepted, and one ``Cmd: [5]`` container broke
``docker ps -a`` for every client.  Here:

* the named cases, table-driven, each with docker's message (docker 28: Go's
  encoding/json words with the Go 1.24 field paths, then dockerd's checks) and
  nothing created;
* generated bodies (hypothesis, derandomized: the same 2,000+ create bodies
  every run, and some for update, exec, network, volume) sent over the unix
  socket with http.client: no 5xx, no traceback in pyboxd's log, nothing left
  behind, ``docker ps -a`` still working;
* odd records on disk (an older pyboxd's ``Cmd: [5]``, missing keys, wrong
  types): listing and inspect still work, with docker's CLI too.
"""

import http.client
import json
import os
import secrets
import shutil
import socket
import tempfile
import urllib.parse
import uuid

import pytest

from support.host import cgroup_dirs, mounts_under

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (pip install -e .[test])")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

IMAGE = "busybox:latest"


# -- a fast client: one keep-alive connection on the unix socket --------------------------
class Client:
    def __init__(self, path):
        self.path = path
        self.conn = None

    def _connect(self):
        conn = http.client.HTTPConnection("localhost", timeout=60)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(self.path)
        conn.sock = sock
        return conn

    def request(self, method, path, body=None, raw=None, content_type="application/json"):
        """-> (status, parsed JSON or None).  ``raw``: bytes sent as they are."""
        data = raw if raw is not None else (None if body is None else
                                            json.dumps(body).encode())
        headers = {"Content-Type": content_type} if data is not None else {}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                break
            except (http.client.HTTPException, OSError):
                self.close()
                if attempt:
                    raise
        try:
            return resp.status, json.loads(payload) if payload else None
        except ValueError:
            return resp.status, payload

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@pytest.fixture
def client(pyboxd):
    c = Client(pyboxd.socket)
    yield c
    c.close()


def containers_dir(pyboxd):
    path = os.path.join(pyboxd.data_root, "containers")
    return set(os.listdir(path)) if os.path.isdir(path) else set()


def volume_names(client):
    status, body = client.request("GET", "/volumes")
    assert status == 200
    return {v["Name"] for v in body["Volumes"] or ()}


def network_ids(client):
    status, body = client.request("GET", "/networks")
    assert status == 200
    return {n["Id"] for n in body}


def log_size(pyboxd):
    try:
        return os.path.getsize(pyboxd.log_path)
    except OSError:
        return 0


def log_since(pyboxd, offset):
    with open(pyboxd.log_path, errors="replace") as f:
        f.seek(offset)
        return f.read()


# -- the named cases: docker's messages ------------------------------------------------------
def go_field(struct, path, kind, gotype):
    return (f"invalid JSON: json: cannot unmarshal {kind} into Go struct field {struct}.{path} "
            f"of type {gotype}")


def hc(**fields):
    return {"Image": IMAGE, "Cmd": ["true"], "HostConfig": fields}


def cfg(**fields):
    return dict({"Image": IMAGE, "Cmd": ["true"]}, **fields)


CREATE_CASES = [
    # the bypass: a string where a bool is expected is refused, never truthy
    (hc(Privileged="false"), go_field("HostConfig", "HostConfig.Privileged", "string", "bool")),
    (hc(AutoRemove="false"), go_field("HostConfig", "HostConfig.AutoRemove", "string", "bool")),
    (hc(ReadonlyRootfs="false"),
     go_field("HostConfig", "HostConfig.ReadonlyRootfs", "string", "bool")),
    (hc(Privileged=1), go_field("HostConfig", "HostConfig.Privileged", "number", "bool")),
    # the 39 kinds of invalid value (a sample), by type ...
    (cfg(Cmd=[5]), go_field("CreateRequest", "Config.Cmd", "array", "string")),
    (cfg(Labels={"a": 5}), go_field("CreateRequest", "Config.Labels", "number", "string")),
    (cfg(User=5), go_field("CreateRequest", "Config.User", "number", "string")),
    (cfg(Env="A=1"), go_field("CreateRequest", "Config.Env", "string", "[]string")),
    (cfg(StopTimeout="10"), go_field("CreateRequest", "Config.StopTimeout", "string", "int")),
    (cfg(ExposedPorts={"80/tcp": 1}),
     go_field("CreateRequest", "Config.ExposedPorts", "number", "struct {}")),
    (cfg(Healthcheck={"Interval": "1s"}),
     go_field("HealthcheckConfig", "Config.Healthcheck.Interval", "string", "time.Duration")),
    (hc(Memory=1.5), go_field("HostConfig", "HostConfig.Resources.Memory", "number 1.5",
                              "int64")),
    (hc(Memory="1g"), go_field("HostConfig", "HostConfig.Resources.Memory", "string", "int64")),
    (hc(BlkioWeight=-1), go_field("HostConfig", "HostConfig.Resources.BlkioWeight",
                                  "number -1", "uint16")),
    (hc(PidsLimit=2 ** 64), go_field("HostConfig", "HostConfig.Resources.PidsLimit",
                                     f"number {2 ** 64}", "int64")),
    (hc(ConsoleSize=[-1, 80]), go_field("HostConfig", "HostConfig.ConsoleSize", "number -1",
                                        "uint")),
    (hc(CapAdd=5), go_field("HostConfig", "HostConfig.CapAdd", "number", "string")),
    (hc(Mounts=[{"Type": 5}]), go_field("Mount", "HostConfig.Mounts.Type", "number",
                                        "mount.Type")),
    (hc(RestartPolicy="always"), go_field("HostConfig", "HostConfig.RestartPolicy", "string",
                                          "container.RestartPolicy")),
    ({"Image": IMAGE, "NetworkingConfig": {"EndpointsConfig": {"x": {"Aliases": "a"}}}},
     go_field("EndpointSettings", "NetworkingConfig.EndpointsConfig.Aliases", "string",
              "[]string")),
    # ... and by range or meaning (dockerd's create checks)
    (hc(CpusetCpus="abc"), "Invalid value abc for cpuset cpus: invalid format: abc"),
    (hc(CpusetCpus="1000"), "Requested CPUs are not available - requested 1000,"),
    (hc(CpusetCpus="100000"),
     "Invalid value 100000 for cpuset cpus: value of out range, maximum is 8192"),
    (hc(CpusetMems="0-"), "Invalid value 0- for cpuset mems: invalid format: 0-"),
    (hc(OomScoreAdj=5000), "Invalid value 5000, range for oom score adj is [-1000, 1000]"),
    (hc(ShmSize=-1), "SHM size can not be less than 0"),
    (hc(RestartPolicy={"Name": "on-failure", "MaximumRetryCount": -1}),
     "invalid restart policy: maximum retry count cannot be negative"),
    (hc(RestartPolicy={"Name": "always", "MaximumRetryCount": 3}),
     "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
    (hc(RestartPolicy={"Name": "sometimes"}),
     "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', "
     "'on-failure', or 'unless-stopped'"),
    (hc(AutoRemove=True, RestartPolicy={"Name": "always"}),
     "can't create 'AutoRemove' container with restart policy"),
    (cfg(StopSignal="SIGBOGUS"), "invalid signal: SIGBOGUS"),
    (cfg(StopSignal="0"), "invalid signal: 0"),
    (cfg(Healthcheck={"Interval": -1}), "Interval in Healthcheck cannot be less than 1ms"),
    (cfg(Healthcheck={"Timeout": 999}), "Timeout in Healthcheck cannot be less than 1ms"),
    (cfg(Healthcheck={"Retries": -1}), "Retries in Healthcheck cannot be negative"),
    (cfg(Healthcheck={"StartPeriod": -5}), "StartPeriod in Healthcheck cannot be less than 1ms"),
    (hc(CapAdd=["CAP_BOGUS"]), 'invalid CapAdd: unknown capability: "CAP_BOGUS"'),
    (hc(CapDrop=["bogus"]), 'invalid CapDrop: unknown capability: "CAP_BOGUS"'),
    (hc(MemorySwappiness=101), "Invalid value: 101, valid memory swappiness range is 0-100"),
    (hc(Memory=-1), "Minimum memory limit allowed is 6MB"),
    (hc(MemoryReservation=1024), "Minimum memory reservation allowed is 6MB"),
    (hc(MemorySwap=1 << 30), "You should always set the Memory limit when using Memoryswap "
                             "limit, see usage"),
    (hc(CpuShares=-1), "invalid CPU shares (-1): value must be a positive integer"),
    (hc(NanoCpus=500_000_000, CpuQuota=1000),
     "Conflicting options: Nano CPUs and CPU Quota cannot both be set"),
    (hc(NanoCpus=-1), "Range of CPUs is from 0.01 to"),
    (hc(CpuPeriod=-1), "CPU cfs period can not be less than 1ms"),
    (hc(IOMaximumBandwidth=1), "invalid option: QoS maximum bandwidth configuration is not "
                               "supported on linux"),
    (hc(IpcMode="bogus"), "invalid IPC mode: bogus"),
    (hc(PidMode="container:"), "invalid PID mode: container:"),
    (hc(UTSMode="private"), "invalid UTS mode: private"),
    (hc(CgroupnsMode="bogus"), "invalid cgroup namespace mode: bogus"),
    (hc(Isolation="hyperv"), "invalid isolation (hyperv): linux only supports 'default'"),
    (hc(NetworkMode="container:"),
     "invalid network mode: invalid container format container:<name|id>"),
    (dict(cfg(Hostname="h"), HostConfig={"UTSMode": "host"}),
     "conflicting options: hostname and the UTS mode"),
    (cfg(WorkingDir="relative"),
     "the working directory 'relative' is invalid, it needs to be an absolute path"),
    (cfg(Env=["=x"]), "invalid environment variable: =x"),
    (hc(PortBindings={"abc/tcp": []}), 'invalid port specification: "abc"'),
    (hc(PortBindings={"80/tcp": [{"HostPort": "99999"}]}), 'invalid port specification: '
                                                           '"99999"'),
    (hc(ExtraHosts=["nocolon"]), 'bad format for add-host: "nocolon"'),
    (hc(Mounts=[{"Type": "bind", "Source": "/pybox-no-such-dir", "Target": "/x"}]),
     'invalid mount config for type "bind": bind source path does not exist: '
     "/pybox-no-such-dir"),
    (hc(Mounts=[{"Type": "tmpfs", "Target": "/x", "VolumeOptions": {}}]),
     'VolumeOptions must not be specified on mount type "tmpfs"'),
    (hc(Mounts=[{"Type": "bogus", "Target": "/x"}]),
     'invalid mount config for type "bogus": mount type unknown'),
    (hc(Mounts=[{"Type": "volume", "Target": "relative"}]),
     "invalid mount config for type \"volume\": invalid mount path: 'relative' mount path "
     "must be absolute"),
    (hc(Mounts=[{"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": -1}}]),
     'invalid mount config for type "tmpfs": invalid tmpfs size: -1'),
    (hc(Tmpfs={"relative": ""}), "invalid mount path: 'relative' mount path must be absolute"),
    (hc(LogConfig={"Type": "json-file", "Config": {"max-size": "abc"}}), "invalid size: 'abc'"),
    (hc(LogConfig={"Type": "json-file", "Config": {"max-file": "x"}}),
     'strconv.Atoi: parsing "x": invalid syntax'),
    (hc(LogConfig={"Config": {"bogus": "1"}}), "unknown log opt 'bogus' for json-file log driver"),
    (hc(Ulimits=[{"Name": "bogus", "Soft": 1, "Hard": 1}]), "invalid ulimit type: bogus"),
    (hc(Ulimits=[{"Name": "nofile", "Soft": 10, "Hard": 5}]),
     "ulimit soft limit must be less than or equal to hard limit: 10 > 5"),
    (hc(Annotations={"": "x"}), "invalid Annotations: the empty string is not permitted as an "
                                "annotation key"),
    (hc(SecurityOpt=['seccomp={"syscalls": 5}']), "Decoding seccomp profile failed"),
    (hc(SecurityOpt=["seccomp=[1]"]), "Decoding seccomp profile failed"),
    (hc(Runtime="bogus"), "unknown or invalid runtime name: bogus"),
    (cfg(Cmd=["a\x00b"]), "invalid Cmd: a NUL byte is not allowed"),
    (hc(Binds=["/proc/pybox-no-such/x:/x"]),
     "error while creating mount source path '/proc/pybox-no-such/x'"),
    # checks come before the image lookup (a 404 would make the CLI pull it)
    ({"Image": "pybox-no-such-image", "HostConfig": {"OomScoreAdj": 5000}},
     "Invalid value 5000, range for oom score adj is [-1000, 1000]"),
]

RAW_CREATE_CASES = [
    (b"", "invalid JSON: got EOF while reading request body"),
    (b"   \n", "invalid JSON: got EOF while reading request body"),
    (b"{", "invalid JSON: unexpected EOF"),
    (b"null", "config cannot be empty in order to create a container"),
    (b"[]", "invalid JSON: json: cannot unmarshal array into Go value of type "
            "container.CreateRequest"),
    (b'"x"', "invalid JSON: json: cannot unmarshal string into Go value of type "
             "container.CreateRequest"),
    (b"{} x", "unexpected content after JSON"),
    (b'{"Image": busybox}', "invalid JSON: invalid character 'b' looking for beginning of "
                            "value"),
    (b'{"Image" "x"}', "invalid JSON: invalid character '\"' after object key"),
    (b'{"Cmd": ["a" "b"]}', "invalid JSON: invalid character '\"' after array element"),
    (b'{"Memory": NaN}', "invalid JSON: invalid character 'N' looking for beginning of value"),
    (b"[" * 100000, "invalid JSON:"),
]


def nothing_created(pyboxd, before):
    assert containers_dir(pyboxd) == before


@pytest.mark.parametrize("body, message", CREATE_CASES,
                         ids=[json.dumps(b, sort_keys=True)[:70] for b, _ in CREATE_CASES])
def test_create_refuses_with_dockers_message(pyboxd, client, body, message):
    before = containers_dir(pyboxd)
    status, reply = client.request("POST", "/containers/create", body)
    assert status == 400, reply
    assert reply["message"].startswith(message), reply["message"]
    nothing_created(pyboxd, before)


@pytest.mark.parametrize("raw, message", RAW_CREATE_CASES,
                         ids=[repr(r[:20]) for r, _ in RAW_CREATE_CASES])
def test_create_refuses_malformed_json(pyboxd, client, raw, message):
    before = containers_dir(pyboxd)
    status, reply = client.request("POST", "/containers/create", raw=raw)
    assert status == 400, reply
    assert reply["message"].startswith(message), reply["message"]
    nothing_created(pyboxd, before)


def test_field_names_match_as_in_go(pyboxd, client, names):
    """Go matches field names case-insensitively, and the last of two
    spellings wins; unknown fields are ignored; null leaves a field unset."""
    name = names("case")
    body = {"image": IMAGE, "cmd": ["true"], "Bogus": 1,
            "hostconfig": {"privileged": True, "PRIVILEGED": False, "Memory": None,
                           "readonlyrootfs": True}}
    status, reply = client.request("POST", f"/containers/create?name={name}", body)
    assert status == 201, reply
    info = pyboxd.inspect(name)
    assert info["HostConfig"]["Privileged"] is False
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert info["Config"]["Cmd"] == ["true"]
    assert "Bogus" not in info["Config"]
    # Cmd as a string is a one-element list, as strslice.StrSlice reads it
    name = names("strslice")
    status, reply = client.request("POST", f"/containers/create?name={name}",
                                   {"Image": IMAGE, "Cmd": "true", "HostConfig": {
                                       "CapAdd": "NET_ADMIN"}})
    assert status == 201, reply
    info = pyboxd.inspect(name)
    assert info["Config"]["Cmd"] == ["true"] and info["HostConfig"]["CapAdd"] == ["NET_ADMIN"]


@pytest.fixture
def running(pyboxd, names):
    name = names("target")
    pyboxd.ok("run", "-d", "--name", name, IMAGE, "sleep", "600")
    return name


def test_other_bodies_and_queries_refused_with_dockers_message(pyboxd, client, running):
    before = containers_dir(pyboxd)
    nets, vols = network_ids(client), volume_names(client)
    cases = [
        ("POST", f"/containers/{running}/update", {"Memory": "1"},
         go_field("UpdateConfig", "Resources.Memory", "string", "int64")),
        ("POST", f"/containers/{running}/update", {"RestartPolicy": {"Name": "bogus"}},
         "invalid restart policy: unknown policy 'bogus'"),
        ("POST", f"/containers/{running}/update", {"CpusetCpus": "abc"},
         "Invalid value abc for cpuset cpus: invalid format: abc"),
        ("POST", f"/containers/{running}/exec", {"Cmd": "ls"},
         go_field("ExecOptions", "Cmd", "string", "[]string")),
        ("POST", f"/containers/{running}/exec", {"Cmd": ["true"], "Privileged": "false"},
         go_field("ExecOptions", "Privileged", "string", "bool")),
        ("POST", f"/containers/{running}/exec", {"Cmd": []}, "No exec command specified"),
        ("POST", "/exec/pybox-no-such-exec/start", {"Detach": "yes"},
         go_field("ExecStartOptions", "Detach", "string", "bool")),
        ("POST", "/networks/create", {"Name": 5},
         go_field("CreateRequest", "Name", "number", "string")),
        ("POST", "/networks/create", {"Name": "pybox-x", "Internal": "true"},
         go_field("CreateRequest", "CreateOptions.Internal", "string", "bool")),
        ("POST", "/networks/pybox-no-such-net/connect", {"Container": 5},
         go_field("ConnectOptions", "Container", "number", "string")),
        ("POST", "/networks/pybox-no-such-net/disconnect", {"Force": "yes"},
         go_field("DisconnectOptions", "Force", "string", "bool")),
        ("POST", "/volumes/create", {"Name": ["x"]},
         go_field("CreateOptions", "Name", "array", "string")),
        ("POST", "/volumes/create", {"Labels": {"a": 1}},
         go_field("CreateOptions", "Labels", "number", "string")),
        ("POST", "/auth", {"username": 5}, go_field("AuthConfig", "username", "number",
                                                    "string")),
        ("POST", "/commit?container=pybox-no-such-ctr", {"Cmd": [5]},
         go_field("CreateRequest", "Config.Cmd", "array", "string")),
        ("GET", "/containers/json?filters=x", None, "invalid filter"),
        ("GET", "/containers/json?filters=" + urllib.parse.quote('{"a":"b"}'), None,
         "invalid filter"),
        ("GET", "/containers/json?filters=" + urllib.parse.quote('{"bogus":["x"]}'), None,
         "invalid filter 'bogus'"),
        ("GET", "/containers/json?limit=abc", None, 'strconv.Atoi: parsing "abc": invalid '
                                                    "syntax"),
        ("GET", "/images/json?filters=" + urllib.parse.quote('{"bogus":{"x":true}}'), None,
         "invalid filter 'bogus'"),
        ("GET", "/volumes?filters=" + urllib.parse.quote("[]"), None, "invalid filter"),
        ("GET", "/networks?filters=" + urllib.parse.quote('{"bogus":["x"]}'), None,
         "invalid filter 'bogus'"),
        ("POST", "/containers/prune?filters=" + urllib.parse.quote('{"until":5}'), None,
         "invalid filter"),
        ("GET", "/events?filters=" + urllib.parse.quote("{"), None, "invalid filter"),
        ("POST", f"/containers/{running}/kill?signal=SIGBOGUS", None,
         "Invalid signal: SIGBOGUS"),
        ("POST", f"/containers/{running}/kill?signal=99", None,
         "the linux daemon does not support signal 99"),
        ("POST", f"/containers/{running}/stop?t=abc", None,
         'strconv.Atoi: parsing "abc": invalid syntax'),
        ("POST", f"/containers/{running}/restart?t=1.5", None,
         'strconv.Atoi: parsing "1.5": invalid syntax'),
        ("POST", f"/containers/{running}/resize?h=abc&w=80", None,
         'invalid resize height "abc": invalid syntax'),
        ("POST", f"/containers/{running}/resize?h=24&w=-1", None,
         'invalid resize width "-1": value out of range'),
        ("POST", f"/containers/{running}/wait?condition=bogus", None,
         'invalid condition: "bogus"'),
        ("GET", f"/containers/{running}/top?ps_args=%00", None, "invalid ps_args"),
        ("POST", f"/containers/{running}/start", {"Binds": ["/:/host"]},
         "starting container with non-empty request body was deprecated"),
        ("POST", "/images/create?fromImage=busybox&platform=a/b/c/d", None,
         '"a/b/c/d": unknown operating system or architecture'),
    ]
    for method, path, body, message in cases:
        status, reply = client.request(method, path, body)
        assert status == 400, (method, path, body, reply)
        assert reply["message"].startswith(message), (method, path, reply["message"])
    # a JSON body sent as another media type is refused, as by dockerd
    status, reply = client.request("POST", "/volumes/create", {"Name": "x"},
                                   content_type="text/plain")
    assert (status, reply["message"]) == (
        400, "unsupported Content-Type header (text/plain): must be 'application/json'")
    nothing_created(pyboxd, before)
    assert (network_ids(client), volume_names(client)) == (nets, vols)
    state = pyboxd.inspect(running)["State"]
    assert state["Running"] and not state["Paused"]


# -- generated bodies -----------------------------------------------------------------------
INTS = st.sampled_from([0, 1, -1, 2, 10, 999, 1000, 1001, 5000, -1000, -1001, 1 << 20,
                        6 << 20, (6 << 20) - 1, 1 << 31, 1 << 32, (1 << 63) - 1, -(1 << 63),
                        1 << 63, 1 << 64, 1_000_000, 100_000_000])
STRINGS = st.sampled_from(["", "x", "abc", "0", "0-1", "1-0", "0,1", "-1", "host", "none",
                           "private", "shareable", "container:", "container:x", "bridge",
                           "default", "SIGKILL", "SIGBOGUS", "9", "/", "/tmp", "relative",
                           "../x", "a=b", "=x", "ALL", "NET_ADMIN", "CAP_BOGUS", "always",
                           "no", "on-failure", "unless-stopped", "json-file", "none",
                           "syslog", "\x00", "\ud800", "é", "80/tcp", "10m", "-5"])
JSON = st.recursive(
    st.none() | st.booleans() | INTS | st.integers() |
    st.floats(allow_nan=False, allow_infinity=False) | STRINGS | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) |
    st.dictionaries(st.text(max_size=6) | STRINGS, children, max_size=3),
    max_leaves=6)


def typed(kind):
    """Mostly values of the right JSON type (so dockerd's range checks are
    reached), sometimes anything."""
    good = {"bool": st.booleans(), "int": INTS | st.integers(), "str": STRINGS | st.text(
        max_size=12), "strs": st.lists(STRINGS | st.text(max_size=8), max_size=3),
        "strmap": st.dictionaries(STRINGS | st.text(max_size=6), STRINGS, max_size=3)}[kind]
    return st.one_of(good, good, good, JSON)


CONFIG_FIELDS = {
    "Hostname": "str", "Domainname": "str", "User": "str", "Tty": "bool", "OpenStdin": "bool",
    "Env": "strs", "Cmd": "strs", "Entrypoint": "strs", "WorkingDir": "str", "Labels": "strmap",
    "StopSignal": "str", "StopTimeout": "int", "MacAddress": "str", "Shell": "strs",
    "AttachStdin": "bool", "ArgsEscaped": "bool", "NetworkDisabled": "bool",
}
HOST_FIELDS = {
    "Privileged": "bool", "AutoRemove": "bool", "ReadonlyRootfs": "bool", "Memory": "int",
    "MemorySwap": "int", "MemoryReservation": "int", "MemorySwappiness": "int",
    "NanoCpus": "int", "CpuShares": "int", "CpuPeriod": "int", "CpuQuota": "int",
    "CpuRealtimePeriod": "int", "CpuRealtimeRuntime": "int", "CpusetCpus": "str",
    "CpusetMems": "str", "BlkioWeight": "int", "PidsLimit": "int", "OomScoreAdj": "int",
    "OomKillDisable": "bool", "ShmSize": "int", "CapAdd": "strs", "CapDrop": "strs",
    "IpcMode": "str", "PidMode": "str", "UTSMode": "str", "UsernsMode": "str",
    "CgroupnsMode": "str", "NetworkMode": "str", "Isolation": "str", "Runtime": "str",
    "Dns": "strs", "DnsOptions": "strs", "DnsSearch": "strs", "ExtraHosts": "strs",
    "GroupAdd": "strs", "SecurityOpt": "strs", "Sysctls": "strmap", "Tmpfs": "strmap",
    "Annotations": "strmap", "StorageOpt": "strmap", "DeviceCgroupRules": "strs",
    "MaskedPaths": "strs", "ReadonlyPaths": "strs", "Init": "bool", "PublishAllPorts": "bool",
    "IOMaximumIOps": "int", "IOMaximumBandwidth": "int", "CpuPercent": "int",
    "KernelMemory": "int", "ContainerIDFile": "str", "VolumeDriver": "str",
}


def restart_policy():
    return st.fixed_dictionaries({}, optional={
        "Name": typed("str") | st.sampled_from(["no", "always", "on-failure",
                                                "unless-stopped"]),
        "MaximumRetryCount": typed("int")})


def mounts(base):
    target = st.sampled_from(["/data", "/x/y", "", "relative", "/", "/proc/x"]) | STRINGS
    source = st.sampled_from(["", base, base + "/sub", "/pybox-no-such", "relative",
                              "pyboxsecvol"]) | STRINGS
    one = st.fixed_dictionaries({"Type": st.sampled_from(["bind", "volume", "tmpfs",
                                                          "image", "bogus"]) | JSON},
                                optional={"Source": source, "Target": target,
                                          "ReadOnly": typed("bool"),
                                          "BindOptions": st.fixed_dictionaries({}, optional={
                                              "Propagation": STRINGS,
                                              "CreateMountpoint": st.just(False)}) | JSON,
                                          "VolumeOptions": st.fixed_dictionaries({}, optional={
                                              "NoCopy": typed("bool"),
                                              "Labels": typed("strmap"),
                                              "Subpath": STRINGS}) | JSON,
                                          "TmpfsOptions": st.fixed_dictionaries({}, optional={
                                              "SizeBytes": typed("int"),
                                              "Mode": typed("int")}) | JSON})
    return st.lists(one, max_size=2)


def binds(base):
    # sources under the test's own directory or volume names only: -v creates a
    # missing host directory, as docker does
    src = st.sampled_from([base, base + "/made", "pyboxsecvol", "", base + "/with space"])
    dst = st.sampled_from(["/data", "relative", "/", "/a:b"])
    mode = st.sampled_from(["", ":ro", ":rw", ":bogus", ":z,ro", ":rshared"])
    return st.lists(st.builds(lambda s, d, m: f"{s}:{d}{m}" if s else f"{d}{m}",
                              src, dst, mode), max_size=2)


def host_config(base):
    fields = {k: typed(v) for k, v in HOST_FIELDS.items()}
    fields.update({
        "RestartPolicy": restart_policy() | JSON,
        "Mounts": mounts(base) | JSON,
        "Binds": binds(base) | JSON,
        "LogConfig": st.fixed_dictionaries({}, optional={
            "Type": st.sampled_from(["", "json-file", "none", "syslog"]) | JSON,
            "Config": st.dictionaries(st.sampled_from(["max-size", "max-file", "bogus",
                                                       "compress"]),
                                      st.sampled_from(["1", "0", "-1", "10m", "abc", ""]),
                                      max_size=2) | JSON}) | JSON,
        "Ulimits": st.lists(st.fixed_dictionaries({}, optional={
            "Name": st.sampled_from(["nofile", "nproc", "bogus"]) | JSON,
            "Soft": typed("int"), "Hard": typed("int")}), max_size=2) | JSON,
        "PortBindings": st.dictionaries(st.sampled_from(["80/tcp", "53/udp", "abc", "0/tcp",
                                                         "80/bogus"]) | STRINGS,
                                        st.lists(st.fixed_dictionaries({}, optional={
                                            "HostIp": st.sampled_from(["", "127.0.0.1",
                                                                       "bogus", "::1"]),
                                            "HostPort": st.sampled_from(["", "0", "abc",
                                                                         "99999", "-1"])}),
                                            max_size=2) | JSON, max_size=2) | JSON,
        "ConsoleSize": st.lists(typed("int"), max_size=3) | JSON,
        "Devices": st.lists(st.fixed_dictionaries({}, optional={
            "PathOnHost": st.sampled_from(["/dev/null", "/pybox-no-dev", "", "\x00"]) | JSON,
            "PathInContainer": STRINGS, "CgroupPermissions": STRINGS}), max_size=1) | JSON,
        "BlkioDeviceReadBps": st.lists(st.fixed_dictionaries({}, optional={
            "Path": st.sampled_from(["/dev/null", "/pybox-no-dev", ""]) | JSON,
            "Rate": typed("int")}), max_size=1) | JSON,
    })
    return st.fixed_dictionaries({}, optional=fields)


def create_bodies(base):
    config = {k: typed(v) for k, v in CONFIG_FIELDS.items()}
    config.update({
        "Healthcheck": st.fixed_dictionaries({}, optional={
            k: typed("int") for k in ("Interval", "Timeout", "StartPeriod", "StartInterval",
                                      "Retries")} | {"Test": typed("strs")}) | JSON,
        "ExposedPorts": st.dictionaries(STRINGS, st.just({}) | JSON, max_size=2) | JSON,
        "Volumes": st.dictionaries(st.sampled_from(["/v", "relative", "/"]) | STRINGS,
                                   st.just({}) | JSON, max_size=2) | JSON,
        "HostConfig": host_config(base) | JSON,
        "NetworkingConfig": st.fixed_dictionaries({}, optional={
            "EndpointsConfig": st.dictionaries(st.sampled_from(["bridge", "none", "host",
                                                                "pybox-no-net"]),
                                               st.fixed_dictionaries({}, optional={
                                                   "Aliases": typed("strs"),
                                                   "MacAddress": STRINGS,
                                                   "IPAMConfig": JSON}) | JSON,
                                               max_size=2) | JSON}) | JSON,
        "Image": st.sampled_from([IMAGE, IMAGE, IMAGE, "", "pybox-no-such-image"]) | JSON,
    })
    structured = st.fixed_dictionaries({}, optional=config).map(
        lambda b: dict({"Image": IMAGE, "Cmd": ["true"]}, **b))
    # a few bodies that are not JSON at all, or not a create request
    mangled = st.builds(lambda body, cut: json.dumps(body)[:cut].encode(), structured,
                        st.integers(0, 200))
    raw = st.binary(max_size=40) | mangled
    return st.one_of(structured.map(lambda b: ("json", b)), structured.map(lambda b: ("json", b)),
                     structured.map(lambda b: ("json", b)), structured.map(lambda b: ("json", b)),
                     structured.map(lambda b: ("json", b)), structured.map(lambda b: ("json", b)),
                     JSON.map(lambda b: ("json", b)), raw.map(lambda b: ("raw", b)))


STORAGE_OPT_UNSUPPORTED = ("--storage-opt is supported only for overlay over xfs with 'pquota' "
                           "mount option")


class Tally:
    def __init__(self):
        self.statuses = {}
        self.sent = 0

    def add(self, what, status, reply, body):
        self.sent += 1
        self.statuses[(what, status)] = self.statuses.get((what, status), 0) + 1
        # dockerd's own 500s: --storage-opt where the layer store has no quotas;
        # an exec's DetachKeys that do not parse (daemon/exec.go: a plain error)
        words = reply.get("message") if isinstance(reply, dict) else None
        deliberate = (what == "create" and words == STORAGE_OPT_UNSUPPORTED) or \
            (what == "exec" and isinstance(words, str)
             and words.startswith("Invalid escape keys (") and words.endswith(") provided"))
        assert status < 500 or deliberate, (what, status, reply, body)
        if status >= 400:
            assert isinstance(reply, dict) and isinstance(reply.get("message"), str), reply


GENERATED = settings(deadline=None, derandomize=True, database=None, print_blob=False,
                     suppress_health_check=list(HealthCheck))


def test_generated_bodies(pyboxd, client, names):
    """2,000 generated create bodies and a few hundred for update, exec,
    network and volume: never a 5xx or a traceback, nothing left behind."""
    base = tempfile.mkdtemp(prefix="pybox-secbody-")
    before = containers_dir(pyboxd)
    nets, vols = network_ids(client), volume_names(client)
    offset = log_size(pyboxd)
    tally = Tally()
    created = []
    try:
        @settings(GENERATED, max_examples=2100)
        @given(create_bodies(base))
        def create(case):
            kind, body = case
            if kind == "json":
                status, reply = client.request("POST", "/containers/create", body)
            else:
                status, reply = client.request("POST", "/containers/create", raw=body)
            tally.add("create", status, reply, body)
            if status == 201:
                created.append(reply["Id"])
                status, reply = client.request("DELETE", f"/containers/{reply['Id']}?force=1"
                                                         "&v=1")
                assert status == 204, reply

        create()
        assert tally.sent >= 2000, tally.statuses
        assert tally.statuses.get(("create", 201)), tally.statuses  # valid ones were made
        assert tally.statuses.get(("create", 400), 0) > 1000, tally.statuses

        # update, exec, network, volume bodies, against a container of the test's
        target = names("gen")
        pyboxd.ok("run", "-d", "--name", target, IMAGE, "sleep", "600")
        update_fields = {k: typed(v) for k, v in HOST_FIELDS.items()
                         if k in ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus",
                                  "CpuShares", "CpuPeriod", "CpuQuota", "CpusetCpus",
                                  "CpusetMems", "PidsLimit", "BlkioWeight", "OomKillDisable",
                                  "CpuRealtimePeriod", "CpuRealtimeRuntime")}
        update_fields["RestartPolicy"] = restart_policy() | JSON
        others = st.one_of(
            st.tuples(st.just("update"), st.fixed_dictionaries({}, optional=update_fields)
                      | JSON),
            st.tuples(st.just("exec"), st.fixed_dictionaries({}, optional={
                "Cmd": typed("strs") | st.just(["true"]),
                "User": st.sampled_from(["", "root", "0", "0:0", "nobody"]) | STRINGS,
                "Env": typed("strs"), "WorkingDir": STRINGS, "Tty": typed("bool"),
                "Privileged": typed("bool"), "ConsoleSize": JSON,
                "AttachStdout": typed("bool"), "DetachKeys": STRINGS}) | JSON),
            st.tuples(st.just("network"), st.fixed_dictionaries({}, optional={
                "Name": STRINGS | st.builds(lambda: "pybox-secnet-" + uuid.uuid4().hex[:8]),
                "Driver": st.sampled_from(["", "bridge", "host", "bogus"]) | JSON,
                "Internal": typed("bool"), "Labels": typed("strmap"),
                "Options": typed("strmap"), "EnableIPv6": typed("bool"),
                "IPAM": st.fixed_dictionaries({}, optional={"Config": st.lists(
                    st.fixed_dictionaries({}, optional={
                        "Subnet": st.sampled_from(["", "10.199.0.0/24", "bogus", "::/64"]),
                        "Gateway": st.sampled_from(["", "10.199.0.1", "bogus"])}),
                    max_size=2) | JSON}) | JSON}) | JSON),
            st.tuples(st.just("volume"), st.fixed_dictionaries({}, optional={
                "Name": STRINGS | st.builds(lambda: "pybox-secvol-" + uuid.uuid4().hex[:8]),
                "Driver": st.sampled_from(["", "local", "bogus"]) | JSON,
                "Labels": typed("strmap"), "DriverOpts": typed("strmap")}) | JSON),
            st.tuples(st.just("connect"), JSON),
        )

        @settings(GENERATED, max_examples=500)
        @given(others)
        def other(case):
            kind, body = case
            path = {"update": f"/containers/{target}/update",
                    "exec": f"/containers/{target}/exec", "network": "/networks/create",
                    "volume": "/volumes/create",
                    "connect": "/networks/pybox-no-such-net/connect"}[kind]
            status, reply = client.request("POST", path, body)
            tally.add(kind, status, reply, body)
            if kind == "network" and status == 201:
                assert client.request("DELETE", f"/networks/{reply['Id']}")[0] == 204
            if kind == "volume" and status == 201:
                assert client.request("DELETE",
                                      "/volumes/" + urllib.parse.quote(reply["Name"]))[0] == 204

        other()
        assert tally.sent >= 2400, tally.statuses
        pyboxd.ok("rm", "-f", target)
        # nothing left behind: records, networks, mounts, cgroups; the named
        # volumes bodies asked for are kept, as docker keeps them, and removed here
        assert containers_dir(pyboxd) == before
        for volume in volume_names(client) - vols:
            status, reply = client.request("DELETE", "/volumes/" + urllib.parse.quote(volume))
            assert status == 204, reply
        assert network_ids(client) == nets
        made = set(created)
        assert not [m for m in mounts_under(pyboxd.data_root) if any(c in m for c in made)]
        assert not cgroup_dirs(made)
        # every client can still list
        ps = pyboxd.docker("ps", "-a")
        assert ps.returncode == 0, ps.stderr
        log = log_since(pyboxd, offset)
        assert "Traceback" not in log, log[-5000:]
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- odd records on disk ----------------------------------------------------------------------
def test_odd_records_are_listed_and_inspected(pyboxd, client, names):
    """Records an older pyboxd wrote (``Cmd: [5]``), records missing keys or
    holding wrong types: listing and inspect work, for the docker CLI too,
    and each can be removed."""
    name = names("model")
    pyboxd.ok("create", "--name", name, IMAGE, "true")
    model_id = pyboxd.inspect(name)["Id"]
    root = os.path.join(pyboxd.data_root, "containers")
    with open(os.path.join(root, model_id, "config.v2.json")) as f:
        model = json.load(f)

    def variant(**changes):
        rec = json.loads(json.dumps(model))
        for path, value in changes.items():
            *parents, last = path.split("__")
            node = rec
            for p in parents:
                node = node[p]
            node[last] = value
        return rec

    records = [
        variant(Name="/" + names("cmd5"), Path=5, Args=[5, {"a": 1}], Config__Cmd=[5],
                Config__Labels={"a": 5}, Config__User=5),
        variant(Name="/" + names("types"), State__StartedAt="garbage", State__Running="yes",
                HostConfig__RestartPolicy="always", HostConfig__Privileged="false",
                Mounts=[5, {"Type": "volume"}], Config__Healthcheck=5, Created=5),
        {"Name": "/" + names("bare")},
        {"Id": 5, "Name": 5, "State": "x", "Config": [], "HostConfig": 5, "Mounts": "x",
         "NetworkSettings": [1]},
    ]
    ids = [secrets.token_hex(32) for _ in records]
    junk = secrets.token_hex(32)

    def write():
        for cid, rec in zip(ids, records, strict=True):
            os.makedirs(os.path.join(root, cid))
            with open(os.path.join(root, cid, "config.v2.json"), "w") as f:
                json.dump(rec, f)
        os.makedirs(os.path.join(root, junk))
        with open(os.path.join(root, junk, "config.v2.json"), "w") as f:
            f.write("[1, 2]")  # not a record at all: skipped

    offset = log_size(pyboxd)
    pyboxd.restart(between=write)
    try:
        status, listed = client.request("GET", "/containers/json?all=1")
        assert status == 200, listed
        by_id = {c["Id"]: c for c in listed}
        for cid in ids:
            summary = by_id[cid]
            assert isinstance(summary["Command"], str)
            assert all(isinstance(v, str) for v in summary["Labels"].values())
        assert by_id[ids[0]]["Command"] == "5 5 '{\"a\":1}'"
        ps = pyboxd.docker("ps", "-a", "--no-trunc")
        assert ps.returncode == 0, ps.stderr
        for cid in ids:
            assert cid in ps.stdout
            status, info = client.request("GET", f"/containers/{cid}/json")
            assert status == 200, info
            assert info["Id"] == cid
            proc = pyboxd.docker("inspect", cid)
            assert proc.returncode == 0, proc.stderr
        # a string where a bool belongs is shown as what the engine acts on (an
        # older pyboxd took "false" as true), and Cmd [5] is not shown as a Cmd
        info = json.loads(pyboxd.ok("inspect", ids[1]))[0]
        assert info["HostConfig"]["Privileged"] is True
        assert info["State"]["Running"] is False
        info = json.loads(pyboxd.ok("inspect", ids[0]))[0]
        assert info["Config"].get("Cmd") is None and info["Path"] == "5"
        for cid in ids:
            proc = pyboxd.docker("rm", "-f", cid)
            assert proc.returncode == 0, proc.stderr
        assert not set(ids) & containers_dir(pyboxd)
        log = log_since(pyboxd, offset)
        assert "Traceback" not in log, log[-5000:]
    finally:
        for cid in ids + [junk]:
            shutil.rmtree(os.path.join(root, cid), ignore_errors=True)
