"""Remote build contexts (POST /build?remote=URL, as docker-py sends a URL
path, and ``docker build <git url>``, which the docker CLI clones itself),
offline: a git repository served on 127.0.0.1 by ``git daemon`` and over
git's dumb HTTP, tarballs and a plain Dockerfile served by a local HTTP
server.  Each request goes to the private pyboxd and to a private Debian
dockerd 20.10 and the answers are compared: what is built (the images'
trees), the errors when a URL cannot be reached (status and words), and the
"Downloading context" progress messages of a URL's download in the stream.
"""

import contextlib
import gzip
import http.server
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.parse

import pytest
from compare import Side, differences, snapshot

from support.names import unique_name
from support.unixhttp import UnixHTTPConnection

pytestmark = [pytest.mark.root, pytest.mark.engine]

if not shutil.which("git"):
    pytest.skip("needs git", allow_module_level=True)

TOP_DOCKERFILE = "FROM busybox\nCOPY . /ctx/\n"
SUB_DOCKERFILE = "FROM busybox\nCOPY . /sub/\n"
PLAIN_DOCKERFILE = "FROM busybox\nLABEL from=url\n"
BIG = 2_000_000  # bytes of one context file: more than one 512 KiB progress step


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(cwd, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd))
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _tar(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """-> (git daemon's base URL, the HTTP server's base URL); a repository
    r.git (branch main: a Dockerfile, top.txt, sub/Dockerfile), ctx.tar,
    big.tar, big.tar.gz and a plain Dockerfile ``df`` on the HTTP server."""
    base = tmp_path_factory.mktemp("remote")
    repo, srv = base / "repo", base / "srv"
    (repo / "sub").mkdir(parents=True)
    srv.mkdir()
    (repo / "Dockerfile").write_text(TOP_DOCKERFILE)
    (repo / "top.txt").write_text("top\n")
    (repo / "sub" / "Dockerfile").write_text(SUB_DOCKERFILE)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "x")
    _git(base, "clone", "-q", "--bare", str(repo), str(srv / "r.git"))
    _git(srv / "r.git", "update-server-info")
    _tar(srv / "ctx.tar", {"Dockerfile": TOP_DOCKERFILE.encode(), "a.txt": b"a\n"})
    _tar(srv / "big.tar", {"Dockerfile": TOP_DOCKERFILE.encode(), "big": os.urandom(BIG)})
    (srv / "big.tar.gz").write_bytes(gzip.compress((srv / "big.tar").read_bytes()))
    (srv / "df").write_text(PLAIN_DOCKERFILE)

    port = _free_port()
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={srv}",
                               "--listen=127.0.0.1", f"--port={port}", str(srv)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(srv), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "git daemon did not start"
            time.sleep(0.05)
        yield f"git://127.0.0.1:{port}", f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        daemon.terminate()
        daemon.wait(10)


def _sock(daemon) -> str:
    return daemon.host.removeprefix("unix://")


def post_build(sock: str, query: dict[str, str]) -> tuple[int, list[dict]]:
    """POST /build with an empty body -> (status, the JSON messages or the error reply)."""
    conn = UnixHTTPConnection(sock, 300)
    try:
        conn.request("POST", "/v1.41/build?" + urllib.parse.urlencode(query), body=b"")
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, [json.loads(line) for line in data.splitlines() if line.strip()]


@contextlib.contextmanager
def _tagged(*sides: Side):
    tag = unique_name("remote")
    try:
        yield tag
    finally:
        for side in sides:
            side.docker("rmi", "-f", tag)


def _built_id(messages: list[dict]) -> str:
    ids = [m["aux"]["ID"] for m in messages if isinstance(m.get("aux"), dict) and "ID" in m["aux"]]
    errors = [m for m in messages if "error" in m]
    assert ids and not errors, messages
    return ids[-1]


# -- what is built ------------------------------------------------------------------------------
BUILDS = {
    "git": "{git}/r.git#main",
    "git-subdir": "{git}/r.git#main:sub",
    "git-dumb-http": "{http}/r.git#main",
    "tarball": "{http}/ctx.tar",
    "tarball-gzip": "{http}/big.tar.gz",
    "plain-dockerfile": "{http}/df",
}


@pytest.mark.parametrize("name", list(BUILDS))
def test_remote_context_builds_as_dockerd(name, served, pyboxd, dockerd):
    git, http = served
    url = BUILDS[name].format(git=git, http=http)
    mine, ref = Side.of_pyboxd(pyboxd), Side.of_dockerd(dockerd)
    with _tagged(mine, ref) as tag:
        status, want = post_build(_sock(dockerd), {"remote": url, "t": tag})
        assert status == 200 and _built_id(want), want
        status, got = post_build(_sock(pyboxd), {"remote": url, "t": tag})
        assert status == 200 and _built_id(got), got
        whole_checkout = name in ("git", "git-dumb-http")
        problems = differences(snapshot(mine, tag), snapshot(ref, tag), source_hashes=not whole_checkout)
        if whole_checkout:  # .git's index and logs hold the clone's times (so the COPY's hash too)
            problems = [p for p in problems if "/ctx/.git/" not in p]
        assert not problems, "\n".join(problems)


