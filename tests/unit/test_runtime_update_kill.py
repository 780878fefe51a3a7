"""pybox-runtime update and kill --all as runc has them (issue 14), on the fake
cgroupfs (pybox.cgroups.fakefs) and a fake bpf(2):

* update leaves device rules alone (runc's SkipDevices): containerd's CRI sends
  the spec's resources whose device list is only "deny all", and applying it
  took /dev/null and /dev/ptmx away from running containers;
* kill --all signals what is left in a stopped container's cgroup and succeeds
  (containerd deletes every exited task with "kill --all ID KILL");
* the cgroup v2 device program is swapped atomically (BPF_F_REPLACE) when one
  is attached.
"""

import ctypes
import errno
import os
import struct
import subprocess

import pytest

from pybox import cgroups
from pybox.cgroups import devices as D
from pybox.cgroups import ebpf
from pybox.cgroups.fakefs import fake_host
from pybox.errors import InvalidState
from pybox.formats import fastjson
from pybox.linux import proc
from pybox.oci import state as st
from pybox.runtime import container as ctr

pytestmark = pytest.mark.unit

DENY_ALL = {"allow": False, "access": "rwm"}
# what containerd's CRI puts in linux.resources for a default container, and
# sends back whole with UpdateContainerResources
CRI_UPDATE = {"devices": [DENY_ALL],
              "memory": {"limit": 128 << 20, "swap": 128 << 20},
              "cpu": {"shares": 256, "quota": 50000, "period": 100000}}


def read(path):
    with open(path) as f:
        return f.read()


class Setup:
    """A container record in a real state directory whose cgroup lives on a
    fake host, with ``init`` (a child of ours) as its init, or none."""

    def __init__(self, tmp_path, monkeypatch, mode, *, init=None, create_cgroup=True,
                 status="running", started=True):
        self.fs, layout = fake_host(tmp_path / "host", mode)
        self.mgr = cgroups.new_manager("/pybox-unit/c1", "c1", layout=layout, fs=self.fs)
        self.installed = []  # v2: (cgroup dir, DeviceState) per device program attached
        monkeypatch.setattr(ebpf, "install",
                            lambda d, state, sc=None: self.installed.append((d, state)))
        self.config = {"ociVersion": "1.1.0", "root": {"path": "rootfs"},
                       "linux": {"resources": {"devices": [DENY_ALL],
                                               "memory": {"limit": 256 << 20}}}}
        if create_cgroup:
            self.mgr.create()
            self.mgr.apply(ctr.cgroup_resources(self.config["linux"]["resources"]))
        self.root = str(tmp_path / "state")
        sdir = st.StateDir(self.root, "c1")
        sdir.claim()
        record = {"id": "c1", "bundle": str(tmp_path), "cgroup": self.mgr.to_state(),
                  "started": started}
        if init is not None:
            record.update(pid=init.pid, pid_start=proc.start_time(init.pid))
        if status == "paused":
            record["paused"] = True
            self.mgr.freeze()
        sdir.write(record)
        sdir.write_config(fastjson.dumps(self.config))
        fs = self.fs
        monkeypatch.setattr(ctr.Container, "cgroup_manager",
                            lambda c: cgroups.load_manager(c.record["cgroup"], fs=fs))
        self.writes_before = len(self.fs.writes)

    def container(self):
        return ctr.Container.load(self.root, "c1")

    def new_writes(self):
        return self.fs.writes[self.writes_before:]

    def add_to_cgroup(self, pid):
        """Put ``pid`` in the container's cgroup (every hierarchy)."""
        for d in set(self.mgr.paths.values()):
            with open(os.path.join(d, "cgroup.procs"), "a") as f:
                f.write(f"{pid}\n")


@pytest.fixture
def child():
    """A process of ours to stand for a container's process (safe to signal)."""
    procs = []

    def start():
        p = subprocess.Popen(["sleep", "60"])
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


# -- update: device rules stay ---------------------------------------------------------

