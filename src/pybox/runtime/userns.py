"""User namespace id maps, written from outside (the runtime's side), because a
process inside a new user namespace cannot map ids it does not own.

- As root: write /proc/PID/{uid,gid}_map directly; any number of ranges.
- Unprivileged, mapping only our own uid/gid (``spec --rootless``): also a direct
  write, after denying setgroups (the kernel's rule for unprivileged gid maps).
- Unprivileged with anything more: the setuid helpers newuidmap/newgidmap from
  Debian's uidmap package, which check the ranges against /etc/subuid and
  /etc/subgid.
"""

from __future__ import annotations

import os

from pybox.errors import ProcessSetupError

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

NEWUIDMAP = "newuidmap"
NEWGIDMAP = "newgidmap"


def _format(mappings: list[dict[str, Any]]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def _only_own(mappings: list[dict[str, Any]], own: int) -> bool:
    return len(mappings) == 1 and mappings[0]["hostID"] == own and mappings[0]["size"] == 1


def write_id_maps(pid: int, linux: dict[str, Any]) -> None:
    uid_maps = linux.get("uidMappings") or []
    gid_maps = linux.get("gidMappings") or []
    if os.geteuid() == 0:
        _write(pid, "uid_map", _format(uid_maps))
        _write(pid, "gid_map", _format(gid_maps))
        return
    if _only_own(uid_maps, os.geteuid()):
        _write(pid, "uid_map", _format(uid_maps))
    else:
        _helper(NEWUIDMAP, pid, uid_maps)
    if _only_own(gid_maps, os.getegid()):
        _write(pid, "setgroups", "deny")
        _write(pid, "gid_map", _format(gid_maps))
    else:
        _helper(NEWGIDMAP, pid, gid_maps)


def _write(pid: int, name: str, text: str) -> None:
    try:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)
    except OSError as e:
        raise ProcessSetupError(f"cannot write /proc/{pid}/{name} ({text.strip()!r}): "
                                f"{e.strerror}", errno=e.errno) from None


def _helper(tool: str, pid: int, mappings: list[dict[str, Any]]) -> None:
    # only for an unprivileged caller's wider maps: both cost start-up time
    import shutil  # noqa: PLC0415 -- rootless wider maps only
    import subprocess  # noqa: PLC0415 -- rootless wider maps only

    path = shutil.which(tool)
    if path is None:
        raise ProcessSetupError(f"{tool} is needed for these id mappings as an "
                                "unprivileged user (apt-get install uidmap)", errno=2)
    args = [path, str(pid)]
    for m in mappings:
        args += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ProcessSetupError(f"{tool} {' '.join(args[1:])} failed: "
                                f"{(proc.stderr or proc.stdout).strip()}", errno=1)
