"""OCI hooks: when each runs, what state it gets on stdin, and what a failure does."""

import json
import os
import time

import pytest

pytestmark = pytest.mark.root


def recorder(log, name):
    """A hook that appends 'NAME STATUS PID-NONZERO' from the state on stdin."""
    script = (f"read -r s; st=$(echo \"$s\" | sed 's/.*\"status\": *\"\\([a-z]*\\)\".*/\\1/'); "
              f"echo \"{name} $st\" >> {log}")
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def test_hook_order_and_state(rt, bundle, tmp_path):
    log = tmp_path / "hooks.log"
    names = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
             "poststop")
    bundle.config["hooks"] = {n: [recorder(log, n)] for n in names}
    # startContainer runs inside the container: show it the log's directory at
    # the same path
    bundle.config["mounts"].append({"destination": str(tmp_path), "type": "bind",
                                    "source": str(tmp_path), "options": ["rbind"]})
    bundle.set_args("/bin/true")
    cid = rt.new_id()
    rt("create", "-b", bundle.write(), cid)
    assert log.read_text().split("\n")[:3] == ["prestart created", "createRuntime creating",
                                               "createContainer creating"]
    rt("start", cid)
    for _ in range(200):
        if rt.state(cid)["status"] == "stopped":
            break
        time.sleep(0.02)
    rt("delete", cid)
    assert log.read_text().splitlines() == [
        "prestart created", "createRuntime creating", "createContainer creating",
        "startContainer created", "poststart running", "poststop stopped"]


def test_state_on_stdin_is_complete(rt, bundle, tmp_path):
    out = tmp_path / "state.json"
    bundle.config["annotations"] = {"org.example/k": "v"}
    bundle.config["hooks"] = {"poststart": [{"path": "/bin/sh",
                                             "args": ["sh", "-c", f"cat > {out}"]}]}
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.sh("sleep 100").write(), cid)
    state = json.loads(out.read_text())
    assert state["id"] == cid and state["status"] == "running"
    assert state["pid"] == rt.state(cid)["pid"] and state["bundle"] == bundle.path
    assert state["annotations"] == {"org.example/k": "v"}


def test_failing_poststart_and_poststop_only_warn(rt, bundle, tmp_path):
    log = tmp_path / "after"
    bundle.config["hooks"] = {
        "poststart": [{"path": "/bin/false"}, recorder(log, "poststart")],
        "poststop": [{"path": "/bin/false"}, recorder(log, "poststop")],
    }
    cid = rt.new_id()
    rt("run", "-d", "-b", bundle.sh("sleep 100").write(), cid)
    rt("delete", "-f", cid)
    assert log.read_text().splitlines() == ["poststart running", "poststop stopped"]


def test_failing_startcontainer_hook_fails_start(rt, bundle):
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sh",
                                                  "args": ["sh", "-c", "exit 4"]}]}
    marker = os.path.join(bundle.rootfs, "ran")
    cid = rt.new_id()
    rt("create", "-b", bundle.sh("touch /ran").write(), cid)
    err = rt("start", cid, check=False)
    assert err.returncode != 0 and "startContainer hook #0" in err.stderr
    assert not os.path.exists(marker)


def test_hook_timeout(rt, bundle):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "5"],
                                                 "timeout": 1}]}
    cid = rt.new_id()
    t0 = time.monotonic()
    err = rt("create", "-b", bundle.write(), cid, check=False)
    assert err.returncode != 0 and "timed out after 1s" in err.stderr
    assert time.monotonic() - t0 < 4
    assert not os.path.exists(os.path.join(rt.root, cid))
