"""What COPY and ADD name their sources by, and what they copy, compared with a
private Debian dockerd 20.10's classic builder (``DOCKER_BUILDKIT=0 docker
build``, the docker 28 CLI for both):

- the source hashes in history ("COPY dir:<sha256> in /dst") of a stage's and
  an image's files (dockerd's lazySource: the mode with its file type bits,
  the owner's names looked up on the daemon's host) and of an ADD'ed URL
  (served on 127.0.0.1);
- hard links inside what is copied (a context directory, COPY --from, a local
  tar ADD extracts) stay hard links in the layer, as dockerd keeps them.

Each build is made on both daemons and compared with tests/build/compare.py
(history, every layer's entries with their hard-link groups, the tree).
"""

import contextlib
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading

import pytest
from compare import Side, build_error, differences, snapshot

from support.names import unique_name
from support.unixhttp import UnixHTTPConnection

pytestmark = [pytest.mark.root, pytest.mark.engine]


def _context(tmp_path, dockerfile: str) -> str:
    path = tmp_path / unique_name("ctx")
    path.mkdir()
    (path / "Dockerfile").write_text(dockerfile)
    return str(path)


@contextlib.contextmanager
def _built(pyboxd, dockerd, context: str, *args: str):
    """The context built on both daemons -> (pyboxd's, dockerd's) snapshots; the tags removed after."""
    sides = Side.of_pyboxd(pyboxd), Side.of_dockerd(dockerd)
    tag = unique_name("srcs")
    try:
        snaps = []
        for side in sides:
            proc = side.build(context, *args, tag=tag)
            assert proc.returncode == 0, f"{side.name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            snaps.append(snapshot(side, tag))
        yield snaps[0], snaps[1]
    finally:
        for side in sides:
            side.docker("rmi", "-f", tag)


@contextlib.contextmanager
def _http_file(body: bytes, last_modified: str = "Tue, 01 Dec 2026 10:00:00 GMT"):
    """An HTTP server on 127.0.0.1 answering every GET with ``body`` -> its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Last-Modified", last_modified)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# -- source hashes ------------------------------------------------------------------------------
STAGE_FILES = (
    "mkdir -p /d/sub /d/sticky && echo a > /d/a && echo s > /d/sub/s && ln -s a /d/link"
    " && mkfifo /d/fifo && chmod 4755 /d/a && chmod 1777 /d/sticky"
    " && chown 4242:4343 /d/sub/s && chown 65534:65534 /d/sub && chown -h 1:5 /d/link"
)


def test_copy_from_stage_and_add_url_hashes_as_dockerd(tmp_path, pyboxd, dockerd):
    """Owners the host names (nobody, daemon) and ones it does not (4242),
    set-id and sticky bits, a symlink and a fifo in a stage's directory; a
    single file of an image; a download: every created_by as dockerd's."""
    with _http_file(b"downloaded\n") as url:
        context = _context(tmp_path, f"""FROM busybox AS stage
RUN {STAGE_FILES}
FROM busybox
COPY --from=stage /d /copied
COPY --from=stage /d/sub/s /d/link /one/
COPY --from=busybox /bin/busybox /bb
ADD {url}/file.txt /fetched.txt
ADD {url}/file.txt /fetched/
""")
        with _built(pyboxd, dockerd, context) as (got, want):
            assert got.history == want.history
            problems = differences(got, want)
            assert not problems, "\n".join(problems)


# -- hard links ---------------------------------------------------------------------------------
def _hard_link_groups(snap, layer: int) -> dict[str, set[str]]:
    """A layer's hard-link groups: first path -> every path of the group."""
    groups: dict[str, set[str]] = {}
    for path, entry in snap.layers[layer].items():
        if entry.group:
            groups.setdefault(entry.group, set()).add(path)
    return groups


def _tar(members: list[tuple[str, bytes | str | None]]) -> bytes:
    """A tar of (name, content: bytes for a file, str for a hard link's target, None for a dir)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, what in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if what is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(what, str):
                info.type, info.linkname = tarfile.LNKTYPE, what
                tar.addfile(info)
            else:
                info.size, info.mode = len(what), 0o640
                tar.addfile(info, io.BytesIO(what))
    return buf.getvalue()


def test_hard_links_stay_linked_as_dockerd(tmp_path, pyboxd, dockerd):
    """A context directory's, the whole context's, a stage's directory's and a
    local tar's hard links are hard links in the step's layer (one file, the
    others linked to it), on both daemons; a link to a file outside what is
    copied is a file of its own; a single file named as a source is a file."""
    context = _context(tmp_path, """FROM busybox AS stage