def test_v1_update_with_cri_resources_keeps_the_default_devices(tmp_path, monkeypatch,
                                                                child):
    s = Setup(tmp_path, monkeypatch, "v1", init=child())
    devices_dir = s.mgr.paths["devices"]
    before = read(f"{devices_dir}/devices.list")
    for rule in ("c 1:3 rwm", "c 5:2 rwm", "c 136:* rwm", "c 1:9 rwm"):  # null, ptmx, pts
        assert rule in before.splitlines()
    s.container().update(CRI_UPDATE)
    assert read(f"{devices_dir}/devices.list") == before
    assert not [w for w in s.new_writes() if "/devices." in w[0]]
    # the rest of the update went through
    assert read(f"{s.mgr.paths['memory']}/memory.limit_in_bytes") == str(128 << 20)
    assert read(f"{s.mgr.paths['cpu']}/cpu.cfs_quota_us") == "50000"
    assert read(f"{s.mgr.paths['cpu']}/cpu.shares") == "256"
    # and the config snapshot keeps the rules of create, with the new limits
    snapshot = s.container().config["linux"]["resources"]
    assert snapshot["devices"] == [DENY_ALL]
    assert snapshot["memory"]["limit"] == 128 << 20


@pytest.mark.parametrize("mode", ["v2", "hybrid"])
def test_update_does_not_replace_the_device_program(tmp_path, monkeypatch, child, mode):
    s = Setup(tmp_path, monkeypatch, mode, init=child())
    if mode == "v2":
        assert len(s.installed) == 1  # the program of create
        created = s.installed[0][1]
        assert created.allows("c", 1, 3, "rw") and created.allows("c", 5, 2, "rw")
    s.container().update(CRI_UPDATE)
    assert len(s.installed) == (1 if mode == "v2" else 0)
    assert not [w for w in s.new_writes() if "/devices." in w[0]]


def test_update_of_devices_alone_changes_nothing(tmp_path, monkeypatch, child):
    s = Setup(tmp_path, monkeypatch, "v1", init=child())
    s.container().update({"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 1,
                                                  "minor": 1, "access": "rwm"}]})
    assert s.new_writes() == []
    assert s.container().config["linux"]["resources"]["devices"] == [DENY_ALL]


def test_update_still_checks_the_device_rules_it_ignores(tmp_path, monkeypatch, child):
    # the JSON must still be a linux.resources object (runc's decoder fails too)
    s = Setup(tmp_path, monkeypatch, "v1", init=child())
    with pytest.raises(Exception, match="devices"):
        s.container().update({"devices": "deny"})
    assert s.new_writes() == []


def test_update_of_a_stopped_container_fails(tmp_path, monkeypatch):
    s = Setup(tmp_path, monkeypatch, "v1")
    with pytest.raises(InvalidState, match="stopped"):
        s.container().update({"memory": {"limit": 64 << 20}})


def test_manager_update_with_devices_never_drops_what_both_allow(tmp_path):
    # the cgroups layer still applies a device list it is given (runtime-tools
    # and pybox's own tests use it): the v1 writes only remove what the new
    # list no longer has, so /dev/null stays usable throughout
    fs, layout = fake_host(tmp_path, "v1")
    mgr = cgroups.new_manager("/pybox-unit/c2", "c2", layout=layout, fs=fs)
    mgr.create()
    first = ctr.cgroup_resources({})
    mgr.apply(first)
    start = len(fs.writes)
    second = ctr.cgroup_resources({"devices": [{"allow": True, "type": "c", "major": 10,
                                                "minor": 229, "access": "rwm"}]})
    mgr.update(second)
    writes = fs.writes[start:]
    assert writes == [(mgr.paths["devices"] + "/devices.allow", "c 10:229 rwm")]
    listed = D.parse_devices_list(read(mgr.paths["devices"] + "/devices.list"))
    assert listed == D.state_from_rules(second["devices"])


