"""Observing and changing containers through the docker CLI and docker-py: top,
stats, update (verified from inside the container), rename, port, events,
diff, export, commit, cp both ways, container prune, system df and prune."""

import io
import json
import os
import stat
import subprocess
import tarfile
import time
import uuid

import pytest

from support.wait import wait_for

pytestmark = [pytest.mark.root, pytest.mark.engine]

MiB = 1 << 20
CG_MEMORY = "/sys/fs/cgroup/memory"


def cgroup_v1_memory_inside(pyboxd, name):
    """The container's memory limit as it reads it from its /sys/fs/cgroup."""
    return int(pyboxd.ok("exec", name, "cat", f"{CG_MEMORY}/memory.limit_in_bytes"))


def needs_cgroup_v1():
    if not os.path.isdir(CG_MEMORY) or not os.path.exists(f"{CG_MEMORY}/memory.limit_in_bytes"):
        pytest.skip("needs the cgroup v1 memory controller at /sys/fs/cgroup/memory")


def to_bytes(text):
    """docker's human sizes ("12.5MiB", "1.2kB") -> bytes."""
    units = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "kB": 1000,
             "MB": 1000 ** 2, "GB": 1000 ** 3}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * units[unit]
    raise ValueError(text)


# -- top and stats ------------------------------------------------------------------------
def test_top(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1000 & exec sleep 999")

    def top() -> tuple[list[str], list[str], list[str]]:
        rows = pyboxd.ok("top", name).splitlines()
        titles = rows[0].split()
        return rows, titles, sorted(line.split(None, len(titles) - 1)[-1] for line in rows[1:])

    # run -d returns once the container started: sh may not have forked and exec'd yet
    rows, titles, cmds = wait_for(lambda: (t := top())[2] == ["sleep 1000", "sleep 999"] and t,
                                  timeout=10) or top()
    assert titles[:3] == ["UID", "PID", "PPID"] and titles[-1] == "CMD"
    assert cmds == ["sleep 1000", "sleep 999"]
    pid = pyboxd.inspect(name)["State"]["Pid"]
    assert str(pid) in [line.split()[1] for line in rows[1:]]
    # ps options
    rows = pyboxd.ok("top", name, "-o", "pid,comm").splitlines()
    assert rows[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in rows[1:]) == ["sleep", "sleep"]
    # a stopped container: 409
    pyboxd.ok("stop", "-t", "0", name)
    proc = pyboxd.docker("top", name)
    assert proc.returncode == 1 and "is not running" in proc.stderr


def test_stats_no_stream_and_memory_without_file_cache(pyboxd, names, dockerpy):
    name = names()
    # 24 MiB in tmpfs (counted) and 64 MiB of page cache from a written file
    # (docker's figure leaves out inactive file cache)
    pyboxd.ok("run", "-d", "--name", name, "-m", "512m", "busybox", "sh", "-c",
              "dd if=/dev/zero of=/dev/shm/anon bs=1M count=24 2>/dev/null; "
              "dd if=/dev/zero of=/cache bs=1M count=64 2>/dev/null; echo ready; "
              "exec sleep 1000")
    assert wait_for(lambda: "ready" in pyboxd.ok("logs", name))
    out = pyboxd.ok("stats", "--no-stream", "--format",
                    "{{.Name}}|{{.MemUsage}}|{{.PIDs}}|{{.CPUPerc}}", name)
    row, = out.splitlines()
    shown_name, mem, pids, cpu = row.split("|")
    assert (shown_name, pids) == (name, "1")
    usage, limit = (to_bytes(x.strip()) for x in mem.split("/"))
    assert limit == 512 * MiB
    assert 24 * MiB <= usage < 64 * MiB, mem  # the tmpfs, not the page cache
    assert cpu.endswith("%")
    # the raw document (docker-py): the counters the CLI computes from
    doc = dockerpy.containers.get(name).stats(stream=False)
    assert doc["name"] == "/" + name
    mstats = doc["memory_stats"]
    inactive = mstats["stats"]["total_inactive_file"]
    assert mstats["limit"] == 512 * MiB
    assert mstats["usage"] >= 24 * MiB + inactive
    assert inactive >= 32 * MiB  # most of the 64 MiB written is inactive file cache
    assert doc["pids_stats"]["current"] == 1
    assert doc["cpu_stats"]["online_cpus"] >= 1
    assert doc["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    # stats of a stopped container: zeros, not an error
    pyboxd.ok("stop", "-t", "0", name)
    out = pyboxd.ok("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", name)
    assert out.split()[0] == name


def test_stats_live_table_refreshes(pyboxd, names):
    """docker stats without --no-stream: the table again every second, with the
    numbers of the moment (a process started in between shows up)."""
    import re
    import select

    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    proc = subprocess.Popen(["/usr/local/bin/docker", "stats", "--format",
                             "{{.Name}} pids={{.PIDs}}", name], env=pyboxd.cli_env,
                            stdout=subprocess.PIPE)
    seen = b""
    try:
        def rows():
            text = re.sub(rb"\x1b\[[0-9;]*[A-Za-z]", b"\n", seen).decode()
            return [line.strip() for line in text.splitlines() if line.startswith(name)]

        def read_until(pred):
            nonlocal seen
            while not pred():
                ready, _, _ = select.select([proc.stdout], [], [], 20)
                assert ready, f"no stats output; got {seen!r}"
                seen += os.read(proc.stdout.fileno(), 65536)

        read_until(lambda: f"{name} pids=1" in rows())
        pyboxd.ok("exec", "-d", name, "sleep", "999")
        read_until(lambda: f"{name} pids=2" in rows())
    finally:
        proc.kill()
        proc.wait()


def test_exec_detached_returns_while_the_process_runs(pyboxd, names):
    """docker exec -d returns once the process started (it used to wait for its
    end), and the process may write to its stderr afterwards (discarded)."""
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    proc = pyboxd.docker("exec", "-d", name, "sh", "-c",
                         "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo noise >&2; "
                         "echo survived > /tmp/done; exec sleep 1000", timeout=20)
    assert (proc.returncode, proc.stdout) == (0, "")
    pyboxd.ok("exec", name, "touch", "/tmp/go")
    assert wait_for(lambda: pyboxd.docker("exec", name, "cat", "/tmp/done").stdout ==
                    "survived\n")
    out = pyboxd.ok("top", name, "-o", "pid,args")
    assert out.count("sleep 1000") == 2


def test_stats_stream_from_dockerpy(dockerpy, names):
    name = names()
    c = dockerpy.containers.run("busybox", ["sleep", "1000"], name=name, detach=True)
    stream = c.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    stream.close()
    assert first["id"] == c.id
    # precpu of a document is the previous sample
    assert second["precpu_stats"]["cpu_usage"]["total_usage"] == \
        first["cpu_stats"]["cpu_usage"]["total_usage"]


# -- update -------------------------------------------------------------------------------
def test_update_memory_live_seen_inside(pyboxd, names):
    needs_cgroup_v1()
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "1000")
    assert cgroup_v1_memory_inside(pyboxd, name) == 64 * MiB
    assert pyboxd.ok("update", "-m", "96m", "--memory-swap", "192m", name) == name + "\n"
    assert cgroup_v1_memory_inside(pyboxd, name) == 96 * MiB
    assert int(pyboxd.ok("exec", name, "cat",
                         f"{CG_MEMORY}/memory.memsw.limit_in_bytes")) == 192 * MiB
    hc = pyboxd.inspect(name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"]) == (96 * MiB, 192 * MiB)
    # the new limit is enforced: 120 MiB in tmpfs does not fit in 96 MiB
    proc = pyboxd.docker("exec", name, "dd", "if=/dev/zero", "of=/dev/shm/big", "bs=1M",
                         "count=120")
    assert proc.returncode != 0
    # docker-py too
    import docker

    client = docker.DockerClient(base_url=pyboxd.host)
    try:
        client.containers.get(name).update(mem_limit="80m", memswap_limit="160m")
    finally:
        client.close()
    assert cgroup_v1_memory_inside(pyboxd, name) == 80 * MiB


def test_update_cpu_and_pids(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    pyboxd.ok("update", "--cpus", "0.5", "--cpu-shares", "512", "--pids-limit", "7",
              "--cpuset-cpus", "0", name)
    hc = pyboxd.inspect(name)["HostConfig"]
    assert (hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"], hc["CpusetCpus"]) == (
        500_000_000, 512, 7, "0")
    cgroup = "/sys/fs/cgroup"
    read = lambda path: pyboxd.ok("exec", name, "cat", f"{cgroup}/{path}").strip()  # noqa: E731
    if os.path.exists(f"{cgroup}/cpu/cpu.cfs_quota_us"):
        assert (read("cpu/cpu.cfs_quota_us"), read("cpu/cpu.cfs_period_us")) == ("50000",
                                                                                  "100000")
        assert read("cpu/cpu.shares") == "512"
        assert read("pids/pids.max") == "7"
        assert read("cpuset/cpuset.cpus") == "0"
    # more CPUs than the machine has: refused, as dockerd does, nothing changed
    ncpu = os.cpu_count()
    proc = pyboxd.docker("update", "--cpus", str(ncpu + 1), name)
    assert proc.returncode == 1
    assert (f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs "
            "available") in proc.stderr
    assert pyboxd.inspect(name)["HostConfig"]["NanoCpus"] == 500_000_000
    proc = pyboxd.docker("run", "--rm", "--cpus", str(ncpu + 1), "busybox", "true")
    assert proc.returncode == 125 and "Range of CPUs" in proc.stderr
    # the pids limit holds: 7 processes in all
    out = pyboxd.docker("exec", name, "sh", "-c",
                        "for i in 1 2 3 4 5 6 7 8 9; do sleep 0.5 & done; wait")
    assert "can't fork" in out.stderr or "Resource temporarily unavailable" in out.stderr


def test_impossible_memory_update_keeps_the_old_limit(pyboxd, names):
    needs_cgroup_v1()
    if any(line.split()[0] != "Filename" for line in open("/proc/swaps")):
        pytest.skip("with swap the kernel can page the tmpfs out and the update succeeds")
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "-m", "64m", "--memory-swap", "64m", "busybox",
              "sh", "-c", "dd if=/dev/zero of=/dev/shm/pinned bs=1M count=40 2>/dev/null; "
              "echo ready; exec sleep 1000")
    assert wait_for(lambda: "ready" in pyboxd.ok("logs", name))
    proc = pyboxd.docker("update", "-m", "16m", "--memory-swap", "16m", name)
    assert proc.returncode == 1
    assert "Error response from daemon: Cannot update container" in proc.stderr
    assert "could not reclaim enough (errno 16)" in proc.stderr
    # nothing changed: the limit, the record, the container and its data
    assert cgroup_v1_memory_inside(pyboxd, name) == 64 * MiB
    hc = pyboxd.inspect(name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"]) == (64 * MiB, 64 * MiB)
    assert pyboxd.inspect(name)["State"]["Status"] == "running"
    assert pyboxd.ok("exec", name, "du", "-m", "/dev/shm/pinned").split()[0] == "40"
    # below docker's minimum: refused before reaching the kernel
    proc = pyboxd.docker("update", "-m", "1m", name)
    assert proc.returncode == 1 and "Minimum memory limit allowed is 6MB" in proc.stderr


def test_update_of_a_stopped_container_applies_at_start(pyboxd, names):
    needs_cgroup_v1()
    name = names()
    pyboxd.ok("create", "--name", name, "busybox", "sleep", "1000")
    pyboxd.ok("update", "-m", "48m", name)
    pyboxd.ok("start", name)
    assert cgroup_v1_memory_inside(pyboxd, name) == 48 * MiB


# -- rename, port -------------------------------------------------------------------------
def test_rename(pyboxd, names):
    old, new, taken = names(), names(), names()
    cid = pyboxd.ok("run", "-d", "--name", old, "busybox", "sleep", "1000").strip()
    pyboxd.ok("create", "--name", taken, "busybox", "true")
    pyboxd.ok("rename", old, new)
    assert pyboxd.inspect(new)["Id"] == cid
    assert pyboxd.inspect(new)["Name"] == "/" + new
    assert pyboxd.docker("inspect", old).returncode == 1
    assert pyboxd.ok("ps", "--filter", f"id={cid}", "--format", "{{.Names}}") == new + "\n"
    proc = pyboxd.docker("rename", new, taken)
    assert proc.returncode == 1
    assert "is already in use" in proc.stderr
    # the old name is free again
    pyboxd.ok("create", "--name", old, "busybox", "true")


def test_port(pyboxd, names):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "-p", "127.0.0.1::80", "-p", "127.0.0.1::53/udp",
              "busybox", "sleep", "1000")
    lines = sorted(pyboxd.ok("port", name).splitlines())
    assert len(lines) == 2
    assert lines[0].startswith("53/udp -> 127.0.0.1:")
    assert lines[1].startswith("80/tcp -> 127.0.0.1:")
    host_port = lines[1].rsplit(":", 1)[1]
    assert pyboxd.ok("port", name, "80") == f"127.0.0.1:{host_port}\n"
    proc = pyboxd.docker("port", name, "81")
    assert proc.returncode == 1 and f"No public port '81' published for {name}" in proc.stderr


# -- events ---------------------------------------------------------------------------------
def test_events_filters_since_until(pyboxd, names):
    name, other = names(), names()
    since = time.time()
    pyboxd.ok("run", "--name", name, "--label", "suite=observe", "busybox", "true")
    pyboxd.ok("run", "--name", other, "busybox", "true")
    pyboxd.ok("rm", name)
    until = time.time() + 0.01
    # --until makes it return; --since replays
    out = pyboxd.ok("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                    "--filter", f"container={name}", "--format", "{{.Type}} {{.Action}}")
    actions = out.splitlines()
    assert [a for a in actions if a.startswith("container ")] == [
        "container create", "container attach", "container start", "container die",
        "container destroy"]
    assert actions == [a for a in actions if a.startswith("container ")], actions
    out = pyboxd.ok("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                    "--filter", "event=die", "--filter", "label=suite=observe",
                    "--format", "{{json .}}")
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["Action"], e["Actor"]["Attributes"]["name"],
             e["Actor"]["Attributes"]["exitCode"]) for e in events] == [("die", name, "0")]
    # two containers by name, one event type
    out = pyboxd.ok("events", "--since", f"{since:.3f}", "--until", f"{until:.3f}",
                    "--filter", f"container={name}", "--filter", f"container={other}",
                    "--filter", "event=start", "--format", "{{.Actor.Attributes.name}}")
    assert out.splitlines() == [name, other]
    # an until before the since: nothing
    out = pyboxd.ok("events", "--since", f"{until:.3f}", "--until", f"{until:.3f}",
                    "--filter", f"container={name}")
    assert out == ""


def test_events_live_stream(pyboxd, names):
    name = names()
    proc = subprocess.Popen(["/usr/local/bin/docker", "events", "--filter",
                             f"container={name}", "--format", "{{.Action}}"],
                            env=pyboxd.cli_env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # let the CLI subscribe (events before it are not replayed)
        pyboxd.ok("run", "--name", name, "busybox", "true")
        seen = []
        while "die" not in seen:
            seen.append(proc.stdout.readline().strip())
        assert seen[0] == "create" and "start" in seen
    finally:
        proc.kill()
        proc.wait()


# -- diff, export, commit -------------------------------------------------------------------
def test_diff_export_commit(pyboxd, names, images_made, tmp_path):
    name = names()
    pyboxd.ok("run", "--name", name, "-e", "FROM_RUN=1", "busybox", "sh", "-c",
              "mkdir /newdir && echo new > /newdir/f && rm /bin/vi && "
              "echo changed >> /etc/passwd")
    changes = set(pyboxd.ok("diff", name).splitlines())
    # docker's rules: the parent of an added or deleted entry is changed too
    assert {"A /newdir", "A /newdir/f", "C /bin", "D /bin/vi", "C /etc/passwd"} <= changes
    assert "C /newdir" not in changes
    assert not [c for c in changes if c.endswith(("/etc/hosts", "/etc/hostname",
                                                  "/etc/resolv.conf"))]
    # export: the container's whole filesystem, changes included
    out = tmp_path / "export.tar"
    pyboxd.ok("export", "-o", str(out), name)
    with tarfile.open(out) as tar:
        members = {m.name.lstrip("./").rstrip("/"): m for m in tar.getmembers()}
        assert tar.extractfile(members["newdir/f"]).read() == b"new\n"
        assert "bin/vi" not in members
        assert "bin/sh" in members
    # commit: the changes and the container's config, --change over it
    ref = f"pybox-commit-{uuid.uuid4().hex[:8]}:v1"
    image_id = pyboxd.ok("commit", "-m", "a message", "-a", "someone", "--change",
                         "LABEL made=commit", "--change", 'CMD ["cat", "/newdir/f"]', name,
                         ref).strip()
    images_made.append(ref)
    assert image_id.startswith("sha256:")
    img = pyboxd.inspect(ref)
    assert (img["Comment"], img["Author"]) == ("a message", "someone")
    assert "FROM_RUN=1" in img["Config"]["Env"]
    assert img["Config"]["Labels"] == {"made": "commit"}
    assert pyboxd.ok("run", "--rm", ref) == "new\n"
    proc = pyboxd.docker("run", "--rm", ref, "ls", "/bin/vi")
    assert proc.returncode == 1


def test_commit_of_a_running_container_pauses_it(pyboxd, names, images_made, dockerpy):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "echo data > /state; exec sleep 1000")
    assert wait_for(lambda: pyboxd.docker("exec", name, "test", "-e", "/state").returncode == 0)
    ref = f"pybox-commit-{uuid.uuid4().hex[:8]}:live"
    images_made.append(ref)
    img = dockerpy.containers.get(name).commit(repository=ref.split(":")[0], tag="live")
    assert ref in img.tags
    assert pyboxd.inspect(name)["State"]["Status"] == "running"  # unpaused after
    assert pyboxd.ok("run", "--rm", ref, "cat", "/state") == "data\n"


# -- cp ---------------------------------------------------------------------------------------
def make_tree(root):
    os.makedirs(root / "sub" / "deeper")
    (root / "top.txt").write_text("top\n")
    (root / "sub" / "secret").write_text("s3cret\n")
    (root / "sub" / "deeper" / "tool").write_text("#!/bin/sh\necho tool\n")
    (root / "big.bin").write_bytes(os.urandom(300_000))
    os.symlink("sub/secret", root / "link")
    os.chmod(root / "sub" / "secret", 0o600)
    os.chmod(root / "sub" / "deeper" / "tool", 0o755)
    os.chmod(root / "sub", 0o750)
    os.chmod(root / "sub" / "deeper", 0o711)


def tree_of(root):
    """{relative path: (kind, mode, content or link target)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            s = os.lstat(p)
            if stat.S_ISLNK(s.st_mode):
                out[rel] = ("link", None, os.readlink(p))
            elif stat.S_ISDIR(s.st_mode):
                out[rel] = ("dir", stat.S_IMODE(s.st_mode), None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(s.st_mode), f.read())
    return out


def test_cp_directory_tree_both_ways(pyboxd, names, tmp_path):
    src = tmp_path / "tree"
    make_tree(src)
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    # host -> container: into an existing directory, under the source's name
    pyboxd.ok("cp", str(src), f"{name}:/tmp")
    out = pyboxd.ok("exec", name, "sh", "-c",
                    "cd /tmp/tree && stat -c '%n %a' sub sub/secret sub/deeper sub/deeper/tool"
                    " && cat top.txt sub/secret && readlink link && sub/deeper/tool"
                    " && md5sum big.bin")
    lines = out.splitlines()
    assert lines[:4] == ["sub 750", "sub/secret 600", "sub/deeper 711", "sub/deeper/tool 755"]
    assert lines[4:8] == ["top", "s3cret", "sub/secret", "tool"]
    host_md5 = subprocess.run(["md5sum", str(src / "big.bin")], capture_output=True,
                              text=True).stdout.split()[0]
    assert lines[8].split()[0] == host_md5
    # container -> host, into a new name: the same tree comes back
    back = tmp_path / "back"
    pyboxd.ok("cp", f"{name}:/tmp/tree", str(back))
    assert tree_of(back) == tree_of(src)
    # to a path that does not exist: the tree takes that name
    pyboxd.ok("cp", str(src), f"{name}:/opt")
    assert pyboxd.ok("exec", name, "cat", "/opt/sub/secret") == "s3cret\n"
    # the content of a directory (SRC/.) into an existing one
    into = tmp_path / "into"
    into.mkdir()
    pyboxd.ok("cp", f"{name}:/tmp/tree/sub/.", str(into))
    assert sorted(os.listdir(into)) == ["deeper", "secret"]
    # a single file, and from stdin as a tar
    pyboxd.ok("cp", str(src / "top.txt"), f"{name}:/tmp/renamed.txt")
    assert pyboxd.ok("exec", name, "cat", "/tmp/renamed.txt") == "top\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("from-stdin")
        info.size, info.mode = 3, 0o640
        tar.addfile(info, io.BytesIO(b"hi\n"))
    proc = pyboxd.docker("cp", "-", f"{name}:/tmp", input=buf.getvalue(), raw=True)
    assert proc.returncode == 0, proc.stderr
    assert pyboxd.ok("exec", name, "stat", "-c", "%a", "/tmp/from-stdin") == "640\n"
    # to stdout as a tar
    proc = pyboxd.docker("cp", f"{name}:/tmp/renamed.txt", "-", raw=True)
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        assert tar.extractfile("renamed.txt").read() == b"top\n"


def test_cp_with_a_stopped_container_and_into_a_volume(pyboxd, names, tmp_path):
    name = names()
    host = tmp_path / "bound"
    host.mkdir()
    pyboxd.ok("create", "--name", name, "-v", f"{host}:/mnt", "busybox", "true")
    (tmp_path / "f").write_text("into the bind\n")
    pyboxd.ok("cp", str(tmp_path / "f"), f"{name}:/mnt/")
    pyboxd.ok("cp", str(tmp_path / "f"), f"{name}:/etc/copied")
    assert (host / "f").read_text() == "into the bind\n"  # under the mount: its source
    pyboxd.ok("cp", f"{name}:/etc/copied", str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "into the bind\n"
    # the container starts with what was copied into it while it was stopped
    pyboxd.ok("start", name)
    assert pyboxd.ok("wait", name) == "0\n"
    pyboxd.ok("cp", f"{name}:/mnt/f", str(tmp_path / "again"))
    assert (tmp_path / "again").read_text() == "into the bind\n"


def test_cp_of_a_missing_path(pyboxd, names, tmp_path):
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sleep", "1000")
    proc = pyboxd.docker("cp", f"{name}:/no/such/file", str(tmp_path / "x"))
    assert proc.returncode == 1
    assert f"Could not find the file /no/such/file in container {name}" in proc.stderr
    assert not (tmp_path / "x").exists()
    status, _ = pyboxd.api("HEAD", f"/containers/{name}/archive?path=/no/such/file")
    assert status == 404
    status, body = pyboxd.api("GET", f"/containers/{name}/archive?path=/no/such/file")
    assert status == 404 and "Could not find the file /no/such/file" in body["message"]
    # into a missing directory of the container
    (tmp_path / "f").write_text("x")
    proc = pyboxd.docker("cp", str(tmp_path / "f"), f"{name}:/no/such/dir/")
    assert proc.returncode == 1
    assert "no such" in proc.stderr.lower() or "could not find" in proc.stderr.lower()
    # of an unknown container
    proc = pyboxd.docker("cp", f"pybox-no-such-{uuid.uuid4().hex[:6]}:/etc", str(tmp_path))
    assert proc.returncode == 1 and "No such container" in proc.stderr


def test_cp_stat_header(pyboxd, names):
    """HEAD /containers/ID/archive: docker's X-Docker-Container-Path-Stat (base64
    JSON with a Go FileMode), which the CLI reads to decide how to copy."""
    import base64

    from .conftest import UnixHTTPConnection

    name = names()
    pyboxd.ok("run", "-d", "--name", name, "busybox", "sh", "-c",
              "mkdir -m 0710 /d && ln -s /d /l && exec sleep 1000")
    assert wait_for(lambda: pyboxd.docker("exec", name, "test", "-L", "/l").returncode == 0)

    def head(path):
        conn = UnixHTTPConnection(pyboxd.socket)
        try:
            conn.request("HEAD", f"/containers/{name}/archive?path={path}")
            resp = conn.getresponse()
            resp.read()
            header = resp.getheader("X-Docker-Container-Path-Stat")
            return resp.status, header and json.loads(base64.b64decode(header))
        finally:
            conn.close()

    status, doc = head("/d")
    assert status == 200
    assert (doc["name"], doc["mode"], doc["linkTarget"]) == ("d", (1 << 31) | 0o710, "")
    status, doc = head("/l")
    assert (doc["name"], doc["mode"] & (1 << 27), doc["linkTarget"]) == ("l", 1 << 27, "/d")
    assert head("/nope")[0] == 404


# -- prune and df -------------------------------------------------------------------------
def test_container_prune(pyboxd, names):
    label = f"prune={uuid.uuid4().hex[:8]}"
    done1, done2, running, other = names(), names(), names(), names()
    pyboxd.ok("run", "--name", done1, "--label", label, "busybox", "true")
    pyboxd.ok("create", "--name", done2, "--label", label, "busybox", "true")
    pyboxd.ok("run", "-d", "--name", running, "--label", label, "busybox", "sleep", "1000")
    pyboxd.ok("run", "--name", other, "busybox", "true")  # not ours: another label
    out = pyboxd.ok("container", "prune", "-f", "--filter", f"label={label}")
    lines = out.splitlines()
    assert lines[0] == "Deleted Containers:"
    ids = {pyboxd.inspect(n)["Id"] for n in (running, other)}
    assert len(lines) >= 3 and not ids & set(lines)
    assert out.rstrip().splitlines()[-1].startswith("Total reclaimed space:")
    for n in (done1, done2):
        assert pyboxd.docker("inspect", n).returncode == 1
    for n in (running, other):
        assert pyboxd.docker("inspect", n).returncode == 0


def test_system_df(pyboxd, names, tmp_path):
    vol = f"dfvol-{uuid.uuid4().hex[:8]}"
    name = names()
    try:
        pyboxd.ok("run", "--name", name, "-v", f"{vol}:/v", "busybox", "sh", "-c",
                  "dd if=/dev/zero of=/v/f bs=1k count=3000 2>/dev/null; echo x > /rw")
        rows = pyboxd.ok("system", "df").splitlines()
        assert rows[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        kinds = [r.split("  ")[0] for r in rows[1:]]
        assert kinds == ["Images", "Containers", "Local Volumes", "Build Cache"]
        out = pyboxd.ok("system", "df", "-v", "--format", "{{json .}}")
        doc = json.loads(out)
        volumes = {v["Name"]: v for v in doc["Volumes"]}
        assert volumes[vol]["Links"] == "1"
        assert to_bytes(volumes[vol]["Size"]) >= 3_000_000
        containers = {c["Names"]: c for c in doc["Containers"]}
        assert name in containers
        assert "busybox" in [i["Repository"] for i in doc["Images"]]
    finally:
        pyboxd.docker("rm", "-f", name)
        pyboxd.docker("volume", "rm", vol)


def test_system_prune(pyboxd, names):
    label = f"sysprune={uuid.uuid4().hex[:8]}"
    done, running = names(), names()
    pyboxd.ok("run", "--name", done, "--label", label, "busybox", "true")
    pyboxd.ok("run", "-d", "--name", running, "--label", label, "busybox", "sleep", "1000")
    out = pyboxd.ok("system", "prune", "-f", "--filter", f"label={label}")
    assert "Deleted Containers:" in out
    assert pyboxd.inspect(running)["State"]["Running"]
    assert pyboxd.docker("inspect", done).returncode == 1
    assert "Total reclaimed space:" in out


def put_archive(pyboxd, name, path, data):
    """PUT /containers/NAME/archive?path=PATH with a tar -> (status, body)."""
    from .conftest import UnixHTTPConnection

    conn = UnixHTTPConnection(pyboxd.socket)
    try:
        conn.request("PUT", f"/containers/{name}/archive?path={path}", body=data,
                     headers={"Content-Type": "application/x-tar"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_cp_into_and_out_of_a_tmpfs(pyboxd, names, tmp_path):
    """A tmpfs is only in the container's mount namespace: cp reaches it there
    (a copy used to land in the root filesystem hidden under it)."""
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "--tmpfs", "/scratch", "--mount",
              "type=tmpfs,destination=/t2", "busybox", "sh", "-c",
              "echo inside > /scratch/in; exec sleep 1000")
    assert wait_for(lambda: pyboxd.docker("exec", name, "test", "-e",
                                          "/scratch/in").returncode == 0)
    (tmp_path / "f").write_text("copied\n")
    pyboxd.ok("cp", str(tmp_path / "f"), f"{name}:/scratch/")
    pyboxd.ok("cp", str(tmp_path / "f"), f"{name}:/t2/")
    assert pyboxd.ok("exec", name, "cat", "/scratch/f", "/t2/f") == "copied\ncopied\n"
    pyboxd.ok("cp", f"{name}:/scratch/in", str(tmp_path / "out"))
    assert (tmp_path / "out").read_text() == "inside\n"
    # a tar whose members climb out, or go through a link out, is refused
    # and writes nothing outside
    for members in ((("../../escaped", b"x"),), (("link", "/etc"), ("link/escaped", b"x")),
                    (("up", "../../.."), ("up/escaped", b"x"))):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for member, content in members:
                info = tarfile.TarInfo(member)
                if isinstance(content, str):
                    info.type, info.linkname = tarfile.SYMTYPE, content
                    tar.addfile(info)
                else:
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        status, body = put_archive(pyboxd, name, "/t2", buf.getvalue())
        assert status == 400, (members, body)
        assert not os.path.exists("/etc/escaped") and not os.path.exists("/escaped")


def test_cp_into_read_only_places_is_refused(pyboxd, names, tmp_path):
    name = names()
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    pyboxd.ok("run", "-d", "--name", name, "--read-only", "-v", f"{ro}:/ro:ro", "-v",
              f"{rw}:/rw", "busybox", "sleep", "1000")
    (tmp_path / "f").write_text("x\n")
    proc = pyboxd.docker("cp", str(tmp_path / "f"), f"{name}:/ro/")
    assert proc.returncode == 1 and "mounted volume is marked read-only" in proc.stderr
    assert os.listdir(ro) == []  # the host directory mounted read-only is untouched
    proc = pyboxd.docker("cp", str(tmp_path / "f"), f"{name}:/etc/")
    assert proc.returncode == 1 and "container rootfs is marked read-only" in proc.stderr
    assert pyboxd.docker("exec", name, "test", "-e", "/etc/f").returncode == 1
    # a writable mount of a read-only container takes it
    pyboxd.ok("cp", str(tmp_path / "f"), f"{name}:/rw/")
    assert (rw / "f").read_text() == "x\n"


def test_prune_until_and_label_filters(pyboxd, names, images_made):
    label = f"until={uuid.uuid4().hex[:8]}"
    fresh, tagged = names(), names()
    pyboxd.ok("create", "--name", fresh, "--label", label, "busybox", "true")
    pyboxd.ok("create", "--name", tagged, "--label", label, "--label", "keep", "busybox", "true")
    # until: only what was created before it (24 hours ago: nothing of ours)
    pyboxd.ok("container", "prune", "-f", "--filter", "until=24h", "--filter",
              f"label={label}")
    assert pyboxd.docker("inspect", fresh).returncode == 0
    pyboxd.ok("system", "prune", "-f", "--filter", "until=24h", "--filter", f"label={label}")
    assert pyboxd.docker("inspect", fresh).returncode == 0
    # label!: spares the labelled one
    pyboxd.ok("container", "prune", "-f", "--filter", f"label={label}", "--filter",
              "label!=keep")
    assert pyboxd.docker("inspect", fresh).returncode == 1
    assert pyboxd.docker("inspect", tagged).returncode == 0
    # an unknown filter is an error, not ignored
    proc = pyboxd.docker("container", "prune", "-f", "--filter", "colour=red")
    assert proc.returncode == 1 and "invalid filter 'colour'" in proc.stderr
    assert pyboxd.docker("inspect", tagged).returncode == 0
    # images: an unused image made now survives prune -a until=24h
    ref = f"pybox-prune-{uuid.uuid4().hex[:8]}:1"
    pyboxd.ok("commit", tagged, ref)
    images_made.append(ref)
    pyboxd.ok("image", "prune", "-af", "--filter", "until=24h", "--filter", f"label={label}")
    assert pyboxd.docker("image", "inspect", ref).returncode == 0
    pyboxd.ok("image", "prune", "-af", "--filter", f"label={label}", "--filter", "label!=keep")
    assert pyboxd.docker("image", "inspect", ref).returncode == 0
    out = pyboxd.ok("image", "prune", "-af", "--filter", f"label={label}")
    assert pyboxd.docker("image", "inspect", ref).returncode == 1
    assert "untagged: " + ref in out


def test_memory_alone_records_twice_as_much_swap_as_docker(pyboxd, names):
    """`-m 64m` without --memory-swap: inspect shows MemorySwap 128m (dockerd
    records its implicit limit), and `update -m` past it is refused until the
    swap limit moves too."""
    needs_cgroup_v1()
    name = names()
    pyboxd.ok("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "1000")
    hc = pyboxd.inspect(name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"]) == (64 * MiB, 128 * MiB)
    proc = pyboxd.docker("update", "-m", "200m", name)
    assert proc.returncode == 1
    assert ("Memory limit should be smaller than already set memoryswap limit, update the "
            "memoryswap at the same time") in proc.stderr
    assert cgroup_v1_memory_inside(pyboxd, name) == 64 * MiB
    pyboxd.ok("update", "-m", "200m", "--memory-swap", "400m", name)
    assert cgroup_v1_memory_inside(pyboxd, name) == 200 * MiB


def test_network_prune_until_and_label_filters(pyboxd, names):
    """docker network prune honours until and label! (both were ignored: a
    network made a moment ago went with `--filter until=24h`)."""
    label = f"until={uuid.uuid4().hex[:8]}"
    fresh, tagged = names(), names()
    pyboxd.ok("network", "create", "--label", label, fresh)
    pyboxd.ok("network", "create", "--label", label, "--label", "keep", tagged)
    try:
        pyboxd.ok("network", "prune", "-f", "--filter", "until=24h", "--filter",
                  f"label={label}")
        assert pyboxd.docker("network", "inspect", fresh).returncode == 0
        out = pyboxd.ok("network", "prune", "-f", "--filter", f"label={label}", "--filter",
                        "label!=keep")
        assert fresh in out and tagged not in out
        assert pyboxd.docker("network", "inspect", fresh).returncode == 1
        assert pyboxd.docker("network", "inspect", tagged).returncode == 0
        proc = pyboxd.docker("network", "prune", "-f", "--filter", "colour=red")
        assert proc.returncode == 1 and "invalid filter 'colour'" in proc.stderr
        assert pyboxd.docker("network", "inspect", tagged).returncode == 0
    finally:
        for net in (fresh, tagged):
            pyboxd.docker("network", "rm", net)
