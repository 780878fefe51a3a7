"""Lifecycle parity with dockerd (issue 16): --cgroup-parent.

dockerd's cgroupfs driver gives runc linux.cgroupsPath = PARENT/ID (moby
daemon/oci_linux.go withCgroups): an absolute parent is below each hierarchy's
root, a relative one below the runtime's own cgroup (observed on a private
dockerd: `docker run --cgroup-parent=foo` lands in /foo/ID where runc's cgroup is
/, in /process_api/X/foo/ID in the memory hierarchy where it is /process_api/X).
Checked here from /proc/PID/cgroup of the container's process, with docker
update and docker stats on such a container, what inspect shows, which parent
cgroups go when the container goes (only those pyboxd made), and the parents
pyboxd refuses before making anything.
"""

import os
import secrets
import socket

import pytest

from support.host import CGROUP_ROOT, cgroup_roots

pytestmark = [pytest.mark.root, pytest.mark.engine]


def unique(tag: str) -> str:
    return f"pbx-h7-{tag}-{secrets.token_hex(4)}"


def proc_cgroups(pid: int) -> dict[str, str]:
    """/proc/PID/cgroup as {hierarchy's mount directory name: path}."""
    out = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[mount_name(controllers)] = path
    return out


def mount_name(controllers: str) -> str:
    """The directory under /sys/fs/cgroup of a /proc/PID/cgroup line's hierarchy."""
    if controllers == "":
        return "unified" if os.path.isdir(f"{CGROUP_ROOT}/unified") else ""
    if controllers.startswith("name="):
        return controllers[len("name="):]
    return controllers


def placed(pid: int) -> dict[str, str]:
    """proc_cgroups of a container's process, less the cgroup2 half of a hybrid
    host, which pybox joins only when a limit needs it (docker's runc always does)."""
    seen = proc_cgroups(pid)
    if "unified" in seen and len(seen) > 1:
        del seen["unified"]
    return seen


def hierarchy_dirs(relative: str) -> list[str]:
    """``relative`` below the root of every cgroup hierarchy that has it."""
    return [os.path.join(root, relative.strip("/")) for root in cgroup_roots()
            if os.path.isdir(os.path.join(root, relative.strip("/")))]


