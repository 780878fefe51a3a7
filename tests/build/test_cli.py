"""The clients of POST /build: ``pybox build`` / ``pybox builder prune``, the
docker 28 CLI (its legacy builder: ``DOCKER_BUILDKIT=0``, and plain ``docker
build`` as it runs with no buildx) and docker-py's build.

First against the stand-in daemon (tests/build/stubdaemon.py: the real API
and context handling, a recording builder): what each client sends (the
context after .dockerignore, the Dockerfile from outside the context or from
stdin, a context from stdin, the query of every flag) and how it prints the
stream (output, -q, --iidfile, a failing step's exit status).  Then real
builds on the private pyboxd, each client building the same small Dockerfile
and the image checked by running it.
"""

import gzip
import io
import json
import os
import signal
import subprocess
import tarfile
import time

import pytest
import stubdaemon
from stubdaemon import IMAGE_ID, tar_of

from pybox.errors import BuildError
from support import fixtures
from support.paths import DOCKER, IMAGE

stubd = stubdaemon.stubd  # the fixtures
dockerpy = fixtures.dockerpy  # (pyboxd and images_made: tests/build/conftest.py's, one pyboxd)

PYBOX = "pybox"
DOCKERFILE = "FROM busybox\nRUN echo built > /built\nCOPY . /ctx/\n"


def run(argv, *, cwd=None, env=None, input=None, timeout=120):
    return subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, input=input,
                          capture_output=True, timeout=timeout)


def pybox(d, *args, **kw):
    return run([PYBOX, "-H", f"unix://{d.sock}", *args], **kw)


def docker(d, *args, env=None, **kw):
    return run([DOCKER, "-H", f"unix://{d.sock}", *args],
               env={"DOCKER_BUILDKIT": "0", "DOCKER_CONFIG": str(d.tmp / "dockercfg"),
                    **(env or {})}, **kw)


def make_context(root, files):
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


IGNORING = {
    "Dockerfile": "FROM scratch\nCOPY . /\n",
    ".dockerignore": "# comment\n*.log\nsecret/\n!keep.log\nDockerfile\n.dockerignore\n",
    "app/main.py": "print()\n",
    "x.log": "log",
    "keep.log": "kept",
    "secret/key": "k",
}


# -- what the clients send, against the stand-in daemon --------------------------------------
@pytest.mark.parametrize("client", ["pybox", "docker", "docker-plain"])
def test_context_sent_with_dockerignore(stubd, tmp_path, client):
    ctx = make_context(tmp_path / "ctx", IGNORING)
    if client == "pybox":
        proc = pybox(stubd, "build", "-t", "me/app:1", str(ctx))
    else:
        proc = docker(stubd, "build", "-t", "me/app:1", str(ctx),
                      env={"DOCKER_BUILDKIT": ""} if client == "docker-plain" else None)
    assert proc.returncode == 0, proc.stderr
    call = stubd.builder.calls[0]
    # the daemon read the Dockerfile, then dropped it and .dockerignore (named there)
    assert call["dockerfile"] == b"FROM scratch\nCOPY . /\n"
    assert call["files"] == {"app": "dir", "app/main.py": b"print()\n", "keep.log": b"kept"}
    out = proc.stdout.decode()
    assert out.startswith("Sending build context to Docker daemon  ")
    assert out.endswith("Step 1/1 : FROM scratch\nSuccessfully built abababababab\n"
                        "Successfully tagged me/app:1\n")
    if client == "docker-plain":  # no buildx: the legacy builder, with docker's notice
        assert b"DEPRECATED: The legacy builder is deprecated" in proc.stderr


@pytest.mark.parametrize("client", ["pybox", "docker"])
def test_dockerfile_outside_the_context_and_from_stdin(stubd, tmp_path, client):
    ctx = make_context(tmp_path / "ctx", {"a.txt": "a", ".dockerignore": "*.log\n",
                                          "b.log": "b"})
    outside = tmp_path / "other.Dockerfile"
    outside.write_text("FROM scratch\nCOPY a.txt /\n")
    tool = pybox if client == "pybox" else docker
    proc = tool(stubd, "build", "-f", str(outside), str(ctx))
    assert proc.returncode == 0, proc.stderr
    proc = tool(stubd, "build", "-f", "-", str(ctx), input=b"FROM scratch\nLABEL from=stdin\n")
    assert proc.returncode == 0, proc.stderr
    first, second = stubd.builder.calls
    assert first["dockerfile"] == b"FROM scratch\nCOPY a.txt /\n"
    assert second["dockerfile"] == b"FROM scratch\nLABEL from=stdin\n"
    for call in (first, second):
        # the private ".dockerfile.<hex>" went in and came out again: the
        # .dockerignore sent names it (and stays, as with dockerd); b.log never went
        name = call["options"].dockerfile
        assert name.startswith(".dockerfile.")
        assert call["files"] == {"a.txt": b"a", ".dockerignore": f"*.log\n\n{name}\n".encode()}


