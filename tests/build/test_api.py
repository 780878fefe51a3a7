"""POST /build's API side (pybox.api.build, pybox.build.context) served by the
real HTTP server in this process, with a stand-in builder: the context formats
and hostile archives, the Dockerfile's lookup and removal, the query's
validation in dockerd's words, the JSON message stream (stream, aux, errorDetail,
q), a client that hangs up cancelling the build, remote contexts (offline: a
local HTTP server, an unreachable URL), prune -- and nothing left behind.

The builder itself (pybox.build.builder) is B2's and tested with pyboxd in the
other files of this directory; here ``build`` is replaced so these run in a
second, as any user, and cannot be broken by a step's behaviour.
"""

import base64
import bz2
import gzip
import http.server
import json
import lzma
import os
import socket
import subprocess
import tarfile
import threading
import time

import pytest
import stubdaemon
from stubdaemon import IMAGE_ID, hardlink, nothing_left, post_build, symlink, tar_of

from pybox.build import context as build_context
from pybox.errors import BuildError
from support.unixhttp import UnixHTTPConnection

stubd = stubdaemon.stubd  # the fixture

DOCKERFILE = b"FROM scratch\nCOPY . /\n"


# -- contexts -----------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [None, gzip.compress, bz2.compress, lzma.compress],
                         ids=["plain", "gzip", "bzip2", "xz"])
def test_context_formats_and_stream(stubd, compress):
    body = tar_of({"Dockerfile": DOCKERFILE, "a/b.txt": b"data\n"})
    if compress:
        body = compress(body)
    status, ctype, messages = post_build(stubd, body, "t=me/app&t=other:1&t=&t=me/app:latest")
    assert (status, ctype) == (200, "application/json")
    assert messages == [
        {"stream": "Step 1/1 : FROM scratch\n"},
        {"aux": {"ID": IMAGE_ID}},
        {"stream": "Successfully built abababababab\n"},
        {"stream": "Successfully tagged me/app\n"},
        {"stream": "Successfully tagged other:1\n"},
    ]
    call = stubd.builder.calls[0]
    assert call["files"] == {"Dockerfile": DOCKERFILE, "a": "dir", "a/b.txt": b"data\n"}
    assert call["dockerfile"] == DOCKERFILE
    assert call["options"].tags == ["me/app", "other:1"]
    assert nothing_left(stubd)


def test_large_context_streamed_intact(stubd):
    blob = os.urandom(1 << 20) * 12  # 12 MiB: many body chunks
    status, _, _ = post_build(stubd, gzip.compress(tar_of({"Dockerfile": DOCKERFILE,
                                                             "big": blob}), 1))
    assert status == 200
    assert stubd.builder.calls[0]["files"]["big"] == blob
    assert nothing_left(stubd)


def test_dockerignore_removes_dockerfile_and_itself_after_reading(stubd):
    # what the docker CLI sends: both files always, the daemon drops them when named
    body = tar_of({"Dockerfile": DOCKERFILE, ".dockerignore": b"Dockerfile\n.dockerignore\n",
                   "keep": b"k"})
    status, _, _ = post_build(stubd, body)
    assert status == 200
    call = stubd.builder.calls[0]
    assert call["files"] == {"keep": b"k"}
    assert call["dockerfile"] == DOCKERFILE  # read before it left the context
    assert nothing_left(stubd)


def test_dockerignore_not_naming_them_keeps_them(stubd):
    body = tar_of({"Dockerfile": DOCKERFILE, ".dockerignore": b"*.log\n", "x.log": b"l"})
    status, _, _ = post_build(stubd, body)
    assert status == 200
    # the rest of .dockerignore is the client's to apply, as with dockerd
    assert set(stubd.builder.calls[0]["files"]) == {"Dockerfile", ".dockerignore", "x.log"}


