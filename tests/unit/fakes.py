"""A fake syscall layer: records every call so the order and the flags of mounts
and namespace operations can be checked without root."""


from pybox.errors import SyscallError


class FakeSyscalls:
    def __init__(self, fail=None):
        self.calls = []
        # {(call, first-arg): errno} to make one call fail
        self.fail = dict(fail or {})

    def _record(self, name, *args):
        self.calls.append((name,) + args)
        key = (name, args[0] if args else None)
        if key in self.fail:
            raise SyscallError(self.fail[key], name, args)

    def mount(self, source, target, fstype, flags=0, data=None):
        self._record("mount", source, target, fstype, flags, data)

    def umount2(self, target, flags=0):
        self._record("umount2", target, flags)

    def pivot_root(self, new, old):
        self._record("pivot_root", new, old)

    def chroot(self, path):
        self._record("chroot", path)

    def mknod(self, path, mode, device):
        self._record("mknod", path, mode, device)
        with open(path, "w"):
            pass

    def chown(self, path, uid, gid):
        self._record("chown", path, uid, gid)

    def unshare(self, flags):
        self._record("unshare", flags)

    def setns(self, fd, nstype=0):
        self._record("setns", fd, nstype)

    def sethostname(self, name):
        self._record("sethostname", name)

    def setdomainname(self, name):
        self._record("setdomainname", name)

    def prctl(self, option, arg2=0, arg3=0, arg4=0, arg5=0):
        self._record("prctl", option, arg2)
        return 0

    def capset(self, eff, prm, inh):
        self._record("capset", eff, prm, inh)

    def keyctl(self, op, *args):
        self._record("keyctl", op, *args)
        return 1

    def setrlimit(self, resource, soft, hard):
        self._record("setrlimit", resource, soft, hard)

    def close_range(self, first, last, flags=0):
        self._record("close_range", first, last, flags)

    def mounts(self):
        return [c for c in self.calls if c[0] == "mount"]
