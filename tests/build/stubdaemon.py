"""A stand-in daemon for the API and client tests of builds: the real HTTP
server (pybox.api.server) with the real build routes (pybox.api.build, and
so the real context handling), in the test's process, on a private socket,
with ``build`` replaced by a recorder (``Builder``) that runs what each test
says.  No root needed; nothing outside the test's tmp_path is touched."""

import io
import json
import os
import tarfile
import threading

import pytest

from pybox.api import build as api_build
from pybox.api.server import Router, Server
from pybox.build import context as build_context
from support.unixhttp import UnixHTTPConnection

IMAGE_ID = "sha256:" + "ab" * 32


# -- the server, with a builder that does what each test says ---------------------------------
class FakeImages:
    def __init__(self):
        self.tags = []

    def tag(self, source, target):
        self.tags.append((source, target))


class FakeEngine:
    def __init__(self, data_root):
        self.data_root = data_root
        self.images = FakeImages()


class Builder:
    """The stand-in for pybox.build.builder.build: records what it was given
    (the context's files, the Dockerfile's text, the options) and runs the
    test's ``script(out, cancel)``."""

    def __init__(self):
        self.calls = []
        self.script = None
        self.cancelled = threading.Event()

    def __call__(self, engine, options, context_dir, out, cancel, files=None):
        if files is not None:  # a plain tar context is extracted when a step needs it
            files.materialize()
        files = {}
        for top, dirs, names in os.walk(context_dir):
            for name in names + dirs:
                path = os.path.join(top, name)
                rel = os.path.relpath(path, context_dir)
                if os.path.islink(path):
                    files[rel] = "-> " + os.readlink(path)
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        files[rel] = f.read()
                else:
                    files[rel] = "dir"
        dockerfile = options.dockerfile_content
        self.calls.append({"options": options, "files": files, "dockerfile": dockerfile,
                           "context_dir": context_dir})
        if self.script is not None:
            try:
                return self.script(out, cancel)
            finally:
                if cancel.is_set():
                    self.cancelled.set()
        # what pybox.build.builder.build says around its steps
        out.stream("Step 1/1 : FROM scratch\n")
        out.aux({"ID": IMAGE_ID})
        out.stream("Successfully built abababababab\n")
        for tag in options.tags:
            out.stream(f"Successfully tagged {tag}\n")
        if options.quiet:
            out.stream(IMAGE_ID + "\n")
        return IMAGE_ID


@pytest.fixture
def stubd(tmp_path, monkeypatch):
    builder = Builder()
    monkeypatch.setattr(api_build, "build", builder)
    engine = FakeEngine(str(tmp_path / "root"))
    os.makedirs(engine.data_root)
    router = Router()

    @router.route("HEAD", "/_ping")
    @router.route("GET", "/_ping")
    def ping(req, resp):
        resp.send(200, b"OK", "text/plain; charset=utf-8", headers=[("Builder-Version", "1")])

    api_build.register(router, engine)
    server = Server(router, "pybox/test (linux)")
    sock = str(tmp_path / "api.sock")
    server.listen_unix(sock)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class D:
        pass
    d = D()
    d.sock, d.engine, d.builder, d.tmp = sock, engine, builder, tmp_path
    d.contexts = os.path.join(engine.data_root, build_context.CONTEXTS)
    yield d
    server.shutdown()
    thread.join(10)
    server.close()


def post_build(d, body=b"", query="", headers=None, timeout=30):
    """-> (status, content type, [messages] or the error reply)."""
    conn = UnixHTTPConnection(d.sock, timeout)
    try:
        conn.request("POST", "/v1.41/build" + (f"?{query}" if query else ""), body=body,
                     headers={"Content-Type": "application/x-tar", **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        ctype = resp.getheader("Content-Type")
        if resp.status != 200:
            return resp.status, ctype, json.loads(data)
        return resp.status, ctype, [json.loads(line) for line in data.splitlines() if line]
    finally:
        conn.close()


def tar_of(files, fmt=tarfile.PAX_FORMAT):
    """files: {name: bytes | TarInfo-producing callable}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, content in files.items():
            if callable(content):
                tar.addfile(content(name))
                continue
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def symlink(target):
    def make(name):
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        return info
    return make


def hardlink(target):
    def make(name):
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE
        info.linkname = target
        return info
    return make


def nothing_left(d):
    return not os.path.isdir(d.contexts) or os.listdir(d.contexts) == []


