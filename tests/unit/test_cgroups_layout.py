"""Layout detection and cgroupsPath resolution from fake /proc text."""

import pytest

from pybox.cgroups import layout as L
from pybox.cgroups import paths
from pybox.errors import CgroupError

pytestmark = pytest.mark.unit

# This development host: every v1 controller on its own mount, cgroup2 at
# /sys/fs/cgroup/unified, the caller nested only in the memory hierarchy.
HOST_MOUNTINFO = """\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HOST_CGROUP = """\
9:name=systemd:/
5:devices:/
4:memory:/process_api/abc
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""

# A typical systemd host before v2: cpu and cpuacct co-mounted, net_cls,net_prio too.
COMOUNT_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
36 30 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:16 - cgroup cgroup rw,net_cls,net_prio
37 30 0:33 / /sys/fs/cgroup/memory rw,nosuid shared:17 - cgroup cgroup rw,memory
38 30 0:34 / /sys/fs/cgroup/hugetlb rw,nosuid shared:18 - cgroup cgroup rw,hugetlb
"""
COMOUNT_CGROUP = """\
5:hugetlb:/
4:memory:/user.slice
3:net_cls,net_prio:/
2:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/session-1.scope
0::/user.slice/session-1.scope
"""

V2_MOUNTINFO = """\
25 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""


def test_this_hosts_layout_is_hybrid_with_nested_memory():
    lay = L.detect(HOST_MOUNTINFO, HOST_CGROUP, read_controllers=lambda mp: "hugetlb\n")
    assert lay.mode == L.HYBRID
    assert sorted(lay.v1) == ["cpu", "cpuacct", "cpuset", "devices", "memory", "name=systemd"]
    assert lay.v1["memory"].own == "/process_api/abc"
    assert lay.v1["cpu"].own == "/"
    assert lay.v1["cpu"] is not lay.v1["cpuacct"]
    assert lay.unified.mountpoint == "/sys/fs/cgroup/unified"
    assert lay.unified_controllers == ("hugetlb",)


def test_comounted_controllers_share_one_hierarchy():
    lay = L.detect(COMOUNT_MOUNTINFO, COMOUNT_CGROUP, read_controllers=lambda mp: "")
    assert lay.mode == L.HYBRID
    assert lay.v1["cpu"] is lay.v1["cpuacct"]
    assert lay.v1["cpu"].mountpoint == "/sys/fs/cgroup/cpu,cpuacct"
    assert lay.v1["cpu"].own == "/user.slice"
    assert lay.v1["net_cls"] is lay.v1["net_prio"]
    assert lay.v1["name=systemd"].own == "/user.slice/session-1.scope"
    assert "xattr" not in lay.v1
    assert lay.unified_controllers == ()
    assert len(lay.v1_hierarchies()) == 5


def test_pure_v2():
    lay = L.detect(V2_MOUNTINFO, "0::/user.slice/user-0.slice/session-3.scope\n",
                   read_controllers=lambda mp: "cpuset cpu io memory hugetlb pids rdma misc\n")
    assert lay.mode == L.V2
    assert lay.v1 == {}
    assert lay.unified.own == "/user.slice/user-0.slice/session-3.scope"
    assert "memory" in lay.unified_controllers


def test_pure_v1_without_cgroup2():
    text = "\n".join(line for line in HOST_MOUNTINFO.splitlines() if "cgroup2" not in line)
    lay = L.detect(text, HOST_CGROUP)
    assert lay.mode == L.V1
    assert lay.unified is None


def test_no_cgroups_at_all_is_a_clear_error():
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        L.detect("25 1 254:0 / / rw - ext4 /dev/vda rw\n", "")


def test_bind_mounted_subtree_strips_the_mount_root():
    # Inside a container without cgroupns: the mount shows /docker/abc at its
    # mount point and /proc/self/cgroup the full path.
    mi = "50 40 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n"
    lay = L.detect(mi, "4:memory:/docker/abc/inner\n")
    h = lay.v1["memory"]
    assert h.root == "/docker/abc"
    assert h.own == "/inner"
    assert h.directory("/inner/x") == "/sys/fs/cgroup/memory/inner/x"


