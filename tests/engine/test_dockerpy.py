"""docker-py (PyPI `docker`, 7.x) against pyboxd: the high-level client as
applications use it, and the low-level APIClient for attach and streams."""

import socket
import time
import uuid

import pytest

pytestmark = [pytest.mark.root, pytest.mark.engine]

docker = pytest.importorskip("docker", reason="docker-py (./install.sh --dev)")


def name():
    return f"py-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def made(dockerpy):
    """Containers to remove (force) at the end of the test."""
    out = []
    yield out
    for c in out:
        try:
            dockerpy.api.remove_container(c if isinstance(c, str) else c.id, force=True)
        except docker.errors.NotFound:
            pass


def test_ping_and_version(dockerpy):
    assert dockerpy.ping() is True
    v = dockerpy.version()
    assert v["ApiVersion"] == "1.44"
    assert v["Os"] == "linux"
    assert dockerpy.api.api_version == "1.44"
    info = dockerpy.info()
    assert info["OSType"] == "linux"


def test_run_remove_returns_output(dockerpy):
    assert dockerpy.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
    out = dockerpy.containers.run("busybox", ["sh", "-c", "echo a; echo b >&2"], remove=True,
                                  stderr=True)
    assert sorted(out.splitlines()) == [b"a", b"b"]


def test_run_failing_raises_container_error_with_stderr(dockerpy):
    n = name()
    with pytest.raises(docker.errors.ContainerError) as e:
        dockerpy.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], name=n,
                                remove=True)
    assert e.value.exit_status == 3
    assert e.value.stderr == b"oops\n"
    with pytest.raises(docker.errors.NotFound):  # remove=True removed it anyway
        dockerpy.containers.get(n)


def test_run_unknown_image(dockerpy):
    with pytest.raises(docker.errors.ImageNotFound):
        dockerpy.containers.create("pybox-no-such-image:1.0", "true")


def test_detached_container_lifecycle(dockerpy, made):
    n = name()
    c = dockerpy.containers.run("busybox", ["sh", "-c",
                                            "echo started; trap 'exit 0' TERM; "
                                            "while :; do sleep 0.1; done"],
                                detach=True, name=n, labels={"suite": "engine"},
                                environment={"K": "v"}, working_dir="/tmp", hostname="pyhost")
    made.append(c)
    assert c.name == n
    c.reload()
    assert c.status == "running"
    assert c.labels == {"suite": "engine"}
    assert c.attrs["Config"]["Hostname"] == "pyhost"
    deadline = time.monotonic() + 20
    while b"started" not in c.logs():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert c.logs() == b"started\n"
    assert dockerpy.containers.get(n).id == c.id
    assert dockerpy.containers.get(c.id[:12]).name == n
    # exec_run, with and without demux
    code, out = c.exec_run(["sh", "-c", "echo e1; echo e2 >&2; exit 4"])
    assert code == 4
    assert sorted(out.splitlines()) == [b"e1", b"e2"]
    code, (out, err) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, out, err) == (0, b"o\n", b"e\n")
    code, out = c.exec_run("sh -c 'echo $K $(pwd) $(id -u)'", user="1000", workdir="/",
                           environment={"K": "exec"})
    assert (code, out) == (0, b"exec / 1000\n")
    # pause / unpause
    c.pause()
    c.reload()
    assert c.status == "paused"
    c.unpause()
    c.reload()
    assert c.status == "running"
    # list
    ids = [x.id for x in dockerpy.containers.list()]
    assert c.id in ids
    assert c.id in [x.id for x in dockerpy.containers.list(all=True)]
    assert [x.id for x in dockerpy.containers.list(filters={"label": "suite=engine",
                                                           "name": n})] == [c.id]
    # stop (the trap exits 0), wait, remove
    c.stop(timeout=5)
    assert c.wait() == {"Error": None, "StatusCode": 0}
    c.reload()
    assert c.status == "exited"
    assert c.id not in [x.id for x in dockerpy.containers.list()]
    assert c.id in [x.id for x in dockerpy.containers.list(all=True)]
    c.remove()
    with pytest.raises(docker.errors.NotFound):
        c.reload()


