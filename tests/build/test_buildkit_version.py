"""POST /build?version=2 (BuildKit).  dockerd 20.10 builds it with its
built-in BuildKit whether or not the daemon's ``features.buildkit`` is set
(that only changes the builder version _ping advertises); pyboxd has only the
classic builder.  What pyboxd answers instead, checked next to dockerd:

- the query is validated as dockerd's (a bad value of another parameter, an
  unknown version: dockerd's error first), then version=2 is refused before
  anything is read or built, in words that say what to do;
- _ping advertises the classic builder ("1"), as dockerd with
  ``features.buildkit`` false;
- POST /session (BuildKit's client session) is upgraded as dockerd's, its
  refusals in dockerd's words; a refused build ends the session it names;
- so Debian's docker 20.10 CLI with DOCKER_BUILDKIT=1 (it opens a session,
  then asks for version=2) fails at once with those words and leaves nothing
  behind (a 404 on /session left it saying "failed to dial gRPC: unable to
  upgrade to h2c, received 404"); with DOCKER_BUILDKIT=0 it builds.
"""

import json
import os
import socket
import subprocess

import pytest
from compare import Side

from support.names import unique_name
from support.unixhttp import UnixHTTPConnection

pytestmark = [pytest.mark.root, pytest.mark.engine]

REFUSAL = ("BuildKit is not supported by pyboxd: build with the classic builder "
           "(version=1, DOCKER_BUILDKIT=0)")
OLD_CLI = "/usr/bin/docker"  # Debian's docker.io 20.10 CLI: it still speaks version=2 itself


def _tar(tmp_path, dockerfile: str) -> bytes:
    ctx = tmp_path / unique_name("bk")
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    return subprocess.run(["tar", "-C", str(ctx), "-c", "Dockerfile"], check=True,
                          capture_output=True).stdout


def _post(sock: str, query: str, body: bytes) -> tuple[int, list[dict]]:
    conn = UnixHTTPConnection(sock, 120)
    try:
        conn.request("POST", "/v1.41/build?" + query, body=body,
                     headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, [json.loads(line) for line in data.splitlines() if line.strip()]


def _ping_headers(sock: str) -> dict[str, str]:
    conn = UnixHTTPConnection(sock, 30)
    try:
        conn.request("GET", "/_ping")
        resp = conn.getresponse()
        resp.read()
        return {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def test_dockerd_builds_version_2_with_buildkit(tmp_path, dockerd):
    """The reference: dockerd 20.10 answers version=2 with BuildKit's stream
    (trace messages, the image ID as "moby.image.id"), no features set."""
    status, messages = _post(dockerd.host.removeprefix("unix://"), "version=2",
                             _tar(tmp_path, "FROM busybox\nLABEL bk=1\n"))
    assert status == 200
    assert any(m.get("id") == "moby.buildkit.trace" for m in messages), messages
    ids = [m["aux"]["ID"] for m in messages if m.get("id") == "moby.image.id"]
    assert ids, messages
    dockerd.docker("rmi", ids[0])


@pytest.mark.parametrize("query,status,message", [
    # another parameter's error comes first, as dockerd parses version last
    ("version=2&buildargs=xx", 400,
     "error reading build args: invalid character 'x' looking for beginning of value"),
    ("version=2&shmsize=xx", 500, 'strconv.ParseInt: parsing "xx": invalid syntax'),
    ("version=3", 500, 'invalid version "3"'),
    ("version=2", 400, REFUSAL),
    ("version=2&remote=client-session&session=x", 400, REFUSAL),
])
def test_version_2_refused_after_dockerds_checks(query, status, message, tmp_path, pyboxd, dockerd):
    body = _tar(tmp_path, "FROM busybox\n")
    if message != REFUSAL:  # dockerd answers these the same
        assert _post(dockerd.host.removeprefix("unix://"), query, body) == (status, [{"message": message}])
    before = Side.of_pyboxd(pyboxd).containers()
    assert _post(pyboxd.socket, query, body) == (status, [{"message": message}])
    assert Side.of_pyboxd(pyboxd).containers() == before


def test_ping_advertises_the_classic_builder(pyboxd, dockerd):
    """dockerd 20.10 advertises a builder version only when its daemon.json
    says (features.buildkit); pyboxd says "1", as dockerd with
    ``"features": {"buildkit": false}``: the clients that read it (docker CLIs
    before 23) then build with the classic builder unless told otherwise."""
    assert "builder-version" not in _ping_headers(dockerd.host.removeprefix("unix://"))
    assert _ping_headers(pyboxd.socket)["builder-version"] == "1"


def _session(sock: str, headers: dict[str, str]) -> bytes:
    """POST /session with ``headers`` -> what the daemon sent in 2 s (or until it closed)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(sock)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST /v1.41/session HTTP/1.1\r\nHost: x\r\n{head}Content-Length: 0\r\n\r\n"
                  .encode())
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
                if b"\r\n\r\n" in data and not data.startswith(b"HTTP/1.1 101"):
                    break
        except TimeoutError:
            pass
        return data
    finally:
        s.close()


@pytest.mark.parametrize("headers,message", [
    ({}, "no upgrade proto in request"),
    ({"Connection": "Upgrade", "Upgrade": "foo"}, "protocol foo not supported"),
])
def test_session_refusals_as_dockerd(headers, message, pyboxd, dockerd):
    for sock in (dockerd.host.removeprefix("unix://"), pyboxd.socket):
        conn = UnixHTTPConnection(sock, 30)
        try:
            conn.request("POST", "/v1.41/session", body=b"", headers=headers)
            resp = conn.getresponse()
            assert (resp.status, json.loads(resp.read())) == (400, {"message": message}), sock
        finally:
            conn.close()


def test_session_upgrades_as_dockerd(pyboxd, dockerd):
    """An h2c /session is upgraded, and the daemon speaks first as the
    session's HTTP/2 client (its preface and SETTINGS), on both."""
    headers = {"Connection": "Upgrade", "Upgrade": "h2c", "X-Docker-Expose-Session-Uuid": "abc"}
    want = _session(dockerd.host.removeprefix("unix://"), headers)
    got = _session(pyboxd.socket, headers)
    for data in (want, got):
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 Switching Protocols", data
        assert {b"Connection: Upgrade", b"Upgrade: h2c"} <= set(lines[1:]), data
        assert rest.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), data


@pytest.mark.skipif(not os.path.exists(OLD_CLI), reason="needs Debian's docker.io 20.10 CLI")
def test_old_docker_cli_with_buildkit_fails_clearly(tmp_path, pyboxd):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN true\n")
    side = Side.of_pyboxd(pyboxd)
    before = side.containers()
    env = dict(side.env, DOCKER_BUILDKIT="1")
    proc = subprocess.run([OLD_CLI, "build", str(ctx)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert REFUSAL in proc.stderr, proc.stderr
    assert side.containers() == before
    env["DOCKER_BUILDKIT"] = "0"
    tag = unique_name("bk")
    proc = subprocess.run([OLD_CLI, "build", "-t", tag, str(ctx)], env=env, capture_output=True,
                          text=True, timeout=120)
    try:
        assert proc.returncode == 0, proc.stderr
    finally:
        side.docker("rmi", "-f", tag)