@pytest.mark.parametrize("client", ["pybox", "docker"])
def test_context_from_stdin(stubd, client):
    tool = pybox if client == "pybox" else docker
    body = gzip.compress(tar_of({"Dockerfile": b"FROM scratch\nCOPY f /\n", "f": b"1"}))
    proc = tool(stubd, "build", "-", input=body)
    assert proc.returncode == 0, proc.stderr
    proc = tool(stubd, "build", "-", input=b"FROM scratch\nLABEL only=dockerfile\n")
    assert proc.returncode == 0, proc.stderr
    tarred, plain = stubd.builder.calls[:2]
    assert tarred["files"] == {"Dockerfile": b"FROM scratch\nCOPY f /\n", "f": b"1"}
    assert plain["dockerfile"] == b"FROM scratch\nLABEL only=dockerfile\n"
    assert set(plain["files"]) <= {"Dockerfile"}


@pytest.mark.parametrize("client", ["pybox", "docker"])
def test_compressed_context(stubd, tmp_path, client):
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n", "d/f": "x" * 10000})
    proc = (pybox if client == "pybox" else docker)(stubd, "build", "--compress", str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert stubd.builder.calls[0]["files"] == {"Dockerfile": b"FROM scratch\n", "d": "dir",
                                               "d/f": b"x" * 10000}


def test_pybox_flags_reach_the_builder(stubd, tmp_path):
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    proc = pybox(stubd, "build", "-t", "a:1", "-t", "b", "--build-arg", "X=1", "--build-arg",
                 "FROM_ENV", "--build-arg", "UNSET_B3", "--target", "t", "--no-cache", "--pull",
                 "--rm=false", "--label", "l=v", "--cache-from", "c:1", "--network", "none",
                 "--add-host", "h:1.2.3.4", "--shm-size", "64m", "-m", "128m", "--memory-swap",
                 "-1", "--cpu-shares", "512", "--cpuset-cpus", "0", "--cpu-period", "100000",
                 "--cpu-quota", "50000", "--ulimit", "nofile=10:20", "--platform", "linux/amd64",
                 str(ctx), env={"FROM_ENV": "e"})
    assert proc.returncode == 0, proc.stderr
    o = stubd.builder.calls[0]["options"]
    assert o.tags == ["a:1", "b"]
    assert o.build_args == {"X": "1", "FROM_ENV": "e", "UNSET_B3": None}
    assert (o.target, o.no_cache, o.pull, o.remove, o.labels, o.cache_from) == \
        ("t", True, True, False, {"l": "v"}, ["c:1"])
    assert (o.network_mode, o.extra_hosts, o.shm_size, o.memory, o.memory_swap) == \
        ("none", ["h:1.2.3.4"], 64 << 20, 128 << 20, -1)
    assert (o.cpu_shares, o.cpuset_cpus, o.cpu_period, o.cpu_quota, o.platform) == \
        (512, "0", 100000, 50000, "linux/amd64")
    assert o.ulimits == [{"Name": "nofile", "Hard": 20, "Soft": 10}]


@pytest.mark.parametrize("client", ["pybox", "docker"])
def test_quiet_and_iidfile(stubd, tmp_path, client):
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    iid = tmp_path / "iid"
    iid.write_text("stale")
    tool = pybox if client == "pybox" else docker
    proc = tool(stubd, "build", "-q", "--iidfile", str(iid), str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode() == IMAGE_ID + "\n"
    assert iid.read_text() == IMAGE_ID + "\n"  # what -q printed, as the docker CLI writes it
    proc = tool(stubd, "build", "--iidfile", str(iid), str(ctx))
    assert proc.returncode == 0, proc.stderr
    assert iid.read_text() == IMAGE_ID  # the aux message's


@pytest.mark.parametrize("client", ["pybox", "docker"])
def test_failing_step_exit_status_and_message(stubd, tmp_path, client):
    message = "The command '/bin/sh -c exit 7' returned a non-zero code: 7"

    def script(out, cancel):
        out.stream("Step 1/2 : RUN exit 7\n")
        raise BuildError(message, code=7)
    stubd.builder.script = script
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n"})
    tool = pybox if client == "pybox" else docker
    proc = tool(stubd, "build", str(ctx))
    assert proc.returncode == 7
    assert "Step 1/2 : RUN exit 7\n" in proc.stdout.decode()
    assert proc.stderr.decode().rstrip("\n").endswith(message)


def test_docker_py_build_against_the_api(stubd, tmp_path):
    docker_py = pytest.importorskip("docker")
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": "FROM scratch\n", "f": "1",
                                          ".dockerignore": "*.tmp\n", "t.tmp": "x"})
    outside = tmp_path / "Other"
    outside.write_text("FROM scratch\nCOPY f /\n")
    client = docker_py.APIClient(base_url=f"unix://{stubd.sock}", version="1.41")
    try:
        lines = list(client.build(path=str(ctx), tag="py:1", dockerfile=str(outside),
                                  buildargs={"A": "b"}, decode=True))
    finally:
        client.close()
    assert {"aux": {"ID": IMAGE_ID}} in lines
    assert {"stream": "Successfully tagged py:1\n"} in lines
    call = stubd.builder.calls[0]
    assert call["dockerfile"] == b"FROM scratch\nCOPY f /\n"
    assert call["options"].build_args == {"A": "b"}
    # docker-py applies .dockerignore and adds the outside Dockerfile under a private name
    assert "t.tmp" not in call["files"] and call["files"]["f"] == b"1"
    assert not [n for n in call["files"] if n.startswith(".dockerfile.")]


