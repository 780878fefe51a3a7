"""User namespace id maps, written from outside (the runtime's side), because a
process inside a new user namespace cannot map ids it does not own."""

import os

from pybox.errors import ProcessSetupError


def _format(mappings):
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def write_id_maps(pid, linux):
    """Write /proc/PID/{uid,gid}_map from linux.uidMappings/gidMappings.  As root
    this is a direct write; an unprivileged caller may only map its own ids (and
    must deny setgroups first); anything else needs newuidmap/newgidmap."""
    uid_maps = linux.get("uidMappings") or []
    gid_maps = linux.get("gidMappings") or []
    if os.geteuid() != 0:
        _write(pid, "setgroups", "deny")
    _write(pid, "uid_map", _format(uid_maps))
    _write(pid, "gid_map", _format(gid_maps))


def _write(pid, name, text):
    try:
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(text)
    except OSError as e:
        raise ProcessSetupError(f"cannot write /proc/{pid}/{name} ({text.strip()!r}): "
                                f"{e.strerror}", errno=e.errno) from None