def remove_tree_everywhere(top: str) -> None:
    """The test's own cgroup tree /TOP, deepest first, from every hierarchy."""
    for root in cgroup_roots():
        base = os.path.join(root, top.strip("/"))
        if os.path.isdir(base):
            for dirpath, _, _ in sorted(os.walk(base), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


@pytest.fixture
def cgroup_top():
    """A fresh top-level cgroup name; whatever is left of it goes at the end."""
    made = []

    def make(tag: str) -> str:
        made.append(unique(tag))
        return made[-1]

    yield make
    for top in made:
        remove_tree_everywhere(top)


def run_sleeper(pyboxd, names, *flags) -> tuple[str, str, int]:
    name = names()
    cid = pyboxd.ok("run", "-d", "--name", name, *flags, "busybox", "sleep", "300").strip()
    return name, cid, pyboxd.inspect(name)["State"]["Pid"]


def test_absolute_parent_places_the_container_below_it_in_every_hierarchy(
        pyboxd, names, cgroup_top):
    top = cgroup_top("abs")
    parent = f"/{top}/sub"
    name, cid, pid = run_sleeper(pyboxd, names, "--cgroup-parent", parent)
    seen = placed(pid)
    assert seen, "no cgroup lines"
    for hierarchy, path in seen.items():
        assert path == f"{parent}/{cid}", (hierarchy, path)
    assert pyboxd.inspect(name)["HostConfig"]["CgroupParent"] == parent
    pyboxd.ok("rm", "-f", name)
    assert not hierarchy_dirs(top), "the parents pyboxd made for the container stayed"


def test_relative_parent_is_below_the_runtimes_own_cgroup(pyboxd, names, cgroup_top):
    """As runc: a relative cgroupsPath is joined to the caller's cgroup in each
    hierarchy (pyboxd's: the runtime runs in its monitor, in pyboxd's cgroup)."""
    top = cgroup_top("rel")
    name, cid, pid = run_sleeper(pyboxd, names, "--cgroup-parent", f"{top}/./x/")
    own = proc_cgroups(pyboxd.pid)
    seen = placed(pid)
    for hierarchy, path in seen.items():
        base = own[hierarchy].rstrip("/")
        if hierarchy == "":  # pure v2: below the parent of runc's cgroup (runc's fs2)
            base = base.rsplit("/", 1)[0]
        assert path == f"{base}/{top}/x/{cid}", (hierarchy, path, own[hierarchy])
    assert pyboxd.inspect(name)["HostConfig"]["CgroupParent"] == f"{top}/./x/"
    pyboxd.ok("rm", "-f", name)
    for hierarchy, path in seen.items():
        left = os.path.join(CGROUP_ROOT, hierarchy, path.strip("/"))
        assert not os.path.isdir(left), left
        assert not os.path.isdir(os.path.dirname(os.path.dirname(left))), "its parents stayed"


def test_update_and_stats_work_below_a_parent(pyboxd, names, cgroup_top):
    top = cgroup_top("upd")
    name, cid, pid = run_sleeper(pyboxd, names, "--cgroup-parent", f"/{top}",
                                 "--memory", "96m", "--pids-limit", "50")
    pyboxd.ok("update", "--memory", "64m", "--memory-swap", "128m", "--pids-limit", "40", name)
    host_config = pyboxd.inspect(name)["HostConfig"]
    assert (host_config["Memory"], host_config["PidsLimit"]) == (64 << 20, 40)
    seen = placed(pid)
    if "memory" in seen:  # cgroup v1
        with open(f"{CGROUP_ROOT}/memory{seen['memory']}/memory.limit_in_bytes") as f:
            assert int(f.read()) == 64 << 20
        with open(f"{CGROUP_ROOT}/pids{seen['pids']}/pids.max") as f:
            assert f.read().strip() == "40"
    else:
        base = f"{CGROUP_ROOT}{seen['']}"
        with open(f"{base}/memory.max") as f:
            assert int(f.read()) == 64 << 20
    out = pyboxd.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", name)
    stat_name, usage, pids = out.split(" ", 1)[0], out.split("/")[-1].split()[0], out.split()[-1]
    assert (stat_name, usage, pids) == (name, "64MiB", "1"), out


def test_a_parent_shared_by_two_containers_goes_with_the_last(pyboxd, names, cgroup_top):
    """The first container's runtime made the parent; the second found it there.
    dockerd (runc) leaves such parents behind; pyboxd removes the ones it made
    once nothing is in them."""
    top = cgroup_top("shared")
    first, _, _ = run_sleeper(pyboxd, names, "--cgroup-parent", f"/{top}")
    second, _, _ = run_sleeper(pyboxd, names, "--cgroup-parent", f"/{top}")
    pyboxd.ok("rm", "-f", first)
    assert hierarchy_dirs(top), "removed while the second container is in it"
    pyboxd.ok("stop", "-t", "0", second)  # stopped: its cgroup is gone, the parent too
    assert not hierarchy_dirs(top)
    pyboxd.ok("start", second)  # made again for the new run
    assert hierarchy_dirs(top)
    pyboxd.ok("rm", "-f", second)
    assert not hierarchy_dirs(top)


def test_a_parent_that_existed_before_is_left_alone(pyboxd, names, cgroup_top):
    """Only cgroups pyboxd made go: a parent made by someone else (here in the
    pids hierarchy alone) stays, with its own child, after the container went."""
    top = cgroup_top("pre")
    theirs = os.path.join(CGROUP_ROOT, "pids", top)
    if not os.path.isdir(os.path.dirname(theirs)):
        pytest.skip("no v1 pids hierarchy (cgroup v2 host)")
    os.makedirs(os.path.join(theirs, "child"))
    name, cid, pid = run_sleeper(pyboxd, names, "--cgroup-parent", f"/{top}")
    assert proc_cgroups(pid)["pids"] == f"/{top}/{cid}"
    pyboxd.ok("rm", "-f", name)
    assert hierarchy_dirs(top) == [theirs]
    assert os.path.isdir(os.path.join(theirs, "child"))
    assert not os.path.exists(os.path.join(theirs, cid))


@pytest.mark.parametrize("parent,message", [
    ("../{top}", "'..' is not allowed"),
    ("/{top}/../../etc", "'..' is not allowed"),
    ("{top}/a/../b", "'..' is not allowed"),
    ("{top}.slice", "a systemd slice is only valid with the systemd cgroup driver"),
    ("/{top}/" + "x" * 256, "a path component is longer than 255 bytes"),
    ("/{top}" + "/abcdefgh" * 300, "longer than 2048 bytes"),
    ("/{top}/a\nb", "control characters are not allowed"),
    ("/pybox/{top}", "it is inside /pybox"),
])
def test_hostile_parents_are_refused_and_nothing_is_left(pyboxd, names, cgroup_top,
                                                         parent, message):
    top = cgroup_top("bad")
    name = names()
    proc = pyboxd.docker("run", "-d", "--name", name, "--cgroup-parent",
                         parent.format(top=top), "busybox", "true")
    assert proc.returncode == 125, proc.stdout
    assert "invalid cgroup-parent" in proc.stderr and message in proc.stderr, proc.stderr
    assert pyboxd.ok("ps", "-aq", "--filter", f"name=^{name}$") == ""
    for root in cgroup_roots():
        assert not [d for d in os.listdir(root) if top in d], root
        assert not [d for d in os.listdir(os.path.join(root, "pybox"))
                    if top in d] if os.path.isdir(os.path.join(root, "pybox")) else True


def test_docker_py_sees_the_parent(pyboxd, dockerpy, names, cgroup_top):
    top = cgroup_top("py")
    name = names()
    container = dockerpy.containers.run("busybox", "cat /proc/self/cgroup", name=name,
                                        cgroup_parent=f"/{top}", detach=True)
    assert container.wait(timeout=60)["StatusCode"] == 0
    lines = container.logs().decode().splitlines()
    container.reload()
    assert container.attrs["HostConfig"]["CgroupParent"] == f"/{top}"
    # the container's own cgroup namespace shows "/"; the host's view is checked above
    assert lines, "no output"
    container.remove()
    assert not hierarchy_dirs(top)


def test_root_parent_and_the_default(pyboxd, names):
    """--cgroup-parent=/ is each hierarchy's root (dockerd: /ID); without one the
    container is below /pybox and inspect shows "" as dockerd."""
    name, cid, pid = run_sleeper(pyboxd, names, "--cgroup-parent", "/")
    assert set(placed(pid).values()) == {f"/{cid}"}
    assert pyboxd.inspect(name)["HostConfig"]["CgroupParent"] == "/"
    pyboxd.ok("rm", "-f", name)
    assert not hierarchy_dirs(cid)
    assert all(os.path.isdir(root) for root in cgroup_roots())
    name, cid, pid = run_sleeper(pyboxd, names)
    assert set(placed(pid).values()) == {f"/pybox/{cid}"}
    assert pyboxd.inspect(name)["HostConfig"]["CgroupParent"] == ""


def test_next_exit_wait_counts_from_before_its_200(pyboxd, names):
    """The docker CLI's `run` parks a next-exit wait, takes the 200 as the
    sign that it is in place, then starts the container.  The exits were
    counted after the 200: a container quick to exit (and a loaded machine)
    ended before the wait was parked, and `docker run` hung.  Here the start
    follows the 200 at once, many times over."""
    name = names("nextexit")
    pyboxd.ok("create", "--name", name, "busybox", "true")
    for _ in range(15):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(20)
        s.connect(pyboxd.socket)
        with s:
            s.sendall((f"POST /v1.44/containers/{name}/wait?condition=next-exit HTTP/1.1\r\n"
                       "Host: localhost\r\nContent-Length: 0\r\n\r\n").encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head
            pyboxd.ok("start", name)
            body = head.partition(b"\r\n\r\n")[2]
            while b'"StatusCode"' not in body:
                chunk = s.recv(4096)
                assert chunk, body
                body += chunk
            assert b'"StatusCode":0' in body.replace(b" ", b""), body
