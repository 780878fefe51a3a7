"""sysinfo(2) for containers, answered like the /proc view.

busybox ``free`` and ``uptime`` and glibc's ``sysconf(_SC_PHYS_PAGES)`` (what
``os.sysconf('SC_PHYS_PAGES')``, JVMs and Go runtimes size themselves by) do
not read /proc/meminfo: they call sysinfo(2), which no file can change.  So
the container's seccomp profile sends sysinfo to a listener (SCMP_ACT_NOTIFY,
the runtime-spec's seccomp agent interface, as LXD's syscall interception
does), and the procview server answers: it writes a ``struct sysinfo`` with the
container's memory, swap, uptime, load and task count into the caller's buffer
and lets the call return 0.

Who holds the listener fd decides what survives a crash.  The runtime sends it
to ``listenerPath``, which the engine points at the container's monitor socket:
the monitor keeps it for the container's whole life (it outlives pyboxd and the
server) and forwards a copy to the server's ``seccomp.sock``.  A restarted
server takes copies back from the monitors (pidfd_getfd).  While no server
runs, a sysinfo call in the container waits (pyboxd restarts the server within
a second); it never fails.

Pure parts (the profile change, the struct) are unit-tested; ``Agent`` runs in
the server's trio loop.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct

TYPE_CHECKING = False  # (mypy reads this as true)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from pybox.linux.syscalls import Syscalls

NAME = "sysinfo"
# <linux/seccomp.h>: struct seccomp_notif is 80 bytes, seccomp_notif_resp 24
NOTIF_SIZE = 80
IOCTL_RECV = 0xC0502100  # SECCOMP_IOCTL_NOTIF_RECV, _IOWR('!', 0, struct seccomp_notif)
IOCTL_SEND = 0xC0182101  # SECCOMP_IOCTL_NOTIF_SEND, _IOWR('!', 1, struct seccomp_notif_resp)
IOCTL_ID_VALID = 0x40082102  # SECCOMP_IOCTL_NOTIF_ID_VALID, _IOW('!', 2, __u64)
FLAG_CONTINUE = 1  # SECCOMP_USER_NOTIF_FLAG_CONTINUE: run the real syscall
# the native architecture: (AUDIT_ARCH_*, sysinfo's number)
NATIVE = {"x86_64": (0xC000003E, 99), "aarch64": (0xC00000B7, 179)}
# struct sysinfo on 64-bit Linux: uptime, loads[3], totalram, freeram, sharedram,
# bufferram, totalswap, freeswap, procs (u16), pad, totalhigh, freehigh, mem_unit
STRUCT = struct.Struct("=q3Q6QHH4x2QI4x")
SI_LOAD_SHIFT = 16
SEND_NOTIFY_NAME = "anon_inode:seccomp notify"


def supported() -> bool:
    return os.uname().machine in NATIVE


def add_to_profile(seccomp: dict[str, Any] | None, listener_path: str,
                   metadata: str = "") -> dict[str, Any] | None:
    """``linux.seccomp`` with sysinfo sent to the listener at ``listener_path``
    (a copy; None stays None: an unconfined container is not intercepted)."""
    if seccomp is None or not supported():
        return seccomp
    if seccomp.get("listenerPath") and seccomp["listenerPath"] != listener_path:
        return seccomp  # someone else's agent: leave its profile alone
    out = dict(seccomp)
    rules = []
    for rule in seccomp.get("syscalls") or ():
        names = rule.get("names") or ()
        if NAME in names:
            if rule.get("args"):
                return seccomp  # a conditional sysinfo rule: the profile's own business
            if rule.get("action") != "SCMP_ACT_ALLOW":
                return seccomp  # sysinfo denied on purpose: keep it so
            rest = [n for n in names if n != NAME]
            if not rest:
                continue
            rule = dict(rule, names=rest)
        rules.append(rule)
    if out.get("defaultAction") not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG") and \
            not any(NAME in (r.get("names") or ()) for r in seccomp.get("syscalls") or ()):
        return seccomp  # sysinfo is not allowed at all here
    rules.append({"names": [NAME], "action": "SCMP_ACT_NOTIFY"})
    out["syscalls"] = rules
    out["listenerPath"] = listener_path
    if metadata:
        out["listenerMetadata"] = metadata
    return out


def pack(uptime: float, loads: Sequence[float], totalram: int, freeram: int, sharedram: int,
         bufferram: int, totalswap: int, freeswap: int, procs: int) -> bytes:
    """struct sysinfo with mem_unit 1 (sizes in bytes)."""
    scaled = [min(int(v * (1 << SI_LOAD_SHIFT)), (1 << 64) - 1) for v in loads]
    return STRUCT.pack(int(uptime), *scaled, totalram, freeram, sharedram, bufferram,
                       totalswap, freeswap, min(procs, 0xFFFF), 0, 0, 0, 1)


def unpack(data: bytes) -> dict[str, Any]:
    """-> dict (tests)."""
    f = STRUCT.unpack(data)
    return {"uptime": f[0], "loads": [x / (1 << SI_LOAD_SHIFT) for x in f[1:4]],
            "totalram": f[4], "freeram": f[5], "sharedram": f[6], "bufferram": f[7],
            "totalswap": f[8], "freeswap": f[9], "procs": f[10], "mem_unit": f[14]}


def parse_notif(buf: bytes | bytearray) -> tuple[int, int, int, int, tuple[int, ...]]:
    """struct seccomp_notif -> (id, pid, nr, arch, args)."""
    nid, pid, _flags, nr, arch, _ip = struct.unpack_from("=QIIiIQ", buf, 0)
    args = struct.unpack_from("=6Q", buf, 32)
    return nid, pid, nr, arch, args


def writable(pid: int, address: int, size: int, maps_text: str | None = None) -> bool:
    """Is [address, address+size) inside writable mappings of ``pid``?  The
    write goes through /proc/PID/mem, which may write read-only pages; the real
    syscall would fail with EFAULT there, so the kernel gets to answer."""
    if maps_text is None:
        try:
            with open(f"/proc/{pid}/maps") as f:
                maps_text = f.read()
        except OSError:
            return False
    end = address + size
    for line in maps_text.splitlines():
        span, _, rest = line.partition(" ")
        lo_text, _, hi_text = span.partition("-")
        try:
            lo, hi = int(lo_text, 16), int(hi_text, 16)
        except ValueError:
            continue
        if lo <= address < hi:
            if rest[1:2] != "w":
                return False
            if end <= hi:
                return True
            address = hi  # continues in the next mapping, which must be adjacent
    return False


class Agent:
    """Answers sysinfo notifications on every listener fd it is given.

    ``answer(pid)`` -> the struct's bytes for that caller, or None to let the
    kernel run the real sysinfo (a caller outside any container)."""

    def __init__(self, answer: Callable[[int], bytes | None], log: Callable[[str], object],
                 sc: Syscalls) -> None:
        self.answer = answer
        self.log = log
        self.sc = sc
        self.fds: list[int] = []
        arch = NATIVE.get(os.uname().machine)
        self.arch: int | None
        self.nr: int | None
        self.arch, self.nr = arch if arch else (None, None)
        self.answered = 0

    # -- fds -----------------------------------------------------------------------
    def adopt(self, fd: int) -> bool:
        """Take ``fd`` (ours to close); False if it duplicates one we serve."""
        for other in self.fds:
            try:
                if self.sc.same_file(fd, other):
                    os.close(fd)
                    return False
            except OSError:
                pass
        self.fds.append(fd)
        return True

    def drop(self, fd: int) -> None:
        if fd in self.fds:
            self.fds.remove(fd)
            os.close(fd)

    def collect(self, containers_dir: str) -> list[int]:
        """Copies of the listener fds the monitors under ``containers_dir`` hold
        (after a restart); -> the fds newly adopted."""
        out: list[int] = []
        try:
            names = os.listdir(containers_dir)
        except OSError:
            return out
        for name in names:
            try:
                with open(os.path.join(containers_dir, name, "monitor.pid")) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                continue
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                for entry in os.listdir(f"/proc/{pid}/fd"):
                    try:
                        if os.readlink(f"/proc/{pid}/fd/{entry}") != SEND_NOTIFY_NAME:
                            continue
                        fd = self.sc.pidfd_getfd(pidfd, int(entry))
                    except OSError:
                        continue
                    if self.adopt(fd):
                        out.append(fd)
            except OSError:
                pass
            finally:
                os.close(pidfd)
        return out

    # -- serving -------------------------------------------------------------------
    async def serve(self, fd: int) -> None:
        """Answer notifications on ``fd`` until its filter has no user left."""
        # trio is the server's (heavy) loop; pyboxd imports this module too
        import trio  # noqa: PLC0415

        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            while True:
                try:
                    await trio.lowlevel.wait_readable(fd)
                except (OSError, trio.ClosedResourceError):
                    return
                events = poller.poll(0)
                if not events:
                    continue
                ev = events[0][1]
                if ev & select.POLLIN:
                    self.handle(fd)
                elif ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    return
        finally:
            self.drop(fd)

    def handle(self, fd: int) -> None:
        buf = bytearray(NOTIF_SIZE)
        try:
            fcntl.ioctl(fd, IOCTL_RECV, buf)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EINTR):
                self.log(f"sysinfo: receive: {e}")
            return
        nid, pid, nr, arch, args = parse_notif(buf)
        data: bytes | None = None
        if nr == self.nr and arch == self.arch and args[0]:
            try:
                data = self.answer(pid)
            except Exception as e:  # noqa: BLE001 - the real syscall instead
                self.log(f"sysinfo for pid {pid}: {e.__class__.__name__}: {e}")
        written = False
        if data is not None and writable(pid, args[0], len(data)):
            written = self._write(fd, nid, pid, args[0], data)
        resp = struct.pack("=QqiI", nid, 0, 0, 0 if written else FLAG_CONTINUE)
        try:
            fcntl.ioctl(fd, IOCTL_SEND, resp)
            if written:
                self.answered += 1
        except OSError as e:
            if e.errno != errno.ENOENT:  # the caller is gone (killed meanwhile)
                self.log(f"sysinfo: answer: {e}")

    @staticmethod
    def _write(fd: int, nid: int, pid: int, address: int, data: bytes) -> bool:
        """Write ``data`` at ``address`` in the caller; only if it still waits in
        this very call (the id is checked after /proc/PID/mem is open, so a
        recycled pid is never written to)."""
        try:
            mem = os.open(f"/proc/{pid}/mem", os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.ioctl(fd, IOCTL_ID_VALID, struct.pack("=Q", nid))
            return os.pwrite(mem, data, address) == len(data)
        except OSError:
            return False
        finally:
            os.close(mem)