def test_mountinfo_octal_escapes_and_optional_fields():
    mi = r"60 31 0:40 / /mnt/my\040cgroups rw shared:3 master:1 - cgroup2 none rw" + "\n"
    mounts = L.parse_mountinfo(mi)
    assert mounts == [("/mnt/my cgroups", "/", "cgroup2", ["rw"])]


def test_duplicate_mounts_keep_the_first():
    mi = HOST_MOUNTINFO + "90 31 0:32 / /mnt/memory2 rw - cgroup cgroup rw,memory\n"
    lay = L.detect(mi, HOST_CGROUP, read_controllers=lambda mp: "")
    assert lay.v1["memory"].mountpoint == "/sys/fs/cgroup/memory"


def test_prefix_reroots_mount_points():
    lay = L.detect(V2_MOUNTINFO, "0::/\n", prefix="/tmp/fake", read_controllers=lambda mp: "")
    assert lay.unified.mountpoint == "/tmp/fake/sys/fs/cgroup"


def test_parse_proc_cgroup():
    assert L.parse_proc_cgroup(COMOUNT_CGROUP)["cpuacct"] == "/user.slice"
    assert L.parse_proc_cgroup("0::/a:b\n") == {"": "/a:b"}


# -- cgroupsPath ------------------------------------------------------------------

@pytest.mark.parametrize("cgroups_path,own,expected", [
    ("/pybox/abc", "/process_api/x", "/pybox/abc"),        # absolute: from the root
    ("pybox/abc", "/process_api/x", "/process_api/x/pybox/abc"),  # relative: below own
    ("pybox/abc", "/", "/pybox/abc"),
    ("", "/process_api/x", "/process_api/x/ctr1"),          # empty: the id, relative
    ("/a/./b//c/", "/", "/a/b/c"),
    ("/a/b/../c", "/", "/a/c"),                              # '..' inside is fine
    ("a/../b", "/own", "/own/b"),
])
def test_resolve_cgroupfs_paths(cgroups_path, own, expected):
    assert paths.resolve(cgroups_path, "ctr1", own) == expected


@pytest.mark.parametrize("cgroups_path", ["/../etc", "/a/../../b", "../sibling", "a/../../x", "/", ".",
                                          "a/.."])
def test_paths_that_escape_or_name_the_base_are_refused(cgroups_path):
    with pytest.raises(CgroupError, match="linux.cgroupsPath"):
        paths.resolve(cgroups_path, "ctr1", "/own")


def test_bad_container_id_for_default_path():
    with pytest.raises(CgroupError):
        paths.resolve("", "a/b", "/")


@pytest.mark.parametrize("cgroups_path,expected", [
    ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
    ("machine-pybox.slice:pybox:id1", "/machine.slice/machine-pybox.slice/pybox-id1.scope"),
    ("-.slice:runc:x", "/runc-x.scope"),
    (":runc:x", "/system.slice/runc-x.scope"),
    ("", "/system.slice/runc-ctr1.scope"),
    ("system.slice:docker:child.slice", "/system.slice/child.slice"),
])
def test_systemd_form(cgroups_path, expected):
    assert paths.resolve(cgroups_path, "ctr1", "/ignored", systemd=True) == expected


def test_systemd_rootless_default_slice():
    assert paths.resolve("", "c", "/", systemd=True, rootless=True) == "/user.slice/runc-c.scope"


@pytest.mark.parametrize("bad", ["a:b", "nodot:p:n", "a--b.slice:p:n", "/x.slice:p:n", "system.slice:p:a/b"])
def test_systemd_form_errors(bad):
    with pytest.raises(CgroupError, match="linux.cgroupsPath"):
        paths.resolve(bad, "ctr1", "/", systemd=True)
