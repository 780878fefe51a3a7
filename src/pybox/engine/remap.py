"""``pyboxd --userns-remap``: every container in a user namespace of its own.

Docker's daemon option, with docker's rules (docs.docker.com "Isolate containers
with a user namespace"):

- ``default`` means the user and group ``dockremap``, created if missing, with a
  subordinate id range of 65536 allocated in /etc/subuid and /etc/subgid;
- ``USER``, ``USER:GROUP``, ``UID`` or ``UID:GID`` names an existing user (and
  group, which defaults to the user's name) whose /etc/subuid and /etc/subgid
  ranges become the containers' ids: container id 0 is the first id of the
  first range, the next ranges follow;
- ``--userns=host`` on a container opts it out, and ``--privileged`` needs that
  opt-out.

The difference from docker is where the files come from: docker keeps a second,
chowned copy of every image under /var/lib/docker/UID.GID; pybox shows the one
copy of the layers through idmapped mounts (pybox.linux.idmap), so enabling the
option costs no disk and no re-pull.
"""

import grp
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from pybox.errors import ConfigError
from pybox.images.snapshots import IdMap

DEFAULT_USER = "dockremap"
RANGE_SIZE = 65536
FIRST_SUBID = 100000
SUBUID, SUBGID = "/etc/subuid", "/etc/subgid"


@dataclass
class UsernsRemap:
    """The maps one daemon gives its remapped containers."""

    user: str
    group: str
    uid_mappings: list[list[int]]  # [[container, host, size], ...]
    gid_mappings: list[list[int]]

    @property
    def root(self) -> tuple[int, int]:
        """The host (uid, gid) of the containers' root."""
        return self.uid_mappings[0][1], self.gid_mappings[0][1]

    @property
    def idmap(self) -> IdMap:
        """A copy of the maps, as a rootfs records them."""
        return {"uid": [list(m) for m in self.uid_mappings],
                "gid": [list(m) for m in self.gid_mappings]}

    def describe(self) -> str:
        return f"{self.user}:{self.group}"


def parse_option(value: str | None, subuid: str = SUBUID, subgid: str = SUBGID) -> UsernsRemap | None:
    """The maps for a --userns-remap value (docker's syntax), creating the
    ``dockremap`` user and its ranges for ``default``."""
    value = (value or "").strip()
    if not value:
        return None
    if value == "default":
        _ensure_default_user(subuid, subgid)
        user, group = DEFAULT_USER, DEFAULT_USER
    else:
        user, _, group = value.partition(":")
        user = _user_name(user)
        group = _group_name(group or user)
    uids = _ranges(subuid, user)
    gids = _ranges(subgid, group)
    if not uids:
        raise ConfigError("--userns-remap", f"no subuid ranges found for user {user!r} in {subuid}")
    if not gids:
        raise ConfigError("--userns-remap",
                          f"no subgid ranges found for group {group!r} in {subgid}")
    return UsernsRemap(user, group, _to_mappings(uids), _to_mappings(gids))


def _user_name(text: str) -> str:
    try:
        return pwd.getpwuid(int(text)).pw_name if text.isdigit() else pwd.getpwnam(text).pw_name
    except KeyError:
        raise ConfigError("--userns-remap", f"user {text!r} does not exist") from None


def _group_name(text: str) -> str:
    try:
        return grp.getgrgid(int(text)).gr_name if text.isdigit() else grp.getgrnam(text).gr_name
    except KeyError:
        raise ConfigError("--userns-remap", f"group {text!r} does not exist") from None


def _ranges(path: str, name: str) -> list[tuple[int, int]]:
    """[(start, count)] of ``name`` in a subuid/subgid file, in file order; a
    line may name the user by id too (shadow-utils' rule)."""
    ids = {name}
    try:
        ids.add(str(pwd.getpwnam(name).pw_uid))
    except KeyError:
        pass
    try:
        ids.add(str(grp.getgrnam(name).gr_gid))
    except KeyError:
        pass
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in ids and parts[1].isdigit() \
                        and parts[2].isdigit() and int(parts[2]) > 0:
                    out.append((int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def _to_mappings(ranges: Iterable[tuple[int, int]]) -> list[list[int]]:
    mappings: list[list[int]] = []
    inside = 0
    for start, count in ranges:
        mappings.append([inside, start, count])
        inside += count
    return mappings


def _free_start(paths: Iterable[str]) -> int:
    """The first id >= 100000 at which RANGE_SIZE ids are unused in every file."""
    used: list[tuple[int, int]] = []
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        used.append((int(parts[1]), int(parts[1]) + int(parts[2])))
        except FileNotFoundError:
            pass
    start = FIRST_SUBID
    for lo, hi in sorted(used):
        if start + RANGE_SIZE <= lo:
            break
        start = max(start, hi)
    return start


def _ensure_default_user(subuid: str, subgid: str) -> None:
    """docker's ``dockremap``: a system user and group without a home, and one
    range of 65536 subordinate ids, as `useradd`/`usermod` record them."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        _run([useradd, "--system", "--user-group", "--no-create-home",
              "--shell", "/bin/false", DEFAULT_USER], "creating user dockremap")
    if _ranges(subuid, DEFAULT_USER) and _ranges(subgid, DEFAULT_USER):
        return
    start = _free_start([subuid, subgid])
    end = start + RANGE_SIZE - 1
    usermod = shutil.which("usermod")
    if subuid == SUBUID and subgid == SUBGID and usermod:
        _run([usermod, "--add-subuids", f"{start}-{end}",
              "--add-subgids", f"{start}-{end}", DEFAULT_USER],
             "allocating subordinate ids for dockremap")
        return
    for path in (subuid, subgid):  # tests point these elsewhere
        with open(path, "a") as f:
            f.write(f"{DEFAULT_USER}:{start}:{RANGE_SIZE}\n")


def _run(argv: list[str], what: str) -> None:
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise ConfigError("--userns-remap", f"{what}: {r.stdout.strip() or r.returncode}")


def check_reachable(remap: UsernsRemap | None, data_root: str) -> None:
    """Fail at daemon start, as dockerd does, when a directory above the data
    root keeps the remapped root out (no search permission for it): every
    container start would otherwise fail with a bare EACCES from a bind mount
    made inside the user namespace (its /etc/hosts and the like live under the
    data root)."""
    if remap is None:
        return
    uid, gid = remap.root
    path = os.path.abspath(data_root)
    while True:
        path = os.path.dirname(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            pass
        else:
            if st.st_uid == uid:
                bit = 0o100
            elif st.st_gid == gid:
                bit = 0o010
            else:
                bit = 0o001
            if not st.st_mode & bit:
                raise ConfigError(
                    "--userns-remap",
                    f"a subdirectory in your data root path ({data_root}) restricts access "
                    f"to the remapped root uid/gid ({path} has mode "
                    f"{st.st_mode & 0o7777:o}); please fix by allowing 'o+x' permissions on "
                    "existing directories")
        if path == "/":
            return


def chown_to_root(remap: UsernsRemap | None, path: str) -> None:
    """Give a file the remapped root's ownership (docker does so for the
    container's /etc/hosts, hostname, resolv.conf and its volumes)."""
    if remap is not None:
        uid, gid = remap.root
        os.chown(path, uid, gid)