def test_dockerfile_from_outside_the_context_as_docker_py_sends_it(stubd):
    name = ".dockerfile.0123456789abcdef0123"
    body = tar_of({"app.py": b"print()\n", name: b"FROM scratch\nCOPY app.py /\n",
                   ".dockerignore": f"{name}\n.dockerignore\n".encode()})
    status, _, _ = post_build(stubd, body, f"dockerfile={name}")
    assert status == 200
    call = stubd.builder.calls[0]
    assert call["dockerfile"] == b"FROM scratch\nCOPY app.py /\n"
    assert call["files"] == {"app.py": b"print()\n"}


def test_dockerfile_in_a_subdirectory_and_lowercase_fallback(stubd):
    status, _, _ = post_build(stubd, tar_of({"sub/Build.df": DOCKERFILE}),
                              "dockerfile=sub/Build.df")
    assert status == 200
    status, _, _ = post_build(stubd, tar_of({"dockerfile": b"FROM scratch\n"}))
    assert status == 200
    assert stubd.builder.calls[1]["dockerfile"] == b"FROM scratch\n"


def test_dockerfile_symlink_resolves_inside_the_context(stubd, tmp_path):
    # a Dockerfile that is a symlink to an absolute path: read inside the context,
    # never the daemon's own file of that name
    outside = tmp_path / "Dockerfile"
    outside.write_bytes(b"FROM outside\n")
    body = tar_of({"Dockerfile": symlink(str(outside)), str(outside).lstrip("/"): DOCKERFILE})
    status, _, _ = post_build(stubd, body)
    assert status == 200
    assert stubd.builder.calls[0]["dockerfile"] == DOCKERFILE  # the context's, not the host's


@pytest.mark.parametrize("query,body,status,message", [
    ("", b"", 500, "Cannot locate specified Dockerfile: Dockerfile"),
    ("dockerfile=nope", None, 500, "Cannot locate specified Dockerfile: nope"),
    ("dockerfile=../../etc/passwd", None, 500,
     "forbidden path outside the build context: ../../etc/passwd ()"),
    ("", tar_of({"Dockerfile": b""}), 400, "the Dockerfile (Dockerfile) cannot be empty"),
    ("t=Bad:tag", None, 500, "invalid reference format: repository name (library/Bad) must be "
                             "lowercase"),
    ("t=x@sha256:" + "0" * 64, None, 500, "build tag cannot contain a digest"),
    ("buildargs=xx", None, 400,
     "error reading build args: invalid character 'x' looking for beginning of value"),
    ("labels=%5B%5D", None, 400,
     "error reading labels: json: cannot unmarshal array into Go value of type "
     "map[string]string"),
    ("ulimits=xx", None, 400,
     "error reading ulimit settings: invalid character 'x' looking for beginning of value"),
    ("cachefrom=xx", None, 500, "invalid character 'x' looking for beginning of value"),
    ("shmsize=xx", None, 500, 'strconv.ParseInt: parsing "xx": invalid syntax'),
    ("version=3", None, 500, 'invalid version "3"'),
    ("version=2", None, 400, "BuildKit is not supported by pyboxd: build with the classic "
                             "builder (version=1, DOCKER_BUILDKIT=0)"),
    ("squash=1", None, 400, "squash is only supported with experimental mode"),
    ("remote=foo", None, 500, "remoteURL (foo) could not be recognized as URL"),
])
def test_refused_before_the_build_in_dockerds_words(stubd, query, body, status, message):
    if body is None:
        body = tar_of({"Dockerfile": DOCKERFILE})
    got = post_build(stubd, body, query)
    assert got == (status, "application/json", {"message": message})
    assert stubd.builder.calls == []
    assert nothing_left(stubd)