@pytest.mark.parametrize("url", ["{git}/r.git#main:sub", "{http}/big.tar.gz"])
def test_docker_build_of_a_url_as_dockerd(url, served, pyboxd, dockerd, tmp_path):
    """``docker build <git url>`` and ``docker build <tarball url>``: the
    docker CLI clones or downloads it and sends it as a tar context; the
    images are the same."""
    git, http = served
    mine, ref = Side.of_pyboxd(pyboxd), Side.of_dockerd(dockerd)
    for side in (mine, ref):  # the CLI leaves its clone (docker-build-git*) in TMPDIR
        side.env["TMPDIR"] = str(tmp_path)
    with _tagged(mine, ref) as tag:
        for side in (ref, mine):
            proc = side.build(url.format(git=git, http=http), tag=tag)
            assert proc.returncode == 0, f"{side.name}: {proc.stdout}\n{proc.stderr}"
        problems = differences(snapshot(mine, tag), snapshot(ref, tag))
        assert not problems, "\n".join(problems)


# -- unreachable --------------------------------------------------------------------------------
FAILURES = {
    "git-refused": "git://127.0.0.1:1/r.git#main",
    "git-not-exported": "{git}/nope.git#main",
    "git-no-master": "{git}/r.git",
    "git-http-refused": "http://127.0.0.1:1/r.git#main",
    "url-refused": "http://127.0.0.1:1/ctx.tar",
    "url-404": "{http}/nope.tar",
    "file-url": "file:///nonexistent/r.git",
    "git-missing-subdir": "{git}/r.git#main:nope",
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_unreachable_remote_context_fails_as_dockerd(name, served, pyboxd, dockerd):
    git, http = served
    url = FAILURES[name].format(git=git, http=http)
    want = post_build(_sock(dockerd), {"remote": url})
    got = post_build(_sock(pyboxd), {"remote": url})
    assert want[0] != 200 or any("error" in m for m in want[1]), want
    assert _same_words(got) == _same_words(want)


def _same_words(reply: tuple[int, list[dict]]) -> tuple[int, list[dict]]:
    """What differs by the machine only masked: curl's time to fail, the
    daemon's private clone directory."""
    status, messages = reply
    text = json.dumps(messages)
    text = re.sub(r"after \d+ ms", "after N ms", text)
    text = re.sub(r"stat /[^ ]*/nope: ", "stat <clone>/nope: ", text)
    return status, json.loads(text)


# -- Downloading context ------------------------------------------------------------------------
def _downloads(messages: list[dict]) -> list[dict]:
    """The messages before the first step (the download's progress)."""
    out = []
    for m in messages:
        if "stream" in m and m["stream"].startswith("Step "):
            break
        out.append(m)
    return out


def test_downloading_context_progress_as_dockerd(served, pyboxd, dockerd):
    """A URL context's download shows in the stream as dockerd's progress
    reader writes it: {"status": URL, "id": "Downloading context",
    "progressDetail": {"current": N}, "progress": "%8s" of N's size}, one per
    512 KiB read at most every 100 ms (none for a small tarball); a plain
    Dockerfile's whole length once it is read, then an empty message."""
    _, http = served
    got, want = {}, {}
    for name in ("ctx.tar", "big.tar", "big.tar.gz", "df"):
        url = f"{http}/{name}"
        want[name] = _downloads(post_build(_sock(dockerd), {"remote": url})[1])
        got[name] = _downloads(post_build(_sock(pyboxd), {"remote": url})[1])
    assert got["ctx.tar"] == want["ctx.tar"] == []
    assert got["df"] == want["df"] == [
        {"status": f"{http}/df", "progressDetail": {"current": len(PLAIN_DOCKERFILE)},
         "progress": f"{len(PLAIN_DOCKERFILE)}B".rjust(8), "id": "Downloading context"}, {}]
    for name in ("big.tar", "big.tar.gz"):
        for messages in (got[name], want[name]):
            assert messages, (name, got[name], want[name])
            for m in messages:
                assert sorted(m) == ["id", "progress", "progressDetail", "status"], m
                assert (m["id"], m["status"]) == ("Downloading context", f"{http}/{name}")
                current = m["progressDetail"]["current"]
                assert m["progressDetail"] == {"current": current} and current > 512 * 1024
                assert m["progress"].endswith(("kB", "MB")) and len(m["progress"]) == 8
