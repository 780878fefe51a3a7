"""Write-bps throttling slows a direct-I/O write to a loop device the test makes."""

import os
import shutil
import stat
import subprocess
import time

import pytest

from .conftest import has_cgroups, knob

pytestmark = [pytest.mark.root, has_cgroups]
MiB = 1 << 20


@pytest.fixture
def loop_device(tmp_path):
    losetup = shutil.which("losetup")
    if losetup is None:
        pytest.skip("no losetup")
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.truncate(32 * MiB)
    done = subprocess.run([losetup, "--find", "--show", str(backing)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot set up a loop device: {done.stderr.strip()}")
    device = done.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run([losetup, "-d", device], check=False)


WRITER = r"""
import mmap, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)          # page aligned, as O_DIRECT wants
buf.write(b"\x5a" * (1 << 20))
start = time.monotonic()
for i in range(6):
    os.pwrite(fd, buf, i << 20)
os.fsync(fd)
print(time.monotonic() - start)
"""


def test_write_bps_limit_slows_direct_io(make_manager, helper, loop_device):
    rdev = os.stat(loop_device).st_rdev
    assert stat.S_ISBLK(os.stat(loop_device).st_mode)
    major, minor = os.major(rdev), os.minor(rdev)
    rate = 2 * MiB
    mgr = make_manager({"blockIO": {"throttleWriteBpsDevice": [
        {"major": major, "minor": minor, "rate": rate}]}})
    if "blkio" in mgr.paths:
        assert knob(mgr, "blkio", "blkio.throttle.write_bps_device", "") == f"{major}:{minor} {rate}"
    else:
        assert f"{major}:{minor} rbps=max wbps={rate}" in knob(mgr, "blkio", "", "io.max")
    child = helper(WRITER.replace("sys.argv[1]", repr(loop_device)))
    mgr.add(child.pid)
    started = time.monotonic()
    child.go()
    code, out, err = child.finish(timeout=120)
    assert code == 0, err
    elapsed = float(out)
    # 6 MiB at 2 MiB/s is ~3 s; unthrottled it takes milliseconds.  Generous:
    # the throttle may let a first slice through at once.
    assert elapsed > 1.5, elapsed
    assert time.monotonic() - started < 100
    stats = mgr.stats()["blkio"]["ioServiceBytesRecursive"]
    written = [e["value"] for e in stats
               if (e["major"], e["minor"]) == (major, minor) and e["op"] == "Write"]
    assert written and written[0] >= 6 * MiB
