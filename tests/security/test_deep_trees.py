"""Trees deeper than Python's recursion limit and PATH_MAX (issue 13: every
path from inside a container is hostile).  A container's `mkdir a; cd a`
loop builds a 2,500-deep tree in its rootfs and in its volumes; every API
call that walks such a tree -- diff, export, commit (and running what it
committed, and a new volume filled from it), ps -s, system df, cp out, rm -v,
volume rm -- answers as for
any other tree: no 500, no RecursionError or traceback in pyboxd's log,
nothing left behind."""

import io
import json
import os
import subprocess
import tarfile
import uuid

import pytest

from support.paths import IMAGE

pytestmark = [pytest.mark.root, pytest.mark.engine]

DEPTH = 2500
DEEP = "/".join(["a"] * DEPTH)  # 4,999 bytes: past PATH_MAX (4,096)


def build(top):
    """sh that builds TOP/a/a/.../a (DEPTH levels) with a file 'end' there (cd -P:
    busybox's logical cd stops short of PATH_MAX, silently)."""
    return (f"mkdir -p {top} && cd {top} && i=0; while [ $i -lt {DEPTH} ]; do "
            "mkdir a; cd -P a || exit 3; i=$((i+1)); done; echo bottom > end")


def descend(top):
    """sh that cds down the tree and prints the bottom file."""
    return (f"cd {top} && i=0; while [ $i -lt {DEPTH} ]; do cd -P a || exit 3; "
            "i=$((i+1)); done; cat end")


def read_bottom(top):
    """TOP/a/a/.../a/end (DEPTH levels), read from the host one directory fd at
    a time (the path is longer than PATH_MAX)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            child = os.open("a", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
        end = os.open("end", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        try:
            return os.read(end, 100).decode().strip()
        finally:
            os.close(end)
    finally:
        os.close(fd)


def tar_names(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tar:
        return [m.name for m in tar]


def test_deep_trees(pyboxd, names, images_made):
    with open(pyboxd.log_path, "rb") as f:
        offset = f.seek(0, os.SEEK_END)
    ctr, vol = names("deep"), f"deepvol-{uuid.uuid4().hex[:10]}"
    filled = f"{vol}-filled"
    image = f"deep-{uuid.uuid4().hex[:10]}:c"
    images_made.append(image)
    script = (f"{build('/deep')} && {build('/vol')} && {build('/anon')} && "
              "touch /ready && exec sleep 1000")
    try:
        cid = pyboxd.ok("run", "-d", "--name", ctr, "-v", f"{vol}:/vol", "-v", "/anon",
                        IMAGE, "sh", "-c", script).strip()
        for _ in range(600):
            if pyboxd.docker("exec", ctr, "test", "-e", "/ready").returncode == 0:
                break
            if pyboxd.inspect(ctr)["State"]["Status"] != "running":
                pytest.fail(f"the trees were not built: {pyboxd.docker('logs', ctr)}")
        else:
            pytest.fail("the container never finished its trees")
        anon = [m["Name"] for m in pyboxd.inspect(ctr)["Mounts"] if m["Destination"] == "/anon"]

        diff = pyboxd.ok("diff", ctr).splitlines()
        assert "A /deep" in diff and f"A /deep/{DEEP}/end" in diff, (len(diff), diff[-3:])

        export = pyboxd.docker("export", ctr, raw=True)
        assert export.returncode == 0, export.stderr
        names_ = tar_names(export.stdout)
        assert f"deep/{DEEP}/end" in names_

        cp = pyboxd.docker("cp", f"{ctr}:/deep", "-", raw=True)
        assert cp.returncode == 0, cp.stderr
        assert f"deep/{DEEP}/end" in tar_names(cp.stdout)
        cp = pyboxd.docker("cp", f"{ctr}:/vol", "-", raw=True)
        assert cp.returncode == 0, cp.stderr
        assert f"vol/{DEEP}/end" in tar_names(cp.stdout)

        ps = pyboxd.ok("ps", "-s", "--filter", f"name={ctr}", "--format", "{{.Size}}")
        assert ps.strip() and not ps.startswith("0B")
        df = pyboxd.ok("system", "df", "-v")
        assert vol in df

        pyboxd.ok("commit", ctr, image)
        out = pyboxd.ok("run", "--rm", image, "sh", "-c", descend("/deep"))
        assert out.strip() == "bottom"
        # a new volume on the image's deep tree: filled with a copy of it
        pyboxd.ok("run", "--rm", "-v", f"{filled}:/deep", image, "true")
        mountpoint = json.loads(pyboxd.ok("volume", "inspect", filled))[0]["Mountpoint"]
        assert read_bottom(mountpoint) == "bottom"
        pyboxd.ok("volume", "rm", filled)

        pyboxd.ok("rm", "-f", "-v", ctr)
        assert anon and anon[0] not in pyboxd.ok("volume", "ls", "-q").split()
        pyboxd.ok("volume", "rm", vol)
        pyboxd.ok("rmi", image)
    finally:
        pyboxd.docker("rm", "-f", "-v", ctr)
        pyboxd.docker("volume", "rm", "-f", vol, filled)
    volumes = os.path.join(pyboxd.data_root, "volumes")
    left = [n for n in os.listdir(volumes) if n.startswith(vol) or (anon and n.startswith(anon[0]))]
    assert left == []
    snaps = subprocess.run(["find", pyboxd.data_root, "-maxdepth", "4", "-name", cid + "*"],
                           capture_output=True, text=True).stdout.split()
    assert snaps == []
    with open(pyboxd.log_path, "rb") as f:
        f.seek(offset)
        log = f.read().decode(errors="replace")
    assert "Traceback" not in log and "RecursionError" not in log