def test_query_values_reach_the_builder(stubd):
    auth = {"reg.example:5000": {"username": "u", "password": "p"}}
    header = base64.urlsafe_b64encode(json.dumps(auth).encode()).decode().rstrip("=")
    query = ("buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&labels=%7B%22l%22%3A%22v%22%7D"
             "&target=t1&nocache=1&pull=true&rm=0&cachefrom=%5B%22c%3A1%22%5D&networkmode=none"
             "&extrahosts=h%3A1.2.3.4&extrahosts=g%3A5.6.7.8&shmsize=1024&memory=2048&memswap=-1"
             "&cpushares=512&cpusetcpus=0&cpuperiod=100000&cpuquota=50000&platform=linux%2Famd64"
             "&ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Hard%22%3A9%2C%22Soft%22%3A8%7D%5D")
    status, _, _ = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE}), query,
                              {"X-Registry-Config": header})
    assert status == 200
    o = stubd.builder.calls[0]["options"]
    assert (o.build_args, o.labels, o.target, o.no_cache, o.pull, o.remove, o.force_remove) == \
        ({"A": "1", "B": None}, {"l": "v"}, "t1", True, True, False, False)
    assert (o.cache_from, o.network_mode, o.extra_hosts) == \
        (["c:1"], "none", ["h:1.2.3.4", "g:5.6.7.8"])
    assert (o.shm_size, o.memory, o.memory_swap, o.cpu_shares, o.cpuset_cpus, o.cpu_period,
            o.cpu_quota) == (1024, 2048, -1, 512, "0", 100000, 50000)
    assert o.ulimits == [{"Name": "nofile", "Hard": 9, "Soft": 8}]
    assert (o.platform, o.quiet, o.squash) == ("linux/amd64", False, False)
    assert o.registry_auth == auth
    # forcerm implies rm; a bad X-Registry-Config is no credentials, as dockerd's
    status, _, _ = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE}), "rm=0&forcerm=1",
                              {"X-Registry-Config": "%%%"})
    o = stubd.builder.calls[1]["options"]
    assert (status, o.remove, o.force_remove, o.registry_auth) == (200, True, True, {})


# -- hostile contexts -----------------------------------------------------------------------------
@pytest.mark.parametrize("members", [
    {"../escape": b"x"},
    {"a/../../escape": b"x"},
    {"link": symlink("../../.."), "link/escape": b"x"},
    {"abs": symlink("/"), "abs/escape": b"x"},
    {"hard": hardlink("../outside-file")},
], ids=["dotdot", "dotdot-nested", "symlink-out", "symlink-abs-then-through", "hardlink-out"])
def test_hostile_context_writes_nothing_outside(stubd, members):
    sentinel = stubd.tmp / "outside-file"
    sentinel.write_bytes(b"untouched")
    before = sorted(os.listdir(stubd.tmp))
    status, _, reply = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE, **members}))
    if status == 200:
        # a member absolute or through an absolute symlink lands inside, as moby's Unpack
        assert stubd.builder.calls
    else:
        assert status == 400, reply
    assert sentinel.read_bytes() == b"untouched"
    assert sorted(os.listdir(stubd.tmp)) == before
    assert not os.path.exists("/escape")
    assert nothing_left(stubd)


def test_absolute_member_names_land_inside(stubd):
    status, _, _ = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE, "/etc/b3-ctx": b"x"}))
    assert status == 200
    assert stubd.builder.calls[0]["files"]["etc/b3-ctx"] == b"x"
    assert not os.path.exists("/etc/b3-ctx")


def test_garbage_and_truncated_bodies(stubd):
    for body in (b"junk\n" * 100, gzip.compress(tar_of({"Dockerfile": DOCKERFILE}))[:60],
                 tar_of({"Dockerfile": DOCKERFILE, "big": b"x" * 5000})[:3000]):
        status, _, reply = post_build(stubd, body)
        assert status == 400, reply
    assert stubd.builder.calls == []
    assert nothing_left(stubd)


def test_last_member_unpadded_as_the_docker_cli_sends_it(stubd):
    # the docker CLI's tar with a Dockerfile added from outside the context ends
    # right after the last member's data (no padding, no end blocks): Go reads it
    full = tar_of({"a": b"1", "Dockerfile": DOCKERFILE}, tarfile.USTAR_FORMAT)
    cut = 512 * 3 + len(DOCKERFILE)  # a's header and block, the Dockerfile's header, its data
    assert full[cut - len(DOCKERFILE):cut] == DOCKERFILE
    status, _, reply = post_build(stubd, full[:cut])
    assert status == 200, reply
    assert stubd.builder.calls[0]["files"] == {"a": b"1", "Dockerfile": DOCKERFILE}