RUN mkdir -p /s/sub && echo s > /s/one && ln /s/one /s/two && ln /s/one /s/sub/three \\
 && echo out > /outside && ln /outside /s/in
FROM busybox
COPY dir /copied/
COPY . /all/
COPY --from=stage /s /staged
COPY --from=stage /s/one /s/two /singles/
ADD links.tar /unpacked/
""")
    root = os.path.join(context, "dir")
    os.makedirs(os.path.join(root, "sub"))
    with open(os.path.join(root, "a"), "w") as f:
        f.write("a\n")
    os.link(os.path.join(root, "a"), os.path.join(root, "b"))
    os.link(os.path.join(root, "a"), os.path.join(root, "sub", "c"))
    with open(os.path.join(context, "top"), "w") as f:
        f.write("top\n")
    os.link(os.path.join(context, "top"), os.path.join(root, "top-link"))
    with open(os.path.join(context, "links.tar"), "wb") as f:
        f.write(_tar([("d", None), ("d/f", b"f\n"), ("d/g", "d/f"), ("h", "/d/f"), ("e/", None),
                      ("e/i", "./d/f")]))
    with _built(pyboxd, dockerd, context) as (got, want):
        problems = differences(got, want)
        assert not problems, "\n".join(problems)
        # the layers after busybox's: COPY dir, COPY ., COPY --from dir, COPY --from files, ADD
        assert _hard_link_groups(got, 1) == {"/copied/a": {"/copied/a", "/copied/b", "/copied/sub/c"}}
        assert _hard_link_groups(got, 2) == {
            "/all/dir/a": {"/all/dir/a", "/all/dir/b", "/all/dir/sub/c"},
            "/all/dir/top-link": {"/all/dir/top-link", "/all/top"}}
        assert _hard_link_groups(got, 3) == {"/staged/one": {"/staged/one", "/staged/two",
                                                             "/staged/sub/three"}}
        assert _hard_link_groups(got, 4) == {}
        assert _hard_link_groups(got, 5) == {"/unpacked/d/f": {"/unpacked/d/f", "/unpacked/d/g",
                                                               "/unpacked/h", "/unpacked/e/i"}}


HOSTILE_LINKS = {
    # a hard link climbing out of the destination, and one through a symlink to /etc
    "climbs-out": [("a", b"a\n"), ("x", "../../../../etc/passwd")],
    "through-symlink": [("a", b"a\n"), ("l", ("symlink", "/etc")), ("x", "l/passwd")],
}


@pytest.mark.parametrize("name", list(HOSTILE_LINKS))
def test_add_tar_hard_link_never_leaves_the_destination(name, tmp_path, pyboxd, dockerd):
    """A local tar's hard link to a file outside ADD's destination fails the
    step on both daemons (dockerd's chrooted untar finds nothing there); the
    image's /etc/passwd is never linked into it."""
    context = _context(tmp_path, "FROM busybox\nADD evil.tar /dst/\nRUN ls -l /dst\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, what in HOSTILE_LINKS[name]:
            info = tarfile.TarInfo(member)
            if isinstance(what, bytes):
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
            elif isinstance(what, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, what[1]
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.LNKTYPE, what
                tar.addfile(info)
    with open(os.path.join(context, "evil.tar"), "wb") as f:
        f.write(buf.getvalue())
    mine, ref = Side.of_pyboxd(pyboxd), Side.of_dockerd(dockerd)
    before = mine.containers()
    want = ref.build(context, "--no-cache")
    got = mine.build(context, "--no-cache")
    assert want.returncode == 1 and "failed to copy files" in build_error(want), want.stderr
    assert got.returncode == 1, got.stdout + got.stderr
    assert "Step 3/3" not in got.stdout
    assert build_error(got).startswith('failed to copy files: invalid hardlink "/dst/x" -> '), got.stderr
    assert mine.containers() == before


OLD_CLI = "/usr/bin/docker"  # Debian's docker.io 20.10 CLI


@pytest.mark.skipif(not os.path.exists(OLD_CLI), reason="needs Debian's docker.io 20.10 CLI")
@pytest.mark.parametrize("links", [False, True])
def test_old_cli_context_hashes_as_dockerd(links, tmp_path, pyboxd, dockerd):
    """docker CLIs before 24 write the file type bits into their context tar's
    modes (their archive's fillGo18FileTypeBits), which dockerd's tarsum
    hashes: the same sources hash as on dockerd, whether pyboxd keeps the
    tar (plain files) or extracts it (a symlink and a hard link in it)."""
    context = _context(tmp_path, "FROM busybox\nCOPY a /a\nCOPY dir /dir\nCOPY . /all/\n")
    with open(os.path.join(context, "a"), "w") as f:
        f.write("a\n")
    os.makedirs(os.path.join(context, "dir", "sub"))
    with open(os.path.join(context, "dir", "sub", "b"), "w") as f:
        f.write("b\n")
    if links:  # (to-a dangles: "a" beside it; dockerd hashes it as its path)
        os.symlink("a", os.path.join(context, "dir", "to-a"))
        os.symlink("sub/b", os.path.join(context, "dir", "to-b"))
        os.link(os.path.join(context, "dir", "sub", "b"), os.path.join(context, "dir", "hard"))
    sides = Side.of_pyboxd(pyboxd), Side.of_dockerd(dockerd)
    tag = unique_name("oldcli")
    try:
        snaps = []
        for side in sides:
            proc = subprocess.run([OLD_CLI, "build", "-t", tag, context], env=side.env, capture_output=True,
                                  text=True, timeout=300)
            assert proc.returncode == 0, f"{side.name}: {proc.stdout}\n{proc.stderr}"
            snaps.append(snapshot(side, tag))
        got, want = snaps
        assert got.history == want.history
        problems = differences(got, want)
        assert not problems, "\n".join(problems)
    finally:
        for side in sides:
            side.docker("rmi", "-f", tag)


def _post_build(sock: str, files: dict[str, bytes]) -> list[dict]:
    """POST /build of a tar of ``files`` -> its JSON messages."""
    conn = UnixHTTPConnection(sock, 300)
    try:
        conn.request("POST", "/v1.41/build?nocache=1&rm=1", body=_tar([(k, v) for k, v in files.items()]),
                     headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        assert resp.status == 200
        data = resp.read()
    finally:
        conn.close()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def _after_step(messages: list[dict], step: str) -> list[dict]:
    """The messages of ``step`` ("Step 2/2 :"), up to its container or result line."""
    start = next(i for i, m in enumerate(messages) if m.get("stream", "").startswith(step))
    out = []
    for m in messages[start + 1:]:
        if m.get("stream", "").startswith(" ---> "):
            break
        if m != {"stream": "\n"} or out:  # (the step line's own newline)
            out.append(m)
    return out


@pytest.mark.parametrize("size", [11, 2_000_000])
def test_add_url_progress_as_dockerd(size, pyboxd, dockerd):
    """ADD <url> streams its download as dockerd: "Downloading" messages with
    current and total and JSONProgress's bar (the first read's, the whole
    body's; in between at most one per 100 ms), then a blank line."""
    with _http_file(b"x" * size) as url:
        files = {"Dockerfile": f"FROM busybox\nADD {url}/f /f\n".encode()}
        results = {}
        for side, sock in ((Side.of_dockerd(dockerd), dockerd.host.removeprefix("unix://")),
                           (Side.of_pyboxd(pyboxd), pyboxd.socket)):
            messages = _post_build(sock, files)
            for m in messages:
                if isinstance(m.get("aux"), dict):
                    side.docker("rmi", m["aux"]["ID"])
            results[side.name] = _after_step(messages, "Step 2/2 :")
    got, want = results["pyboxd"], results["dockerd"]
    for messages in (got, want):
        assert messages[-1] == {"stream": "\n"}, messages
        for m in messages[:-1]:
            assert sorted(m) == ["progress", "progressDetail", "status"] and m["status"] == "Downloading", m
            assert m["progressDetail"]["total"] == size, m
    # the first message is the first read's: how much that was is the socket's
    # doing (dockerd's reads 32768 bytes, or also what its header parsing had
    # buffered), so its figures may differ; its shape and its bar may not
    first_got, first_want = got[0], want[0]
    assert first_got["status"] == first_want["status"]
    assert first_got["progressDetail"]["total"] == first_want["progressDetail"]["total"]
    assert 0 < first_got["progressDetail"]["current"] <= size
    if first_got["progressDetail"] == first_want["progressDetail"]:
        assert first_got == first_want
    else:  # the same bar's width, the same right-aligned figures' field
        bar_got, _, text_got = first_got["progress"].partition("]")
        bar_want, _, text_want = first_want["progress"].partition("]")
        assert (len(bar_got), len(text_got)) == (len(bar_want), len(text_want)), \
            (first_got, first_want)
    assert got[-2:] == want[-2:]
