"""The classic builder (pybox.build.builder.build) driven directly: a private
engine in a child process (this file run as a script: ``serve``), private
data and exec roots, busybox imported; each test sends a build and checks what
a user sees: the stream docker's classic builder writes, the error words and
codes, the history and config of the image, what the cache reuses, what a
RUN sees of the COPY'd files, and that nothing is left behind (containers,
mounts, files outside the rootfs).

The API route (POST /build) is B3's and tested in test_api.py; these tests
need no HTTP.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import uuid

import pytest

from support.host import mounts_under, unmount_under
from support.paths import PYTHON, SRC, busybox_tar

HERE = os.path.dirname(os.path.abspath(__file__))


def exec_root_of(base: str) -> str:
    return f"/run/pybox-bt-{os.path.basename(base)[-8:]}"


# -- the child: an engine answering build requests on stdin -------------------------------------
def serve(base: str) -> None:
    """Read one JSON request per line, answer one JSON line each."""
    sys.path.insert(0, os.path.dirname(HERE))
    from pybox.build.builder import BuildOptions, build
    from pybox.build.cache import cache_usage, prune_cache
    from pybox.engine.engine import Engine
    from pybox.engine.images import ImageService

    data_root = os.path.join(base, "data")
    exec_root = exec_root_of(base)
    images = ImageService(data_root)
    engine = Engine(data_root, exec_root, images=images)

    def running(cid):
        c = engine.store.by_id.get(cid)
        return bool(c and c.state.running)

    images.images.container_running = running
    engine.start_zygote()
    engine.recover()
    engine.supervise_zygote()
    images.images.import_(busybox_tar(base), reference="busybox:latest", changes=['CMD ["sh"]'])
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            req = json.loads(line)
            if req["op"] == "quit":
                break
            if req["op"] == "usage":
                print(json.dumps({"usage": cache_usage(engine)}), flush=True)
                continue
            if req["op"] == "reload":  # docker save, rmi, load: the image without its parents
                path = os.path.join(base, "saved.tar")
                images.images.save([req["ref"]], path)
                images.images.remove(req["ref"], force=True)
                loaded = images.images.load(path)
                os.unlink(path)
                print(json.dumps({"id": loaded[0]["Id"],
                                  "parent": images.images.record(req["ref"])["parent"]}), flush=True)
                continue
            if req["op"] == "prune":
                deleted, space = prune_cache(engine)
                print(json.dumps({"deleted": deleted, "space": space}), flush=True)
                continue
            cancel = threading.Event()
            chunks = []
            marker = req.get("cancel_on")

            reply = {}
            try:
                reply["id"] = build(engine, BuildOptions(**req.get("options", {})),
                                    req["context"], Out(chunks, marker, cancel), cancel)
                record = images.images.store.get_record(reply["id"])
                reply["doc"] = images.images.blobs.read_json(record["config"]["digest"])
                reply["parent"] = record["parent"]
                reply["history"] = images.images.history(reply["id"])
            except Exception as e:  # the test reads the type and the words
                reply["error"] = str(e)
                reply["type"] = type(e).__name__
                reply["code"] = getattr(e, "code", None)
            reply["stream"] = "".join(chunks)
            reply["containers"] = sorted(engine.store.by_id)
            for cid in list(engine.store.by_id):  # the next test starts clean
                engine.remove(cid, force=True, volumes=True)
            print(json.dumps(reply), flush=True)
    finally:  # as pyboxd's shutdown, then its exec root goes
        for cid in list(engine.store.by_id):
            engine.remove(cid, force=True, volumes=True)
        engine.network.shutdown()
        engine.procview.shutdown()
        engine.stop_zygote()
        engine.release_cgroup_parent()
        shutil.rmtree(exec_root, ignore_errors=True)


class Out:
    """The stream, kept; ``cancel`` set once ``marker`` shows in it (a client
    that hangs up at that point)."""

    def __init__(self, chunks, marker, cancel):
        self.chunks, self.marker, self.cancel = chunks, marker, cancel

    def stream(self, text):
        self.chunks.append(text)
        if self.marker and self.marker in text:
            self.cancel.set()

    def aux(self, data):
        self.chunks.append("AUX " + json.dumps(data) + "\n")


# -- the parent side ---------------------------------------------------------------------------
class Builder:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="pybox-build-test-")
        self.proc = subprocess.Popen(
            [PYTHON, os.path.abspath(__file__), "serve", self.base], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.path.dirname(HERE)])))
        ready = self.proc.stdout.readline()
        if not ready.startswith('{"ready"'):  # the child died: nothing of it stays
            self.proc.kill()
            self.proc.wait()
            shutil.rmtree(self.base, ignore_errors=True)
            shutil.rmtree(exec_root_of(self.base), ignore_errors=True)
            raise AssertionError(f"the builder process did not start: {ready!r}")

    def ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the builder process died"
        return json.loads(line)

    def build(self, files, options=None, cancel_on=None):
        """Build a context made of ``files`` ({path: text, or bytes}); -> the reply."""
        ctx = os.path.join(self.base, "ctx-" + uuid.uuid4().hex[:8])
        os.makedirs(ctx)
        for path, content in files.items():
            full = os.path.join(ctx, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            if isinstance(content, tuple) and content[0] == "symlink":
                os.symlink(content[1], full)
            else:
                with open(full, "wb") as f:
                    f.write(content.encode() if isinstance(content, str) else content)
        return self.ask({"op": "build", "context": ctx, "options": options or {},
                         "cancel_on": cancel_on})

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        leaked = mounts_under(self.base)
        unmount_under(self.base)
        shutil.rmtree(self.base, ignore_errors=True)
        exec_root = exec_root_of(self.base)
        left = os.path.exists(exec_root) and not mounts_under(exec_root)
        if left:
            shutil.rmtree(exec_root, ignore_errors=True)
        assert not leaked, f"mounts left behind: {leaked}"
        assert not left, f"the exec root was left behind: {exec_root}"


@pytest.fixture(scope="module")
def builder():
    b = Builder()
    yield b
    b.close()


def lines(reply):
    return reply["stream"].splitlines()


def created_by(reply):
    return [h.get("created_by", "") for h in reply["doc"]["history"]]


def unique(text="x"):
    """A value no earlier build used: the step misses the cache."""
    return f"{text}-{uuid.uuid4().hex[:8]}"


# -- the stream, the history, the config --------------------------------------------------------
def test_classic_output_history_and_config(builder):
    tag = unique("b2test")
    r = builder.build({"Dockerfile": f"FROM busybox\nENV FOO=bar\nARG X=1\n"
                                     f"RUN echo hi $FOO $X {tag} && echo data > /made\n"
                                     "COPY a.txt /dst/\nWORKDIR /app\nRUN true\nCMD [\"sh\"]\n",
                       "a.txt": "hello\n"}, {"tags": [tag + ":v1"]})
    assert "error" not in r, r
    out = lines(r)
    assert out[0] == "Step 1/8 : FROM busybox"
    assert out[1].startswith(" ---> ") and len(out[1]) == 18
    assert out[2] == "Step 2/8 : ENV FOO=bar"
    assert out[3].startswith(" ---> Running in ")
    cid = out[3].split()[-1]
    assert out[4] == f"Removing intermediate container {cid}"
    assert f"hi bar 1 {tag}" in out
    assert "Step 5/8 : COPY a.txt /dst/" in out
    assert out[-2] == f"Successfully built {r['id'][7:19]}"
    assert out[-1] == f"Successfully tagged {tag}:v1"
    history = r["doc"]["history"]
    steps = created_by(r)[-7:]
    assert steps[0] == "/bin/sh -c #(nop)  ENV FOO=bar"
    assert steps[1] == "/bin/sh -c #(nop)  ARG X=1"
    assert steps[2] == f"|1 X=1 /bin/sh -c echo hi $FOO $X {tag} && echo data > /made"
    assert steps[3].startswith("/bin/sh -c #(nop) COPY file:") and steps[3].endswith(" in /dst/ ")
    assert steps[4] == "/bin/sh -c #(nop) WORKDIR /app"
    assert steps[5] == "|1 X=1 /bin/sh -c true"
    assert steps[6] == '/bin/sh -c #(nop)  CMD ["sh"]'
    empty = [bool(h.get("empty_layer")) for h in history[-7:]]
    # ENV, ARG, RUN that writes, COPY, WORKDIR that creates /app, RUN true, CMD
    assert empty == [True, True, False, False, False, True, True]
    # one layer per filesystem-changing step on busybox's
    assert len(r["doc"]["rootfs"]["diff_ids"]) == 4
    config = r["doc"]["config"]
    assert config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                             "FOO=bar"]  # the build arg X is not persisted
    assert config["Cmd"] == ["sh"] and config["WorkingDir"] == "/app"
    assert r["doc"]["container_config"]["Cmd"] == ["/bin/sh", "-c", "#(nop) ", 'CMD ["sh"]']
    assert r["parent"], "intermediate images are kept as the parent chain"
    # docker history names each step's image (the parents), busybox's too
    ids = [h["Id"] for h in r["history"]]
    assert ids[0] == r["id"] and ids[1] == r["parent"]
    assert "<missing>" not in ids and r["history"][0]["Tags"] == [f"{tag}:v1"]
    assert "AUX " + json.dumps({"ID": r["id"]}) in out
    assert r["containers"] == []


def test_config_instructions(builder):
    r = builder.build({"Dockerfile": "FROM busybox\nENTRYPOINT [\"/bin/echo\"]\nUSER nobody\n"
                                     "EXPOSE 80 53/udp\nVOLUME /data\nSTOPSIGNAL SIGUSR1\n"
                                     "HEALTHCHECK --interval=5s --retries=2 CMD echo ok\n"
                                     "ONBUILD RUN echo triggered\nSHELL [\"/bin/sh\", \"-xc\"]\n"
                                     f"LABEL a=b \"c d\"=\"{unique()}\"\n"},
                      {"labels": {"z": "1"}})
    assert "error" not in r, r
    c = r["doc"]["config"]
    assert c["Entrypoint"] == ["/bin/echo"] and not c.get("Cmd")  # ENTRYPOINT resets CMD
    assert c["User"] == "nobody"
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}}
    assert c["StopSignal"] == "SIGUSR1"
    assert c["Healthcheck"] == {"Test": ["CMD-SHELL", "echo ok"], "Interval": 5_000_000_000,
                                "Retries": 2}
    assert c["OnBuild"] == ["RUN echo triggered"]
    assert c["Shell"] == ["/bin/sh", "-xc"]
    assert c["Labels"]["a"] == "b" and c["Labels"]["z"] == "1"
    steps = created_by(r)
    # dockerd 20.10's %q of the HealthConfig
    assert "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"echo ok\"] \"5s\" \"0s\" \"0s\" " \
           "'\\x02'}" in steps
    assert "/bin/sh -c #(nop)  VOLUME [/data]" in steps
    assert steps[-1] == "/bin/sh -xc #(nop)  LABEL z=1"  # the client's labels: last, own step

    # the ONBUILD trigger runs in a child build
    child = builder.build({"Dockerfile": f"FROM {r['id']}\nRUN echo child\n"})
    assert "error" not in child, child
    assert "# Executing 1 build trigger" in lines(child)
    assert "triggered" in child["stream"]
    assert not child["doc"]["config"].get("OnBuild")


# -- RUN's failure, rm and forcerm ---------------------------------------------------------------
def test_failing_run_words_code_and_containers(builder):
    r = builder.build({"Dockerfile": f"FROM busybox\nRUN echo {unique()} && exit 3\n"})
    assert r["type"] == "BuildError"
    assert r["error"].startswith("The command '/bin/sh -c echo ")
    assert r["error"].endswith("returned a non-zero code: 3")
    assert r["code"] == 3
    assert len(r["containers"]) == 1  # rm keeps the failed step's container, as dockerd

    r = builder.build({"Dockerfile": "FROM busybox\nRUN [\"false\"]\n"},
                      {"force_remove": True})
    assert r["error"] == "The command 'false' returned a non-zero code: 1"
    assert r["containers"] == []

    r = builder.build({"Dockerfile": f"FROM busybox\nRUN echo {unique()}\n"}, {"remove": False})
    assert "error" not in r and len(r["containers"]) == 1  # rm=false keeps them


def test_cancel_stops_the_step_and_leaves_nothing(builder):
    r = builder.build({"Dockerfile": f"FROM busybox\nRUN echo started-{unique()}; sleep 60\n"},
                      cancel_on="started-")
    assert r["type"] == "BuildError" and r["error"] == "Build cancelled"
    assert r["containers"] == []


def test_platform(builder):
    host = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    r = builder.build({"Dockerfile": f"FROM --platform=linux/{host} busybox\nLABEL p={unique()}\n"})
    assert "error" not in r, r
    r = builder.build({"Dockerfile": "FROM --platform=a/b/c/d busybox\n"})
    assert r["error"].startswith("failed to parse platform a/b/c/d")
    # another platform than the local image's: a pull (which fails offline, clearly)
    other = "s390x" if host != "s390x" else "amd64"
    r = builder.build({"Dockerfile": "FROM busybox\n"}, {"platform": f"linux/{other}"})
    assert r["type"] == "BuildError" and r["error"]


def test_run_host_options(builder):
    r = builder.build({"Dockerfile": f"FROM busybox\nRUN echo {unique()}; ls /sys/class/net; "
                                     "grep myhost /etc/hosts; ulimit -n\n"},
                      {"network_mode": "none", "extra_hosts": ["myhost:10.1.2.3"],
                       "ulimits": [{"Name": "nofile", "Soft": 1234, "Hard": 1234}]})
    assert "error" not in r, r
    out = lines(r)
    assert "lo" in out and "eth0" not in out
    assert any("10.1.2.3" in x and "myhost" in x for x in out)
    assert "1234" in out


def test_add_url(builder):
    import http.server

    body = b"downloaded\n"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/dir/file.txt":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        r = builder.build({"Dockerfile": f"FROM busybox\nADD {url}/dir/file.txt /d/\n"
                                         f"RUN ls -ln --full-time /d/ && cat /d/file.txt # {unique()}\n"})
        assert "error" not in r, r
        assert "downloaded" in r["stream"]
        assert "-rw-------" in r["stream"] and "2015-10-21 07:28:00" in r["stream"]
        r = builder.build({"Dockerfile": f"FROM busybox\nADD {url}/missing /m\n"})
        assert r["error"].startswith(f"ADD failed: failed to GET {url}/missing with status 404")
    finally:
        server.shutdown()
        server.server_close()
    r = builder.build({"Dockerfile": f"FROM busybox\nADD {url}/dir/file.txt /x\n"})
    assert r["error"] == (f'ADD failed: Get "{url}/dir/file.txt": dial tcp '
                          f'127.0.0.1:{server.server_port}: connect: connection refused')


def test_squash_needs_experimental(builder):
    r = builder.build({"Dockerfile": "FROM busybox\n"}, {"squash": True})
    assert r["error"] == "squash is only supported with experimental mode"


# -- the cache ------------------------------------------------------------------------------------
def test_cache_hits_and_misses(builder):
    marker = unique("cache")
    files = {"Dockerfile": f"FROM busybox\nRUN echo {marker} > /m\nCOPY f /f\nRUN cat /f\n",
             "f": "one\n"}
    first = builder.build(files)
    assert "error" not in first and "Using cache" not in first["stream"]
    again = builder.build(files)
    assert again["id"] == first["id"]
    assert again["stream"].count(" ---> Using cache") == 3
    assert "Running in" not in again["stream"]

    changed = builder.build(dict(files, f="two\n"))  # the COPY's source changed
    assert changed["id"] != first["id"]
    assert changed["stream"].count(" ---> Using cache") == 1  # only the RUN before it
    assert "two" in lines(changed)

    nocache = builder.build(files, {"no_cache": True})
    assert "Using cache" not in nocache["stream"] and nocache["id"] != first["id"]

    usage = builder.ask({"op": "usage"})["usage"]
    assert usage and all({"ID", "Size", "CreatedAt", "InUse"} <= set(u) for u in usage)


def test_cache_copy_from_follows_the_stage(builder):
    marker = unique("from")

    def files(value):
        return {"Dockerfile": "FROM busybox AS src\nCOPY f /out/f\n"
                              f"FROM busybox\nRUN echo {marker} > /m\n"
                              "COPY --from=src /out/f /f\nRUN cat /f\n",
                "f": value}
    first = builder.build(files("one\n"))
    assert "error" not in first, first
    again = builder.build(files("one\n"))  # (COPY --from's checksum remembered: no snapshot)
    assert again["id"] == first["id"] and "Running in" not in again["stream"]
    assert again["stream"].count(" ---> Using cache") == 4
    changed = builder.build(files("two\n"))  # the stage's image changed: --from misses
    assert "error" not in changed, changed
    assert changed["id"] != first["id"] and "two" in lines(changed)
    assert changed["stream"].count(" ---> Using cache") == 1  # only the RUN before it
    back = builder.build(files("one\n"))
    assert back["id"] == first["id"] and "Running in" not in back["stream"]


def test_cache_from(builder):
    tag = unique("cachefrom")
    files = {"Dockerfile": f"FROM busybox\nRUN echo {tag} > /m\nLABEL l={tag}\nCOPY f /f\n"
                           "RUN true\n",
             "f": "x\n"}
    first = builder.build(files, {"tags": [tag]})
    assert "error" not in first, first
    # the local chain counts only under a --cache-from image it leads to
    unrelated = builder.build(files, {"cache_from": ["busybox:latest"]})
    assert "Using cache" not in unrelated["stream"]
    related = builder.build(files, {"cache_from": [tag]})
    assert related["stream"].count("Using cache") == 4 and related["id"] == first["id"]
    # an image without its build's chain (saved and loaded): matched by its history
    reloaded = builder.ask({"op": "reload", "ref": tag})
    assert reloaded["id"] == first["id"] and reloaded["parent"] == ""
    restored = builder.build(files, {"cache_from": [tag]})
    assert "error" not in restored, restored
    assert restored["stream"].count("Using cache") == 4, restored["stream"]
    assert restored["id"] == first["id"]
    assert created_by(restored) == created_by(first)


def test_build_args_and_predefined(builder):
    r = builder.build({"Dockerfile": f"FROM busybox\nARG A\nARG B=dflt\n"
                                     f"RUN echo A=$A B=$B P=$HTTP_PROXY {unique()}\n"},
                      {"build_args": {"A": "1", "HTTP_PROXY": "http://p:1", "UNUSED": "u"}})
    assert "error" not in r, r
    assert "A=1 B=dflt P=http://p:1" in r["stream"]
    run = created_by(r)[-1]
    assert run.startswith("|2 A=1 B=dflt /bin/sh -c echo")  # the proxy kept out of history
    assert all(not e.startswith(("A=", "B=", "HTTP_PROXY")) for e in r["doc"]["config"]["Env"])
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in lines(r)


# -- stages -----------------------------------------------------------------------------------------
def test_multi_stage_target_and_copy_from(builder):
    dockerfile = ("ARG BASE=busybox\n"
                  "FROM ${BASE} AS builder\n"
                  f"RUN mkdir /out && echo built-{unique()} > /out/b.txt && chown 123:45 /out/b.txt\n"
                  "FROM busybox AS unused\nRUN echo SHOULD-NOT-RUN\n"
                  "FROM $BASE\nCOPY --from=builder /out /copied\nCOPY --from=0 /out/b.txt /b\n"
                  "RUN ls -ln /copied/b.txt /b && cat /b\n")
    r = builder.build({"Dockerfile": dockerfile})
    assert "error" not in r, r
    assert "SHOULD-NOT-RUN" not in r["stream"]
    assert lines(r)[0] == "Step 1/7 : ARG BASE=busybox"
    listing = [x for x in lines(r) if "b.txt" in x or x.endswith(" /b")]
    assert any("123" in x and "45" in x for x in listing), listing  # --from keeps owners
    assert r["stream"].count("AUX ") == 2  # one ID per stage built

    t = builder.build({"Dockerfile": dockerfile}, {"target": "builder"})
    assert "error" not in t and t["stream"].count("Step ") == 3
    bad = builder.build({"Dockerfile": dockerfile}, {"target": "nope"})
    assert bad["error"] == "failed to reach build target nope in Dockerfile"


# -- COPY and ADD -------------------------------------------------------------------------------------
def _tar_gz(members):
    import io
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_copy_add_semantics(builder):
    r = builder.build({
        "Dockerfile": "FROM busybox\nCOPY --chown=nobody:nogroup sub/ /sub/\n"
                      "COPY sub/*.txt /star/\nADD arch.tar.gz /extracted/\n"
                      "COPY --chmod=600 sub/one.txt /mode\n"
                      f"COPY <<EOF /heredoc.txt\nhello {unique()}\nEOF\n"
                      "WORKDIR /w\nCOPY sub/one.txt rel\n"
                      "RUN <<EOF\nls -ln /sub /star /extracted /mode /w/rel\ncat /heredoc.txt\nEOF\n"
                      "RUN <<EOF\n#!/bin/sh -e\necho shebang-$0-ran\nEOF\n"
                      "RUN cat <<A > /two && cat <<B >> /two && cat /two\nfirst\nA\nsecond\nB\n",
        "sub/one.txt": "one\n", "sub/deep/two.txt": "two\n", "sub/link": ("symlink", "deep/two.txt"),
        "arch.tar.gz": _tar_gz({"t.txt": b"intar\n"})})
    assert "error" not in r, r
    out = r["stream"]
    assert "lrwxrwxrwx    1 65534    65534" in out and "link -> deep/two.txt" in out
    assert "-rw-r--r--    1 65534    65534            4" in out  # one.txt, chowned
    assert "t.txt" in out  # the archive extracted
    assert "-rw-------    1 0        0                4" in out and "/mode" in out
    assert "/w/rel" in out and "hello " in out
    assert "shebang-" in out and "-ran" in out
    assert "first\nsecond\n" in out


def test_deletions_and_archives(builder):
    import bz2
    import lzma

    plain = _tar_gz({"x.txt": b"x\n"})
    import gzip
    raw = gzip.decompress(plain)
    r = builder.build({
        "Dockerfile": "FROM busybox\nRUN rm /etc/group && rm -r /home && mkdir /home && "
                      f"touch /home/new # {unique()}\n"
                      "ADD a.tar.bz2 /bz/\nADD a.tar.xz /xz/\nADD a.tar /plain/\n"
                      "RUN ls -a /home; test ! -e /etc/group && echo GROUP-GONE; "
                      "cat /bz/x.txt /xz/x.txt /plain/x.txt\n",
        "a.tar.bz2": bz2.compress(raw), "a.tar.xz": lzma.compress(raw), "a.tar": raw})
    assert "error" not in r, r
    out = lines(r)
    assert "GROUP-GONE" in out  # a whiteout in the RUN's layer
    # made and removed in one step: the directory is still copied up, a layer (dockerd's too)
    r = builder.build({"Dockerfile": f"FROM busybox\nRUN echo {unique()} > /tmp/t && rm /tmp/t\n"})
    assert "error" not in r, r
    assert not r["doc"]["history"][-1].get("empty_layer")
    assert "new" in out and out.count("x") == 3  # /home opaque: only the new file


def test_run_layer_leaves_out_the_engines_mount_points(builder):
    """An image without /proc, /sys, /dev or /etc/hosts: a RUN's container gets
    mount points for them, which are not the step's (docker's init layer)."""
    import io
    skip = ("./proc", "./sys", "./dev", "./etc/hosts", "./etc/hostname", "./etc/resolv.conf")
    buf = io.BytesIO()
    with tarfile.open(os.path.join(builder.base, "busybox.tar")) as src, \
            tarfile.open(fileobj=buf, mode="w") as dst:
        for member in src.getmembers():
            if member.name in skip or member.name.startswith(tuple(s + "/" for s in skip)):
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    r = builder.build({"Dockerfile": f"FROM scratch\nADD root.tar /\nRUN true # {unique()}\n"
                                     "RUN echo hi > /tmp/x\n",
                       "root.tar": buf.getvalue()})
    assert "error" not in r, r
    assert [bool(h.get("empty_layer")) for h in r["doc"]["history"]] == [False, True, False]
    assert len(r["doc"]["rootfs"]["diff_ids"]) == 2


def test_copy_paths_are_confined(builder):
    marker = unique("escape")
    outside = f"/tmp/{marker}"
    r = builder.build({"Dockerfile": "FROM busybox\nCOPY ../../../../etc/hostname /h\n"})
    assert r["type"] == "BuildError"  # resolved inside the context: not there
    assert "file not found in build context" in r["error"]

    # a source that is a symlink out of the context: followed inside it only
    for target in ("/etc/hostname", "../../../../../etc/hostname"):
        r = builder.build({"Dockerfile": "FROM busybox\nCOPY evil /e\n", "evil": ("symlink", target)})
        assert r["type"] == "BuildError" and "file not found in build context" in r["error"]

    # a context symlink to a host file is copied as a link, never followed out
    r = builder.build({"Dockerfile": "FROM busybox\nCOPY d /d\nRUN ls -l /d/evil && cat /d/evil; true\n",
                       "d/evil": ("symlink", "/etc/shadow")})
    assert "error" not in r, r
    assert "/d/evil -> /etc/shadow" in r["stream"]
    assert "root:" not in r["stream"]  # busybox's /etc/shadow does not exist: nothing read

    # an image's symlink pointing out: the COPY lands inside the rootfs
    r = builder.build({"Dockerfile": f"FROM busybox\nRUN ln -s {outside} /dst\n"
                                     "COPY f /dst/\nRUN ls /tmp\n",
                       "f": "data\n"})
    assert "error" not in r, r
    assert not os.path.exists(outside), "COPY followed an image symlink out of the rootfs"
    assert marker in r["stream"]


def test_copy_errors(builder):
    r = builder.build({"Dockerfile": "FROM busybox\nCOPY a b /notadir\n", "a": "a", "b": "b"})
    assert r["error"] == ("When using COPY with more than one source file, the destination must "
                          "be a directory and end with a /")
    r = builder.build({"Dockerfile": "FROM busybox\nWORKDIR /etc/passwd\n"})
    assert r["error"] == "Cannot mkdir: /etc/passwd is not a directory"
    r = builder.build({"Dockerfile": "FROM busybox\nCOPY nothing* /x/\n"})
    assert r["error"] == "COPY failed: no source files were specified"
    r = builder.build({"Dockerfile": "FROM busybox\nCOPY --chown=nosuchuser f /f\n", "f": "f"})
    assert "unable to convert uid/gid chown string to host mapping" in r["error"]
    # buildkit's flags: refused while parsing, as dockerd 20.10 (a 400, no step run)
    r = builder.build({"Dockerfile": "FROM busybox\nRUN --network=none true\n"})
    assert r["error"] == "dockerfile parse error line 2: Unknown flag: network"
    assert r["type"] == "DockerfileParseError" and "Step" not in r["stream"]
    r = builder.build({"Dockerfile": "FROM busybox\nRUN --mount=type=cache,target=/x true\n"})
    assert r["error"].startswith("the --mount option requires BuildKit. Refer to ")
    r = builder.build({"Dockerfile": "FROM busybox\nCOPY --parents f /x/\n", "f": "f"})
    assert r["error"] == "dockerfile parse error line 2: Unknown flag: parents"
    r = builder.build({"Dockerfile": f"FROM busybox\nCOPY --link f /x/{unique()}\n", "f": "f"})
    assert "error" not in r, r


def test_scratch_and_prune(builder):
    # a killed daemon's temporary files: removed by the next build
    stale = os.path.join(builder.base, "data", "builder", "build-stale")
    os.makedirs(stale, exist_ok=True)
    open(stale + ".lock", "w").close()
    r = builder.build({"Dockerfile": f"FROM scratch\nCOPY f /f\nLABEL x={unique()}\n", "f": "f\n"})
    assert "error" not in r, r
    assert len(r["doc"]["rootfs"]["diff_ids"]) == 1
    assert lines(r)[1] == " ---> "  # scratch has no id, as dockerd prints it
    assert not os.path.exists(stale) and not os.path.exists(stale + ".lock")
    assert os.listdir(os.path.join(builder.base, "data", "builder")) == [".lock"]
    pruned = builder.ask({"op": "prune"})
    assert isinstance(pruned["deleted"], list) and pruned["space"] >= 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2])