def test_crash_leftovers_are_swept(stubd):
    os.makedirs(os.path.join(stubd.contexts, "ctx-999999999-dead", "context"))
    build_context._STALE_CHECKED.discard(stubd.contexts)
    status, _, _ = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE}))
    assert status == 200
    assert nothing_left(stubd)


# -- the stream -----------------------------------------------------------------------------------
def test_error_after_output_is_the_streams_last_message(stubd):
    def script(out, cancel):
        out.stream("Step 1/2 : FROM busybox\n")
        raise BuildError("The command '/bin/sh -c exit 3' returned a non-zero code: 3", code=3)
    stubd.builder.script = script
    status, _, messages = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE}))
    message = "The command '/bin/sh -c exit 3' returned a non-zero code: 3"
    assert status == 200
    assert messages == [{"stream": "Step 1/2 : FROM busybox\n"},
                        {"errorDetail": {"code": 3, "message": message}, "error": message}]
    assert nothing_left(stubd)


def test_error_before_any_output_is_an_http_error(stubd):
    def script(out, cancel):
        raise BuildError("failed to reach build target nope in Dockerfile")
    stubd.builder.script = script
    got = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE}))
    assert got == (500, "application/json",
                   {"message": "failed to reach build target nope in Dockerfile"})


def test_quiet_sends_the_id_only_and_held_output_on_error(stubd):
    status, _, messages = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE}), "q=1&t=x")
    assert (status, messages) == (200, [{"stream": IMAGE_ID + "\n"}])

    def script(out, cancel):
        out.stream("Step 1/1 : RUN false\n")
        raise BuildError("The command '/bin/sh -c false' returned a non-zero code: 1")
    stubd.builder.script = script
    status, _, messages = post_build(stubd, tar_of({"Dockerfile": DOCKERFILE}), "q=1")
    assert status == 200
    assert messages[0] == {"stream": "Step 1/1 : RUN false\n"}
    assert messages[1]["errorDetail"]["code"] == 1


def test_aux_only_from_api_1_30(stubd):
    conn = UnixHTTPConnection(stubd.sock, 30)
    conn.request("POST", "/v1.29/build", body=tar_of({"Dockerfile": DOCKERFILE}))
    data = conn.getresponse().read()
    conn.close()
    assert b'"aux"' not in data and b"Successfully built" in data


