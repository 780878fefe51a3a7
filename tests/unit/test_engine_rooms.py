"""Two small rooms of the engine without a daemon: where a container's
namespaces come from (pybox.engine.namespaces, the interface a pod sandbox
will implement too) and the one ``pybox-runtime exec`` command line that
docker exec and health checks share (pybox.engine.runner)."""

import os

import pytest

from pybox.engine.namespaces import ContainerHolder, Namespaces
from pybox.engine.runner import Runner
from pybox.engine.spec import SpecError
from pybox.engine.store import Container
from pybox.errors import NotFound


def make(tmp_path, name, *, running=False, pid=0, ipc=""):
    cid = (name * 64)[:64]
    rec = {"Id": cid, "Name": "/" + name, "State": {"Status": "created"},
           "Config": {}, "HostConfig": {"IpcMode": ipc}, "NetworkSettings": {}}
    c = Container(rec, str(tmp_path / cid))
    if running:
        c.state.start(pid, "2026-01-01T00:00:00.000000000Z")
    return c


@pytest.fixture
def world(tmp_path):
    cs = {c.name: c for c in (make(tmp_path, "web", running=True, pid=4242, ipc="shareable"),
                              make(tmp_path, "db", running=True, pid=77),
                              make(tmp_path, "off"))}

    def lookup(ref):
        if ref not in cs:
            raise NotFound(f"No such container: {ref}")
        return cs[ref]

    return Namespaces(lookup), cs


def test_a_running_container_holds_its_namespaces(world):
    ns, cs = world
    assert ns.namespace_of("web", "network") == "/proc/4242/ns/net"
    assert ns.namespace_of("web", "ipc") == "/proc/4242/ns/ipc"
    holder = ns.holder("web")
    assert isinstance(holder, ContainerHolder) and holder.name == "web"
    assert holder.ipc_shareable


def test_joining_a_stopped_or_unknown_container_is_refused(world):
    ns, _ = world
    with pytest.raises(SpecError, match="non running container: off"):
        ns.namespace_of("off", "pid")
    with pytest.raises(SpecError, match="No such container: nope"):
        ns.namespace_of("nope", "ipc")


def test_ipc_sharing_needs_a_shareable_donor(world, tmp_path):
    ns, _ = world
    joiner = make(tmp_path, "j", ipc="container:db")
    with pytest.raises(SpecError, match="non-shareable IPC.*donor container db"):
        ns.prepare_shm(joiner)
    # a shareable donor whose /dev/shm is not mounted (yet): a tmpfs of its own
    assert ns.prepare_shm(make(tmp_path, "k", ipc="container:web")) is None
    assert ns.prepare_shm(make(tmp_path, "h", ipc="host")) == "/dev/shm"
    assert ns.prepare_shm(make(tmp_path, "p", ipc="private")) is None
    # an unknown donor: the namespace lookup reports it, not the shm
    assert ns.prepare_shm(make(tmp_path, "u", ipc="container:nope")) is None


def test_release_shm_of_a_container_without_one(tmp_path):
    c = make(tmp_path, "x")
    os.makedirs(c.dir)
    Namespaces.release_shm(c)  # nothing mounted, nothing to remove: no error
    assert os.listdir(c.dir) == []


def test_one_exec_command_line(tmp_path):
    runner = Runner("/bin/true", "/run/x/runtime", str(tmp_path))
    assert runner.exec_argv("ID", "/p.json") == [
        "/bin/true", "--root", "/run/x/runtime", "exec", "--process", "/p.json", "ID"]
    assert runner.exec_argv("ID", "/p.json", "/pid", detach=True) == [
        "/bin/true", "--root", "/run/x/runtime", "exec", "--process", "/p.json",
        "--pid-file", "/pid", "--detach", "ID"]
    assert runner.run_dir("ID") == str(tmp_path / "containers" / "ID")
    assert runner.monitor("ID").socket_path == str(tmp_path / "containers" / "ID" /
                                                  "monitor.sock")