# -- kill --all -----------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
def test_kill_all_of_a_stopped_container_signals_what_is_left(tmp_path, monkeypatch, child,
                                                              mode):
    s = Setup(tmp_path, monkeypatch, mode)  # no init: stopped
    leftover = child()
    s.add_to_cgroup(leftover.pid)
    c = s.container()
    assert c.status() == "stopped"
    c.kill(15, all_processes=True)
    assert leftover.wait(timeout=10) == -15
    # frozen while signalled, thawed after (v1 freezer.state, v2 cgroup.freeze)
    freezes = [w[1] for w in s.new_writes() if w[0].endswith(("freezer.state",
                                                              "cgroup.freeze"))]
    assert freezes in (["FROZEN", "THAWED"], ["1", "0"])


def test_kill_all_sigkill_of_a_stopped_v2_container_uses_cgroup_kill(tmp_path, monkeypatch,
                                                                    child):
    s = Setup(tmp_path, monkeypatch, "v2")
    s.add_to_cgroup(child().pid)
    s.container().kill(9, all_processes=True)
    assert (s.mgr.paths[""] + "/cgroup.kill", "1") in s.new_writes()


@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
def test_kill_all_of_a_stopped_container_with_an_empty_cgroup_succeeds(tmp_path, monkeypatch,
                                                                       mode):
    s = Setup(tmp_path, monkeypatch, mode)
    s.container().kill(9, all_processes=True)
    assert s.new_writes() == []  # nothing frozen, nothing killed


@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
def test_kill_all_of_a_stopped_container_whose_cgroup_is_gone_succeeds(tmp_path, monkeypatch,
                                                                       mode):
    s = Setup(tmp_path, monkeypatch, mode)
    s.mgr.destroy()
    assert not any(os.path.isdir(d) for d in s.mgr.paths.values())
    s.container().kill(9, all_processes=True)
    s.container().kill(15, all_processes=True)


def test_kill_all_of_a_container_that_never_got_a_cgroup_succeeds(tmp_path, monkeypatch):
    s = Setup(tmp_path, monkeypatch, "v1", create_cgroup=False)
    s.container().kill(9, all_processes=True)
    assert s.new_writes() == []


def test_kill_all_after_init_exited_in_created_state(tmp_path, monkeypatch, child):
    # create, then init dies before start: the record still says not started
    init = child()
    s = Setup(tmp_path, monkeypatch, "v1", init=init, started=False)
    init.kill()
    init.wait()
    c = s.container()
    assert c.status() == "stopped"
    c.kill(9, all_processes=True)


def test_kill_without_all_of_a_stopped_container_is_refused(tmp_path, monkeypatch, child):
    s = Setup(tmp_path, monkeypatch, "v1")
    leftover = child()
    s.add_to_cgroup(leftover.pid)
    with pytest.raises(InvalidState, match="not running"):
        s.container().kill(9)
    assert leftover.poll() is None  # a stopped container's pid is nobody's to signal


def test_kill_all_of_a_running_container_signals_every_process(tmp_path, monkeypatch, child):
    init, other = child(), child()
    s = Setup(tmp_path, monkeypatch, "v1", init=init)
    s.add_to_cgroup(init.pid)
    s.add_to_cgroup(other.pid)
    s.container().kill(15, all_processes=True)
    assert init.wait(timeout=10) == -15 and other.wait(timeout=10) == -15


def test_sigkill_of_a_paused_container_thaws_it(tmp_path, monkeypatch, child):
    init = child()
    s = Setup(tmp_path, monkeypatch, "v1", init=init, status="paused")
    c = s.container()
    assert c.status() == "paused"
    c.kill(9)
    assert init.wait(timeout=10) == -9
    assert read(s.mgr.paths["freezer"] + "/freezer.state") == "THAWED"


def test_sigterm_of_a_paused_container_leaves_it_frozen(tmp_path, monkeypatch, child):
    init = child()
    s = Setup(tmp_path, monkeypatch, "v1", init=init, status="paused")
    s.container().kill(15)
    assert read(s.mgr.paths["freezer"] + "/freezer.state") == "FROZEN"


# -- the v2 device program: replaced atomically ------------------------------------------