def test_client_hanging_up_cancels_the_build(stubd):
    started = threading.Event()

    def script(out, cancel):
        out.stream("Step 1/2 : RUN sleep 1000\n")
        started.set()
        cancel.wait(20)
        if cancel.is_set():
            raise BuildError("cancelled")
        return IMAGE_ID
    stubd.builder.script = script
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(stubd.sock)
    body = tar_of({"Dockerfile": DOCKERFILE})
    sock.sendall(b"POST /v1.41/build HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert started.wait(10)
    got = b""
    while b"RUN sleep" not in got:
        got += sock.recv(4096)
    sock.close()  # docker build's Ctrl-C
    assert stubd.builder.cancelled.wait(10)
    deadline = time.monotonic() + 10
    while not nothing_left(stubd) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nothing_left(stubd)


# -- remote contexts ------------------------------------------------------------------------------
@pytest.fixture
def web():
    """A local HTTP server: path -> (content type, body)."""
    pages = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in pages:
                self.send_response(404)
                self.end_headers()
                self.wfile.write(b"no such page\n")
                return
            ctype, body = pages[self.path]
            self.send_response(200)
            if ctype:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield pages, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_remote_tarball_and_plain_dockerfile(stubd, web):
    pages, base = web
    pages["/ctx.tar.gz"] = ("application/octet-stream",
                            gzip.compress(tar_of({"Dockerfile": DOCKERFILE, "f": b"1"})))
    pages["/Dockerfile"] = ("", b"FROM scratch\nLABEL a=b\n")
    status, _, _ = post_build(stubd, b"", f"remote={base}/ctx.tar.gz")
    assert status == 200
    assert stubd.builder.calls[0]["files"] == {"Dockerfile": DOCKERFILE, "f": b"1"}
    status, _, _ = post_build(stubd, b"", f"remote={base}/Dockerfile")
    assert status == 200
    assert stubd.builder.calls[1]["dockerfile"] == b"FROM scratch\nLABEL a=b\n"
    assert stubd.builder.calls[1]["files"] == {}
    status, _, reply = post_build(stubd, b"", f"remote={base}/missing.tar")
    assert status == 404
    assert reply["message"] == (f"error downloading remote context {base}/missing.tar: failed "
                                f"to GET {base}/missing.tar with status 404 Not Found: no such "
                                "page")
    assert nothing_left(stubd)


def test_remote_unreachable_fails_clearly(stubd):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    status, _, reply = post_build(stubd, b"", f"remote=http://127.0.0.1:{port}/x.tar")
    assert status == 500
    url = f"http://127.0.0.1:{port}/x.tar"
    assert reply["message"] == (f'error downloading remote context {url}: Get "{url}": dial tcp '
                                f"127.0.0.1:{port}: connect: connection refused")
    status, _, reply = post_build(stubd, b"", f"remote=git://127.0.0.1:{port}/x.git")
    assert status == 500
    assert reply["message"].startswith("error fetching: ")
    assert nothing_left(stubd)


def test_remote_git_repository_with_ref_and_subdir(stubd, tmp_path):
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / "sub" / "Dockerfile").write_bytes(DOCKERFILE)
    (repo / "top.txt").write_bytes(b"t")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t", HOME=str(tmp_path))
    for args in (["init", "-q", "-b", "dev"], ["add", "."], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True)
    # served over git's "dumb" http as a bare repository on disk would be refused
    # (file:// is blocked for contexts, as moby blocks it): use http
    bare = tmp_path / "srv" / "r.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], env=env, check=True)
    subprocess.run(["git", "update-server-info"], cwd=bare, env=env, check=True)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path / "srv"), **k)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/r.git#dev:sub"
        status, _, reply = post_build(stubd, b"", "remote=" + url.replace("#", "%23"))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200, reply
    assert stubd.builder.calls[0]["files"] == {"Dockerfile": DOCKERFILE}
    assert nothing_left(stubd)


def test_git_url_parsing_as_moby():
    parse = build_context.parse_git_url
    assert parse("github.com/me/repo") == ("https://github.com/me/repo", "master", "")
    assert parse("https://h/r.git#v1:docker") == ("https://h/r.git", "v1", "docker")
    assert parse("git@h:me/r.git#:sub") == ("git@h:me/r.git", "master", "sub")
    with pytest.raises(Exception, match="invalid refspec: --upload-pack=x"):
        parse("git://h/r.git#--upload-pack=x")
    assert build_context.is_git_url("https://h/r.git#x")
    assert not build_context.is_git_url("https://h/r.tar")
    assert build_context.is_url("https://h/r.tar")


# -- prune and cancel -------------------------------------------------------------------------------
def test_prune_and_cancel(stubd):
    # (pruning itself is tested on pyboxd: test_cli.py)
    conn = UnixHTTPConnection(stubd.sock, 30)
    conn.request("POST", "/v1.41/build/prune?keep-storage=xx")
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())) == (500, {
        "message": 'keep-storage is in bytes and expects an integer, got xx: strconv.Atoi: '
                   'parsing "xx": invalid syntax'})
    conn.request("POST", "/v1.41/build/cancel")
    resp = conn.getresponse()
    assert (resp.status, json.loads(resp.read())) == (500, {"message": "build ID not provided"})
    conn.close()
