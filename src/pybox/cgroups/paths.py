"""linux.cgroupsPath -> the cgroup path inside a hierarchy, as runc resolves it.

cgroupfs form (the default):
  absolute "/a/b"   relative to the root of each hierarchy: /sys/fs/cgroup/memory/a/b
  relative "a/b"    relative to the caller's own cgroup in that hierarchy (from
                    /proc/self/cgroup), so a runtime run from a delegated or nested
                    cgroup stays inside it
  empty ""          the container id, relative to the caller's cgroup
runc silently clamps ".." at the base; pybox refuses a path that would climb out of
it (above the hierarchy root for absolute paths, above the caller's cgroup for
relative ones) because such a path is almost always a mistake or an attack, and a
clear error is better than a container placed somewhere unexpected.

systemd form (only with ``systemd=True``): "slice:prefix:name", e.g.
"system.slice:docker:abc" -> /system.slice/docker-abc.scope, with dashes in the
slice expanded the way systemd nests slices ("a-b.slice" -> /a.slice/a-b.slice).
pybox has no D-Bus client: it creates the same cgroupfs directories systemd would
give the scope, so the container lands where tools expect it.  Always absolute.
"""

from __future__ import annotations

from pybox.errors import CgroupError


def _invalid(path: str, why: str) -> CgroupError:
    return CgroupError(f"linux.cgroupsPath: {path!r} is invalid: {why}", errno=22)


def clean_components(path: str, *, original: str | None = None) -> list[str]:
    """Components of ``path`` after resolving "." and "..".

    Raises if ".." would leave the base the path is relative to.
    """
    shown = path if original is None else original
    if "\0" in path:
        raise _invalid(shown, "contains a NUL byte")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                raise _invalid(shown, "'..' escapes the cgroup it is relative to")
            out.pop()
            continue
        out.append(part)
    return out


def expand_slice(slice_name: str, original: str) -> str:
    """systemd slice unit name -> its cgroup path ("a-b.slice" -> "/a.slice/a-b.slice")."""
    suffix = ".slice"
    if not slice_name.endswith(suffix) or len(slice_name) <= len(suffix) or "/" in slice_name:
        raise _invalid(original, f"{slice_name!r} is not a slice unit name")
    base = slice_name[:-len(suffix)]
    if base == "-":
        return "/"
    path = ""
    prefix = ""
    for component in base.split("-"):
        if component == "":
            raise _invalid(original, f"{slice_name!r} is not a valid slice name")
        path += "/" + prefix + component + suffix
        prefix += component + "-"
    return path


def systemd_path(cgroups_path: str, name: str, *, rootless: bool = False) -> str:
    """"slice:prefix:name" -> absolute cgroup path (runc's systemd naming)."""
    if cgroups_path:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise _invalid(cgroups_path, 'expected "slice:prefix:name" for the systemd driver')
        slice_name, prefix, unit = parts
    else:
        slice_name, prefix, unit = "", "runc", name
    if not slice_name:
        slice_name = "user.slice" if rootless else "system.slice"
    if not unit or "/" in unit or unit in (".", ".."):
        raise _invalid(cgroups_path, "the unit name is empty or contains '/'")
    parent = expand_slice(slice_name, cgroups_path)
    if unit.endswith(".slice"):
        leaf = expand_slice(unit, cgroups_path).rsplit("/", 1)[1]
    else:
        leaf = f"{prefix}-{unit}.scope" if prefix else f"{unit}.scope"
    return (parent.rstrip("/") + "/" + leaf)


def resolve(cgroups_path: str, name: str, own: str = "/", *, systemd: bool = False,
            rootless: bool = False) -> str:
    """The container's cgroup path inside one hierarchy (always starts with "/").

    ``own`` is the caller's cgroup in that hierarchy (Hierarchy.own).
    """
    if systemd:
        return systemd_path(cgroups_path, name, rootless=rootless)
    if not cgroups_path:
        if not name or "/" in name or name in (".", ".."):
            raise CgroupError(f"container id {name!r} cannot name a cgroup", errno=22)
        cgroups_path = name
    if cgroups_path.startswith("/"):
        components = clean_components(cgroups_path)
        if not components:
            raise _invalid(cgroups_path, "it names the root cgroup of the hierarchy")
        return "/" + "/".join(components)
    components = clean_components(cgroups_path)
    if not components:
        raise _invalid(cgroups_path, "it names the caller's own cgroup")
    base = clean_components(own or "/", original=own)
    return "/" + "/".join(base + components)
