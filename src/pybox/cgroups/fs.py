"""File operations on cgroupfs, behind one small object so tests can fake the kernel.

Why an object and not plain ``os`` calls: cgroupfs is a filesystem whose files
appear by themselves when a directory is made (memory.max, cgroup.procs, ...) and
whose writes have side effects.  A unit test cannot get that from a tmp dir, so
the drivers do every mkdir/rmdir/read/write through a ``CgroupFs`` and tests pass
``pybox.cgroups.fakefs.FakeCgroupFs``, which populates new directories the way
the kernel would.  The real one is plain ``os`` and costs nothing to import.

Every failure becomes a :class:`pybox.errors.CgroupError` whose message names
the file, the value, the errno and, when the caller knows it, the
``linux.resources`` field the value came from, so the user can act on it.
"""

from __future__ import annotations

import os

from pybox.errors import CgroupError

# errno -> why the kernel typically says it on cgroupfs (appended to messages)
_HINTS = {
    1: "operation not permitted (not root, or the cgroup is not delegated to us)",
    2: "no such file: the controller is not enabled here, or the kernel lacks this knob",
    13: "permission denied (the cgroup is not delegated to this user)",
    16: "device or resource busy",
    19: "no such device",
    22: "invalid argument: the kernel rejected the value",
    28: "no space left: a cgroup limit (e.g. cgroup.max.descendants) or no cpus/mems set",
    30: "read-only file system (cgroupfs mounted read-only)",
    95: "not supported by this kernel",
}


def describe_errno(err: int | None) -> str:
    text = "unknown error" if err is None else _HINTS.get(err)
    if text is None and err is not None:
        try:
            text = os.strerror(err)
        except ValueError:
            text = "unknown error"
    return f"{text} (errno {err})"


def cgroup_error(operation: str, path: str, err: int | None, *, field: str | None = None,
                 value: str | None = None, hint: str | None = None) -> CgroupError:
    """Build the one-line CgroupError every driver raises.

    ``field`` is the runtime-spec JSON path (``linux.resources.memory.limit``) so
    the message starts the way ConfigError messages do; ``value`` is what we tried
    to write.
    """
    parts = []
    if field:
        parts.append(f"{field}: ")
    if value is not None:
        parts.append(f"cannot {operation} {value!r} to {path}")
    else:
        parts.append(f"cannot {operation} {path}")
    if err is not None:
        parts.append(f": {describe_errno(err)}")
    if hint:
        parts.append(f"; {hint}")
    return CgroupError("".join(parts), errno=err)


class CgroupFs:
    """The real kernel.  Stateless; one shared instance is enough (``REAL``)."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def subdirs(self, path: str) -> list[str]:
        """Names of the sub-directories (child cgroups): from the directory
        entries' types, without a stat per control file."""
        with os.scandir(path) as it:
            return [e.name for e in it if e.is_dir(follow_symlinks=False)]

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        os.mkdir(path, mode)

    def rmdir(self, path: str) -> None:
        os.rmdir(path)

    def read(self, path: str) -> str:
        with open(path, "rb") as f:
            return f.read().decode()

    def write(self, path: str, data: str | bytes) -> None:
        """One write(2) of the whole value, no O_CREAT: a missing file means a
        missing controller, never a file we should invent."""
        if isinstance(data, str):
            data = data.encode()
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


REAL = CgroupFs()


def join(directory: str, name: str) -> str:
    return directory + "/" + name if not directory.endswith("/") else directory + name


class Files:
    """Read and write the knobs of one set of cgroup directories with good errors.

    Mixed into the drivers; needs ``self.fs``.
    """

    fs: CgroupFs = REAL

    def _read(self, directory: str, name: str, *, field: str | None = None) -> str:
        path = join(directory, name)
        try:
            return self.fs.read(path)
        except OSError as e:
            raise cgroup_error("read", path, e.errno, field=field) from None

    def _read_or_none(self, directory: str, name: str) -> str | None:
        try:
            return self.fs.read(join(directory, name))
        except OSError:
            return None

    def _write(self, directory: str, name: str, value: object, *, field: str | None = None,
               hint: str | None = None) -> None:
        path = join(directory, name)
        text = value if isinstance(value, str) else str(value)
        try:
            self.fs.write(path, text)
        except OSError as e:
            raise cgroup_error("write", path, e.errno, field=field, value=text,
                               hint=hint) from None

    def has_file(self, directory: str, name: str) -> bool:
        return self.fs.exists(join(directory, name))


def parse_int(text: str) -> int:
    """cgroupfs integers; "max" (v2 and pids) becomes -1, like runtime-spec's
    "unlimited"."""
    text = text.strip()
    if text == "max":
        return -1
    return int(text)


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events) -> dict of ints."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if not key:
            continue
        value = value.strip()
        try:
            out[key] = int(value)
        except ValueError:
            if value == "max":
                out[key] = -1
    return out