class FakeBpf:
    """bpf(2) for ebpf.install: ``attached`` program ids on one cgroup; records
    (command, flags, replace fd) per call."""

    def __init__(self, attached, replace_errno=None):
        self.attached = list(attached)
        self.calls = []
        self.replace_errno = replace_errno
        self.next_id = 100
        self.fds = {}  # fd -> program id

    def _fd_for(self, prog_id):
        fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        self.fds[fd] = prog_id
        return fd

    def bpf(self, cmd, attr, size):
        if cmd == ebpf.BPF_PROG_QUERY:
            ids_addr, = struct.unpack_from("<Q", attr, 16)
            ids = (ctypes.c_uint32 * 64).from_address(ids_addr)
            for i, prog_id in enumerate(self.attached):
                ids[i] = prog_id
            struct.pack_into("<I", attr, 24, len(self.attached))
            self.calls.append(("query",))
            return 0
        if cmd == ebpf.BPF_PROG_LOAD:
            self.next_id += 1
            self.calls.append(("load",))
            return self._fd_for(self.next_id)
        if cmd == ebpf.BPF_PROG_GET_FD_BY_ID:
            prog_id, = struct.unpack_from("<I", attr, 0)
            if prog_id not in self.attached:
                raise OSError(errno.ENOENT, "gone")
            return self._fd_for(prog_id)
        _, prog_fd, _, flags, replace_fd = struct.unpack_from("<IIIII", attr, 0)
        prog = self.fds[prog_fd]
        if cmd == ebpf.BPF_PROG_ATTACH:
            self.calls.append(("attach", flags))
            if flags & ebpf.BPF_F_REPLACE:
                if self.replace_errno:
                    raise OSError(self.replace_errno, os.strerror(self.replace_errno))
                old = self.fds[replace_fd]
                self.attached[self.attached.index(old)] = prog
            else:
                self.attached.append(prog)
            return 0
        if cmd == ebpf.BPF_PROG_DETACH:
            self.calls.append(("detach", prog))
            self.attached.remove(prog)
            return 0
        raise AssertionError(f"unexpected bpf command {cmd}")

    def close_all(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _state():
    return D.state_from_rules(ctr.cgroup_resources({})["devices"])


def test_one_program_is_replaced_in_one_attach(tmp_path):
    sc = FakeBpf(attached=[7])
    ebpf.install(str(tmp_path), _state(), sc)
    assert sc.calls == [("query",), ("load",),
                        ("attach", ebpf.BPF_F_ALLOW_MULTI | ebpf.BPF_F_REPLACE)]
    assert sc.attached == [101]  # never two, never none


def test_no_program_attached_is_a_plain_attach(tmp_path):
    sc = FakeBpf(attached=[])
    ebpf.install(str(tmp_path), _state(), sc)
    assert sc.calls == [("query",), ("load",), ("attach", ebpf.BPF_F_ALLOW_MULTI)]
    assert sc.attached == [101]


def test_several_programs_are_detached_after_the_new_one_is_attached(tmp_path):
    sc = FakeBpf(attached=[7, 8])
    ebpf.install(str(tmp_path), _state(), sc)
    assert sc.calls == [("query",), ("load",), ("attach", ebpf.BPF_F_ALLOW_MULTI),
                        ("detach", 7), ("detach", 8)]
    assert sc.attached == [101]


def test_kernel_without_bpf_f_replace_falls_back(tmp_path):
    sc = FakeBpf(attached=[7], replace_errno=errno.EINVAL)  # before Linux 5.6
    ebpf.install(str(tmp_path), _state(), sc)
    assert sc.calls[-3:] == [("attach", ebpf.BPF_F_ALLOW_MULTI | ebpf.BPF_F_REPLACE),
                             ("attach", ebpf.BPF_F_ALLOW_MULTI), ("detach", 7)]
    assert sc.attached == [101]


def test_fds_are_closed(tmp_path):
    sc = FakeBpf(attached=[7])
    ebpf.install(str(tmp_path), _state(), sc)
    still_open = []
    for fd in sc.fds:
        try:
            os.fstat(fd)
            still_open.append(fd)
        except OSError:
            pass
    sc.close_all()
    assert still_open == []
