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
import threading

import pytest
from compare import Side, differences, snapshot

from support.names import unique_name

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
            assert not differences(got, want)
