"""The one place where pybox calls the kernel through ctypes.

Python 3.11's ``os`` has no unshare, setns, mount, pivot_root, capset or prctl, so
these go through libc (or syscall(2) where glibc has no wrapper).  Each method is
one system call, does no policy, and raises :class:`pybox.errors.SyscallError`
(an OSError) carrying the errno and the arguments.

Everything that touches namespaces or mounts receives a ``Syscalls``-like object
instead of calling this module directly, so unit tests can pass a fake that records
the calls (see tests/unit/fakes.py) and run without root.  ctypes is imported
lazily, on first use: commands such as ``state`` or ``kill`` never pay for it.

``Syscalls`` is also the interface: code that takes an ``sc`` parameter is typed
with it, and the tests' fake implements the subset of its methods a test drives.
"""

from __future__ import annotations

import os

from pybox.errors import SyscallError
from pybox.linux import constants as C

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    import ctypes
    from _ctypes import _CArgObject, _CData
    from typing import ClassVar

    PathArg = str | bytes  # a path as os functions take it (bytes: not decoded)
    CArg = _CData | _CArgObject | bytes | None  # what a raw syscall argument may be

# syscall numbers for calls glibc 2.36 does not wrap (or wraps too recently)
_SYSCALL_NUMBERS = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "keyctl": 250,
               "close_range": 436, "seccomp": 317, "bpf": 321, "mount_setattr": 442,
               "open_tree": 428, "move_mount": 429, "pidfd_getfd": 438, "kcmp": 312,
               "openat2": 437},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "keyctl": 219,
                "close_range": 436, "seccomp": 277, "bpf": 280, "mount_setattr": 442,
                "open_tree": 428, "move_mount": 429, "pidfd_getfd": 438, "kcmp": 272,
                "openat2": 437},
}