def test_pybox_context_errors(stubd, tmp_path):
    proc = pybox(stubd, "build", str(tmp_path / "missing"))
    assert proc.returncode == 1
    assert b'unable to prepare context: path "' in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = pybox(stubd, "build", str(empty))
    assert proc.returncode == 1
    assert b"unable to prepare context: Cannot locate Dockerfile" in proc.stderr
    proc = pybox(stubd, "build", "-f", "-", "-", input=b"")
    assert b"can't use stdin for both build context and dockerfile" in proc.stderr
    assert stubd.builder.calls == []


def test_pybox_tar_stream_matches_docker_rules(tmp_path):
    """The tar pybox sends, read back: owners 0:0, lexical order, what
    .dockerignore leaves out left out, the Dockerfile and .dockerignore kept."""
    from pybox.build import dockerignore
    from pybox.cli.pybox.build import ContextTar, _gzipped
    ctx = make_context(tmp_path / "ctx", IGNORING)
    patterns = dockerignore.trim_build_files(
        dockerignore.parse((ctx / ".dockerignore").read_bytes()), "Dockerfile")
    body = b"".join(ContextTar(str(ctx), patterns, []).chunks())
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [".dockerignore", "Dockerfile", "app", "app/main.py",
                                         "keep.log"]
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}
    # --compress: the same tar, gzip'd as it goes
    zipped = b"".join(_gzipped(iter([body[:1000], body[1000:]])))
    assert zipped[:2] == b"\x1f\x8b" and gzip.decompress(zipped) == body


