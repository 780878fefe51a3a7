"""Bad input: one clear line on stderr, a non-zero exit, and nothing left behind
(no state directory, cgroup, mount or process)."""

import os
import subprocess

import pytest

from .conftest import host_mounts_mentioning

pytestmark = pytest.mark.root


def cgroup_dirs_named(cid):
    found = []
    for top in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", top)
        for dirpath, dirnames, _ in os.walk(base):
            if cid in dirnames:
                found.append(os.path.join(dirpath, cid))
            if dirpath.count("/") > 8:
                dirnames[:] = []
    return found


def processes_mentioning(text):
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if text in line and "ps -eo" not in line]


def assert_nothing_left(rt, cid, bundle):
    assert not os.path.exists(os.path.join(rt.root, cid)), "state dir left behind"
    assert cgroup_dirs_named(cid) == [], "cgroup left behind"
    assert host_mounts_mentioning(bundle.path) == [], "mount left behind"
    assert processes_mentioning(cid) == [], "process left behind"


def fails(rt, bundle, cid, *extra):
    err = rt("create", *extra, "-b", bundle.path, cid, check=False)
    assert err.returncode != 0
    lines = err.stderr.strip().splitlines()
    assert len(lines) == 1, err.stderr
    assert_nothing_left(rt, cid, bundle)
    return lines[0]


def test_malformed_json(rt, bundle):
    os.makedirs(bundle.path, exist_ok=True)
    with open(os.path.join(bundle.path, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.2", "root": ')
    assert "not valid JSON" in fails(rt, bundle, rt.new_id())


def test_schema_violation_names_the_field(rt, bundle):
    bundle.linux["resources"]["memory"] = {"limit": "lots"}
    bundle.write()
    assert "linux.resources.memory.limit: must be an integer" in fails(rt, bundle, rt.new_id())


def test_missing_rootfs(rt, bundle):
    bundle.config["root"]["path"] = "no-such-rootfs"
    bundle.write()
    assert "no-such-rootfs" in fails(rt, bundle, rt.new_id())


def test_unknown_namespace(rt, bundle):
    bundle.linux["namespaces"].append({"type": "bogus"})
    bundle.write()
    assert "unknown namespace type 'bogus'" in fails(rt, bundle, rt.new_id())


def test_missing_executable(rt, bundle):
    bundle.set_args("does-not-exist")
    bundle.write()
    msg = fails(rt, bundle, rt.new_id())
    assert 'exec: "does-not-exist": executable file not found in $PATH' in msg


def test_failure_inside_init_rolls_back(rt, bundle, tmp_path):
    # a bind mount whose source vanished: fails in init, after cgroup and
    # namespaces exist and after earlier mounts were made
    bundle.config["mounts"].append({"destination": "/data", "type": "bind",
                                    "source": str(tmp_path / "missing"),
                                    "options": ["rbind"]})
    bundle.linux["resources"]["memory"] = {"limit": 64 << 20}
    bundle.write()
    assert "does not exist" in fails(rt, bundle, rt.new_id())


def test_bad_namespace_path(rt, bundle):
    bundle.linux["namespaces"].append({"type": "network", "path": "/proc/999999999/ns/net"})
    bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                  if not (ns["type"] == "network" and "path" not in ns)]
    bundle.write()
    assert "network namespace" in fails(rt, bundle, rt.new_id())


def test_failing_prestart_hook_rolls_back(rt, bundle):
    bundle.config["hooks"] = {"prestart": [{"path": "/bin/sh",
                                            "args": ["sh", "-c", "echo nope >&2; exit 3"]}]}
    bundle.write()
    msg = fails(rt, bundle, rt.new_id())
    assert "prestart hook #0" in msg and "status 3" in msg and "nope" in msg


def test_terminal_without_console_socket(rt, bundle):
    bundle.process["terminal"] = True
    bundle.write()
    assert "--console-socket" in fails(rt, bundle, rt.new_id())


def test_nonexistent_container_commands(rt):
    for cmd in (["start"], ["state"], ["kill"], ["delete"]):
        err = rt(*cmd, "pybox-test-nope", check=False)
        assert err.returncode != 0 and "does not exist" in err.stderr
    assert rt("delete", "--force", "pybox-test-nope").returncode == 0


def test_impossible_cgroup_limit_rolls_back(rt, bundle):
    # the cgroup is written while stage1 already runs: its failure must still
    # stop stage1 and leave nothing
    bundle.linux["resources"]["cpu"] = {"cpus": "999"}
    bundle.write()
    assert "linux.resources.cpu" in fails(rt, bundle, rt.new_id())