def test_stop_timeout_kills(dockerpy, made):
    c = dockerpy.containers.run("busybox", "sleep 1000", detach=True)
    made.append(c)
    c.stop(timeout=1)
    assert c.wait()["StatusCode"] == 137
    c.start()
    c.kill(signal="KILL")
    assert c.wait()["StatusCode"] == 137


def test_kill_returns_once_the_container_is_down(dockerpy, made):
    # dockerd's SIGKILL waits for the exit: inspect right after says exited and
    # a plain remove works (docker-py's suite kills, then removes without force)
    for _ in range(5):
        c = dockerpy.containers.run("busybox", "sleep 1000", detach=True)
        made.append(c)
        c.kill()
        c.reload()
        assert (c.status, c.attrs["State"]["ExitCode"]) == ("exited", 137)
        c.remove()
        made.remove(c)


def test_logs_options(dockerpy, made):
    c = dockerpy.containers.run("busybox", ["sh", "-c", "echo one; echo two; echo three"],
                                detach=True)
    made.append(c)
    assert c.wait()["StatusCode"] == 0
    assert c.logs() == b"one\ntwo\nthree\n"
    assert c.logs(tail=1) == b"three\n"
    stamped = c.logs(timestamps=True, tail=2).splitlines()
    assert [line.split(b" ", 1)[1] for line in stamped] == [b"two", b"three"]
    assert list(c.logs(stream=True, follow=True)) in ([b"one\n", b"two\n", b"three\n"],
                                                      [b"one\ntwo\nthree\n"])


def test_remove_running_needs_force(dockerpy, made):
    c = dockerpy.containers.run("busybox", "sleep 1000", detach=True)
    made.append(c)
    with pytest.raises(docker.errors.APIError) as e:
        c.remove()
    assert e.value.status_code == 409
    c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        dockerpy.containers.get(c.id)


def test_name_conflict(dockerpy, made):
    n = name()
    made.append(dockerpy.containers.create("busybox", "true", name=n))
    with pytest.raises(docker.errors.APIError) as e:
        dockerpy.containers.create("busybox", "true", name=n)
    assert e.value.status_code == 409
    assert "is already in use" in str(e.value)


def test_images_list_and_get(dockerpy):
    tags = [t for img in dockerpy.images.list() for t in img.tags]
    assert "busybox:latest" in tags
    img = dockerpy.images.get("busybox")
    assert img.id.startswith("sha256:")
    assert img.attrs["Config"]["Cmd"] == ["sh"]
    with pytest.raises(docker.errors.ImageNotFound):
        dockerpy.images.get("pybox-no-such-image:1.0")


def test_low_level_attach_stream(dockerpy, made):
    api = dockerpy.api
    c = api.create_container("busybox", ["sh", "-c", "read line; echo got:$line; exit 2"],
                             stdin_open=True)  # (docker-py sets StdinOnce with it)
    made.append(c["Id"])
    sock = api.attach_socket(c["Id"], params={"stdin": 1, "stdout": 1, "stderr": 1,
                                              "stream": 1})
    raw = sock._sock if hasattr(sock, "_sock") else sock
    api.start(c["Id"])
    raw.sendall(b"hello\n")
    raw.shutdown(socket.SHUT_WR)
    data = b""
    raw.settimeout(30)
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    raw.close()
    # stdcopy framing: stream 1 (stdout), big-endian length
    assert data == b"\x01\0\0\0" + (10).to_bytes(4, "big") + b"got:hello\n"
    assert api.wait(c["Id"])["StatusCode"] == 2


def test_low_level_logs_stream_follow(dockerpy, made):
    api = dockerpy.api
    c = api.create_container("busybox", ["sh", "-c",
                                         "for i in 1 2 3; do echo l$i; sleep 0.1; done"])
    made.append(c["Id"])
    api.start(c["Id"])
    lines = list(api.logs(c["Id"], stream=True, follow=True))
    assert b"".join(lines) == b"l1\nl2\nl3\n"


def test_tty_container(dockerpy, made):
    c = dockerpy.containers.run("busybox", ["sh", "-c", "tty; echo x"], tty=True, detach=True)
    made.append(c)
    assert c.wait()["StatusCode"] == 0
    out = c.logs()
    assert out.startswith(b"/dev/pts/")
    assert out.endswith(b"x\r\n")