# -- real builds on the private pyboxd -------------------------------------------------------------
@pytest.mark.parametrize("client", ["docker-legacy", "docker-plain", "pybox", "docker-py"])
def test_build_on_pyboxd(pyboxd, images_made, tmp_path, client):
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "a.txt": "a\n",
                                          "skip.log": "s", ".dockerignore": "*.log\n"})
    tag = f"b3-{client}-{os.getpid()}:t"
    images_made.append(tag)
    if client == "docker-py":
        docker_py = pytest.importorskip("docker")
        api = docker_py.APIClient(base_url=pyboxd.host, version="1.41")
        try:
            lines = list(api.build(path=str(ctx), tag=tag, rm=True, decode=True))
        finally:
            api.close()
        assert not [m for m in lines if "error" in m], lines
        assert any("aux" in m for m in lines)
    else:
        env = dict(pyboxd.cli_env)
        if client == "docker-legacy":
            env["DOCKER_BUILDKIT"] = "0"
        argv = [DOCKER, "build"] if client.startswith("docker") else [PYBOX, "-H", pyboxd.host,
                                                                        "build"]
        proc = subprocess.run([*argv, "-t", tag, str(ctx)], env=env, capture_output=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        out = proc.stdout.decode()
        assert "Step 1/3 : FROM busybox" in out and f"Successfully tagged {tag}" in out
    proc = pyboxd.docker("run", "--rm", tag, "sh", "-c", "cat /built; ls -a /ctx")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["built", ".", "..", ".dockerignore", "Dockerfile", "a.txt"]


def test_failing_build_on_pyboxd_exit_status(pyboxd, tmp_path):
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": f"FROM {IMAGE}\nRUN exit 3\n"})
    env = dict(pyboxd.cli_env, DOCKER_BUILDKIT="0")
    proc = subprocess.run([DOCKER, "build", "--force-rm", str(ctx)], env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == 3
    assert b"The command '/bin/sh -c exit 3' returned a non-zero code: 3" in proc.stderr
    # nothing left of the build: no context directory
    contexts = os.path.join(pyboxd.data_root, "builder", "contexts")
    assert not os.path.isdir(contexts) or os.listdir(contexts) == []


def test_build_cache_in_df_and_pruned(pyboxd, tmp_path):
    """A failed build's steps stay as cache (intermediate images nothing is built
    on): docker system df counts them, docker / pybox builder prune removes them."""
    def cache():
        proc = pyboxd.docker("system", "df", "--format", "{{json .}}")
        assert proc.returncode == 0, proc.stderr
        rows = {row["Type"]: row for row in map(json.loads, proc.stdout.splitlines())}
        return int(rows["Build Cache"]["TotalCount"])

    ctx = make_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {IMAGE}\nRUN echo {tmp_path.name} > /stamp\nRUN exit 1\n"})
    env = dict(pyboxd.cli_env, DOCKER_BUILDKIT="0")
    before = cache()
    # (--force-rm: else the failed step's container stays, as dockerd keeps it, and
    # holds its image)
    proc = subprocess.run([DOCKER, "build", "--force-rm", str(ctx)], env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == 1
    assert cache() > before
    proc = pyboxd.docker("builder", "prune", "-f")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Deleted build cache objects:\n")
    assert "\n\nTotal reclaimed space: " in proc.stdout
    assert cache() < before + 1
    proc = run([PYBOX, "-H", pyboxd.host, "builder", "prune", "-f", "--all"])
    assert (proc.returncode, proc.stdout) == (0, b"Total reclaimed space: 0B\n")


def test_ctrl_c_stops_the_build_and_leaves_nothing(pyboxd, tmp_path):
    """docker build's Ctrl-C closes its connection: pyboxd stops the running
    step, removes its container and the context, as dockerd does."""
    stamp = tmp_path.name
    ctx = make_context(tmp_path / "ctx", {
        "Dockerfile": f"FROM {IMAGE}\nRUN echo {stamp} && sleep 600\n"})
    env = dict(pyboxd.cli_env, DOCKER_BUILDKIT="0")
    proc = subprocess.Popen([DOCKER, "build", str(ctx)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        seen = b""
        while stamp.encode() not in seen:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            seen += line
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    contexts = os.path.join(pyboxd.data_root, "builder", "contexts")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ps = pyboxd.docker("ps", "-a", "--no-trunc", "--format", "{{.Command}}")
        leftover = [c for c in ps.stdout.splitlines() if stamp in c]
        if not leftover and (not os.path.isdir(contexts) or not os.listdir(contexts)):
            break
        time.sleep(0.2)
    assert leftover == []
    assert not os.path.isdir(contexts) or os.listdir(contexts) == []


def test_quiet_build_on_pyboxd(pyboxd, images_made, tmp_path):
    """-q: only the image ID; a failure shows the held output, then the error."""
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": f"FROM {IMAGE}\nRUN echo quiet-{tmp_path.name}\n"})
    env = dict(pyboxd.cli_env, DOCKER_BUILDKIT="0")
    tag = f"b3-quiet-{os.getpid()}:t"
    images_made.append(tag)
    proc = subprocess.run([DOCKER, "build", "-q", "-t", tag, str(ctx)], env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    image_id = pyboxd.docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
    assert proc.stdout.decode() == image_id + "\n"
    (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo held-{tmp_path.name} && exit 4\n")
    proc = subprocess.run([DOCKER, "build", "-q", "--force-rm", str(ctx)], env=env,
                          capture_output=True, timeout=300)
    assert proc.returncode == 4
    assert proc.stdout == b""
    assert f"held-{tmp_path.name}".encode() in proc.stderr
    assert b"returned a non-zero code: 4" in proc.stderr