class Syscalls:
    """Real system calls.  Instantiate once per process (cheap after the first)."""

    _shared_libc: ClassVar[ctypes.CDLL | None] = None

    def __init__(self) -> None:
        global ctypes
        if Syscalls._shared_libc is None:
            import ctypes  # noqa: PLC0415 -- only calls that reach the kernel pay for ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            Syscalls._shared_libc = libc
        self._libc: ctypes.CDLL = Syscalls._shared_libc
        self._nr = _SYSCALL_NUMBERS.get(os.uname().machine, {})

    # -- helpers ---------------------------------------------------------
    def _check(self, ret: int, call: str, args: tuple[object, ...],
               context: str | None = None) -> int:
        if ret < 0:
            raise SyscallError(ctypes.get_errno(), call, args, context)
        return ret

    def _syscall(self, name: str, *args: CArg) -> int:
        try:
            nr = self._nr[name]
        except KeyError:
            raise SyscallError(38, name, args,
                               f"unsupported architecture {os.uname().machine}") from None
        ret: int = self._libc.syscall(nr, *args)
        return ret

    @staticmethod
    def _b(s: PathArg | None) -> bytes | None:
        if s is None:
            return None
        return s if isinstance(s, bytes) else os.fsencode(s)

    # -- namespaces --------------------------------------------------------
    def unshare(self, flags: int) -> None:
        self._check(self._libc.unshare(flags), "unshare", (hex(flags),))

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._check(self._libc.setns(fd, nstype), "setns", (fd, hex(nstype)))

    # -- mounts ------------------------------------------------------------
    def mount(self, source: PathArg | None, target: PathArg, fstype: str | None,
              flags: int = 0, data: str | None = None) -> None:
        ret = self._libc.mount(
            self._b(source), self._b(target), self._b(fstype), ctypes.c_ulong(flags),
            self._b(data)
        )
        self._check(ret, "mount", (source, target, fstype, hex(flags), data))

    def umount2(self, target: PathArg, flags: int = 0) -> None:
        self._check(self._libc.umount2(self._b(target), flags), "umount2", (target, flags))

    def pidfd_getfd(self, pidfd: int, targetfd: int) -> int:
        """pidfd_getfd(2): a copy (close-on-exec) of fd ``targetfd`` of the process
        ``pidfd`` refers to."""
        c = ctypes
        ret = self._syscall("pidfd_getfd", c.c_int(pidfd), c.c_int(targetfd), c.c_uint(0))
        return self._check(ret, "pidfd_getfd", (pidfd, targetfd))

    def same_file(self, fd1: int, fd2: int) -> bool:
        """kcmp(2) KCMP_FILE on two fds of this process: do they refer to one open
        file (a dup, or the same file received twice)?"""
        c = ctypes
        pid = os.getpid()
        ret = self._syscall("kcmp", c.c_int(pid), c.c_int(pid), c.c_int(0), c.c_ulong(fd1),
                            c.c_ulong(fd2))
        return self._check(ret, "kcmp", (fd1, fd2)) == 0

    def pivot_root(self, new_root: PathArg, put_old: PathArg) -> None:
        ret = self._syscall("pivot_root", self._b(new_root), self._b(put_old))
        self._check(ret, "pivot_root", (new_root, put_old))

    def chroot(self, path: PathArg) -> None:
        try:
            os.chroot(path)
        except OSError as e:
            raise SyscallError(e.errno or 0, "chroot", (path,)) from None

    def mknod(self, path: PathArg, mode: int, device: int) -> None:
        try:
            os.mknod(path, mode, device)
        except OSError as e:
            raise SyscallError(e.errno or 0, "mknod", (path, oct(mode), device)) from None

    def chown(self, path: PathArg, uid: int, gid: int) -> None:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except OSError as e:
            raise SyscallError(e.errno or 0, "chown", (path, uid, gid)) from None

    # -- identity ----------------------------------------------------------
    def sethostname(self, name: PathArg) -> None:
        b = os.fsencode(name)
        self._check(self._libc.sethostname(b, len(b)), "sethostname", (name,))

    def setdomainname(self, name: PathArg) -> None:
        b = os.fsencode(name)
        self._check(self._libc.setdomainname(b, len(b)), "setdomainname", (name,))

    # -- process attributes -------------------------------------------------
    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
              arg5: int = 0) -> int:
        c = ctypes
        ret = self._libc.prctl(c.c_int(option), c.c_ulong(arg2), c.c_ulong(arg3),
                               c.c_ulong(arg4), c.c_ulong(arg5))
        return self._check(ret, "prctl", (option, arg2, arg3))

    def capget(self, pid: int = 0) -> tuple[int, int, int]:
        """Return (effective, permitted, inheritable) as 64-bit masks."""
        c = ctypes
        header = (c.c_uint32 * 2)(C.LINUX_CAPABILITY_VERSION_3, pid)
        data = (c.c_uint32 * 6)()
        self._check(self._syscall("capget", header, data), "capget", (pid,))
        eff = data[0] | (data[3] << 32)
        prm = data[1] | (data[4] << 32)
        inh = data[2] | (data[5] << 32)
        return eff, prm, inh

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        c = ctypes
        header = (c.c_uint32 * 2)(C.LINUX_CAPABILITY_VERSION_3, 0)
        m = 0xFFFFFFFF
        data = (c.c_uint32 * 6)(effective & m, permitted & m, inheritable & m,
                                effective >> 32, permitted >> 32, inheritable >> 32)
        ret = self._syscall("capset", header, data)
        self._check(ret, "capset", (hex(effective), hex(permitted), hex(inheritable)))

    def keyctl(self, op: int, arg2: int | bytes | None = 0, arg3: int | bytes | None = 0,
               arg4: int | bytes | None = 0, arg5: int | bytes | None = 0) -> int:
        c = ctypes
        args: list[CArg] = [a if isinstance(a, (bytes, type(None))) else c.c_ulong(a)
                            for a in (arg2, arg3, arg4, arg5)]
        return self._check(self._syscall("keyctl", c.c_int(op), *args), "keyctl", (op, arg2))

    def close_range(self, first: int, last: int, flags: int = 0) -> None:
        c = ctypes
        ret = self._syscall("close_range", c.c_uint(first), c.c_uint(last), c.c_uint(flags))
        self._check(ret, "close_range", (first, last, flags))

    def bpf(self, cmd: int, attr: ctypes.Array[ctypes.c_ubyte], size: int) -> int:
        """bpf(2).  ``attr`` is a writable ctypes buffer holding a union bpf_attr
        of ``size`` bytes (the kernel writes results back into it, e.g. for
        BPF_PROG_QUERY); returns the result (a new fd for BPF_PROG_LOAD)."""
        c = ctypes
        ret = self._syscall("bpf", c.c_int(cmd), c.byref(attr), c.c_uint(size))
        return self._check(ret, "bpf", (cmd,))

    def setrlimit(self, resource: int, soft: int, hard: int) -> None:
        """prlimit(2) on ourselves; soft/hard as unsigned 64-bit (2^64-1 is
        RLIM_INFINITY).  Saves importing the resource module on the init path."""
        c = ctypes
        limits = (c.c_uint64 * 2)(soft, hard)
        self._check(self._libc.prlimit(0, resource, limits, None), "prlimit",
                    (resource, soft, hard))

    # -- the new mount API (Linux 5.2+, mount_setattr 5.12+) ----------------
    def open_tree(self, path: PathArg, flags: int, dirfd: int = -100) -> int:
        """open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at
        ``path`` that can be changed (mount_setattr) and attached elsewhere,
        even in another mount namespace (move_mount).  Returns the fd."""
        c = ctypes
        ret = self._syscall("open_tree", c.c_int(dirfd), self._b(path), c.c_uint(flags))
        return self._check(ret, "open_tree", (path, hex(flags)))

    def move_mount(self, from_fd: int, from_path: PathArg, to_fd: int, to_path: PathArg,
                   flags: int) -> None:
        c = ctypes
        ret = self._syscall("move_mount", c.c_int(from_fd), self._b(from_path),
                            c.c_int(to_fd), self._b(to_path), c.c_uint(flags))
        self._check(ret, "move_mount", (from_fd, from_path, to_path, hex(flags)))

    def mount_setattr(self, fd: int, path: PathArg, flags: int, attr_set: int,
                      attr_clr: int = 0, propagation: int = 0, userns_fd: int = 0) -> None:
        """mount_setattr(2) with a struct mount_attr; MOUNT_ATTR_IDMAP takes
        ``userns_fd``, a user namespace whose maps become the mount's idmap."""
        c = ctypes
        attr = (c.c_uint64 * 4)(attr_set, attr_clr, propagation, userns_fd)
        ret = self._syscall("mount_setattr", c.c_int(fd), self._b(path), c.c_uint(flags),
                            c.byref(attr), c.c_size_t(32))
        self._check(ret, "mount_setattr", (fd, path, hex(attr_set)))

    # -- files -----------------------------------------------------------------
    def openat2(self, dirfd: int, path: PathArg, flags: int, mode: int = 0,
                resolve: int = 0) -> int:
        """openat2(2) (Linux 5.6+): open ``path`` relative to ``dirfd`` with a
        struct open_how whose ``resolve`` flags (RESOLVE_IN_ROOT, RESOLVE_BENEATH,
        RESOLVE_NO_MAGICLINKS, ...) make the kernel confine the walk.  Returns
        the new fd.  EAGAIN (a rename or mount raced a confined walk) is the
        caller's to retry."""
        c = ctypes
        how = (c.c_uint64 * 3)(flags, mode, resolve)
        ret = self._syscall("openat2", c.c_int(dirfd), self._b(path), how, c.c_size_t(24))
        return self._check(ret, "openat2", (dirfd, path, hex(flags), hex(resolve)))

    def fstatfs_type(self, fd: int) -> int:
        """fstatfs(2)'s f_type (the filesystem's magic number) of an open fd,
        O_PATH ones included."""
        c = ctypes
        buf = (c.c_long * 16)()  # struct statfs: f_type first, 120 bytes
        self._check(self._libc.fstatfs(c.c_int(fd), buf), "fstatfs", (fd,))
        return buf[0] & 0xFFFFFFFF

    def raw_syscall(self, name: str, *args: CArg) -> int:
        """For the few callers (seccomp, bpf) that build their own ctypes arguments."""
        return self._check(self._syscall(name, *args), name, ())


_real: Syscalls | None = None


def real() -> Syscalls:
    """The process-wide real Syscalls (created on first use)."""
    global _real
    if _real is None:
        _real = Syscalls()
    return _real
