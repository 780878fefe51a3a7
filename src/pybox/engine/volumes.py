"""Volumes (docker's local driver) and a container's mounts.

DATA_ROOT/volumes/NAME/_data holds a volume's files; NAME/volume.json its
metadata (labels, driver options, whether the image's content was copied in).
A volume is "in use" while a container record mounts it; removal refuses that
(docker's 409).  Anonymous volumes (a VOLUME of the image, ``-v /path``) get a
random 64-hex name and go with their container on ``rm -v`` and ``--rm``.

Mount sources, as docker parses them at create time:
  HostConfig.Binds   "SRC:DST[:OPTS]"  SRC absolute -> a bind (created when
                     missing, as -v does), else a named volume (created on use)
  HostConfig.Mounts  {Type: bind|volume|tmpfs, Source, Target, ReadOnly, ...}
                     (a missing bind source is an error, as --mount says)
  Config.Volumes     {"/path": {}} -> an anonymous volume, unless mounted above
"""

import builtins
import errno
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable
from typing import Any, Protocol

from pybox.crashpoints import crashpoint
from pybox.errors import BadRequest, Conflict, NotFound
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.linux import fstree, syscalls
from pybox.oci.state import write_atomic
from pybox.runtime.rootfs import secure_join

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")

# a container reference -> its Mounts (for --volumes-from)
MountsOf = Callable[[str], list[dict[str, Any]]]


class Creator(Protocol):
    """What parsing needs of the store: making (or finding) a volume."""

    def create(self, name: str | None = None, **kw: Any) -> dict[str, Any]: ...


class VolumeCreator(Creator, Protocol):
    """The store as a create uses it (the engine's VolumeStore, or recovery's
    RecordingVolumes in front of it)."""

    def exists(self, name: str) -> bool: ...

    def remove(self, name: str, force: bool = False) -> None: ...


def _valid_name(name: str) -> str:
    ok = name and (name[0].isalnum()) and all(ch.isalnum() or ch in "_.-" for ch in name)
    if not ok or len(name) < 2:
        raise BadRequest(f'create {name}: "{name}" includes invalid characters for a local '
                         'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                         "intended to pass a host directory, use absolute path")
    return name


class VolumeStore:
    def __init__(self, data_root: str, mounts_in_use: Callable[[], dict[str, list[str]]]) -> None:
        """``mounts_in_use()`` -> {volume name: [container ids]} (from the engine's
        container records, the single truth about use)."""
        self.root = os.path.join(data_root, "volumes")
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.lock = threading.RLock()
        self.mounts_in_use = mounts_in_use
        self.root_owner: tuple[int, int] | None = None  # (uid, gid) under --userns-remap

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _meta_path(self, name: str) -> str:
        return os.path.join(self._dir(name), "volume.json")

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return fastjson.load_file(self._meta_path(name))
        except (OSError, ValueError):
            return None

    def exists(self, name: str) -> bool:
        return os.path.isfile(self._meta_path(name))

    def get(self, name: str) -> dict[str, Any]:
        meta = self._read(name)
        if meta is None:
            raise NotFound(f"get {name}: no such volume")
        return self._document(meta)

    def _document(self, meta: dict[str, Any]) -> dict[str, Any]:
        name = meta["Name"]
        return {"CreatedAt": meta["CreatedAt"], "Driver": "local",
                "Labels": meta.get("Labels") or {}, "Mountpoint": self.mountpoint(name),
                "Name": name, "Options": meta.get("Options") or {}, "Scope": "local"}

    def mountpoint(self, name: str) -> str:
        return os.path.join(self._dir(name), "_data")

    def create(self, name: str | None = None, *, labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, anonymous: bool = False) -> dict[str, Any]:
        """Idempotent for an existing name (docker's behaviour)."""
        if name:
            _valid_name(name)
        else:
            name, anonymous = secrets.token_hex(32), True
        with self.lock:
            meta = self._read(name)
            if meta is not None:
                return self._document(meta)
            options = dict(options or {})
            if options and options.get("type") not in (None, "", "tmpfs", "none") and \
                    not options.get("device"):
                raise BadRequest("invalid option: device is required for a typed local volume")
            tmp = self._dir(name) + ".creating"
            fstree.remove_tree(tmp, ignore_errors=True)
            os.makedirs(os.path.join(tmp, "_data"), mode=0o755)
            if self.root_owner is not None:  # --userns-remap: the remapped root's
                os.chown(os.path.join(tmp, "_data"), *self.root_owner)
            labels = dict(labels or {})
            if anonymous:
                labels.setdefault("com.docker.volume.anonymous", "")
            meta = {"Name": name, "CreatedAt": rfc3339_nano_fixed(), "Labels": labels,
                    "Options": options, "Anonymous": anonymous, "Populated": False}
            write_atomic(os.path.join(tmp, "volume.json"), fastjson.dumps(meta), durable=True)
            crashpoint("volumes.create.written")
            os.rename(tmp, self._dir(name))
            return self._document(meta)

    def list(self, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        in_use = self.mounts_in_use()
        out = []
        for name in sorted(os.listdir(self.root)):
            meta = self._read(name)
            if meta is None:
                continue
            doc = self._document(meta)
            if "dangling" in filters:
                dangling = name not in in_use
                if any((v.lower() in ("true", "1")) != dangling for v in filters["dangling"]):
                    continue
            if "name" in filters and not any(v in name for v in filters["name"]):
                continue
            if "label" in filters:
                labels = doc["Labels"]
                if not all(lbl.partition("=")[0] in labels and (
                        not lbl.partition("=")[2] or labels[lbl.partition("=")[0]] ==
                        lbl.partition("=")[2]) for lbl in filters["label"]):
                    continue
            if "driver" in filters and "local" not in filters["driver"]:
                continue
            out.append(doc)
        return out

    def remove(self, name: str, force: bool = False) -> None:
        with self.lock:
            if not self.exists(name):
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.mounts_in_use().get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._unmount(name)
            gone = self._dir(name) + ".removing"
            os.rename(self._dir(name), gone)
            crashpoint("volumes.remove.renamed")
            fstree.remove_tree(gone, ignore_errors=True)  # any depth (a container's)

    def prune(self, filters: dict[str, builtins.list[str]] | None = None,
              all_: bool = False) -> tuple[builtins.list[str], int]:
        in_use = self.mounts_in_use()
        deleted, reclaimed = [], 0
        for doc in self.list(filters):
            name = doc["Name"]
            meta = self._read(name) or {}
            if name in in_use or (not all_ and not meta.get("Anonymous")):
                continue
            reclaimed += _du(self.mountpoint(name))
            try:
                self.remove(name)
                deleted.append(name)
            except (Conflict, NotFound):
                pass
        return deleted, reclaimed

    # -- use by containers -------------------------------------------------------
    def prepare(self, name: str) -> str:
        """Make the volume's directory ready for a container (mount a typed local
        volume such as tmpfs the first time); returns the host path."""
        meta = self._read(name)
        if meta is None:
            raise NotFound(f"get {name}: no such volume")
        path = self.mountpoint(name)
        opts = meta.get("Options") or {}
        if opts.get("type") and not os.path.ismount(path):
            syscalls.real().mount(opts.get("device") or opts["type"], path, opts["type"], 0,
                                  opts.get("o") or None)
        return path

    def _unmount(self, name: str) -> None:
        path = self.mountpoint(name)
        if os.path.ismount(path):
            syscalls.real().umount2(path, 2)

    def populate(self, name: str, source_dir: str) -> None:
        """Copy the image's content at the mount point into a volume the first
        time a container uses it, if the volume is still empty (docker's copy-up
        of VOLUME paths)."""
        with self.lock:
            meta = self._read(name)
            if meta is None or meta.get("Populated"):
                return
            target = self.mountpoint(name)
            if meta.get("Populating"):  # a copy a crash cut short: done again
                for entry in os.listdir(target):
                    fstree.remove_tree(os.path.join(target, entry))
            if os.path.isdir(source_dir) and not os.listdir(target):
                meta["Populating"] = True
                write_atomic(self._meta_path(name), fastjson.dumps(meta), durable=True)
                _copy_contents(source_dir, target)
                st = os.stat(source_dir)
                os.chown(target, st.st_uid, st.st_gid)
                os.chmod(target, st.st_mode & 0o7777)
            crashpoint("volumes.populate.copied")
            meta.pop("Populating", None)
            meta["Populated"] = True
            write_atomic(self._meta_path(name), fastjson.dumps(meta), durable=True)

    def is_anonymous(self, name: str) -> bool:
        meta = self._read(name)
        return bool(meta and meta.get("Anonymous"))


def parse_mounts(config: dict[str, Any], hc: dict[str, Any], volumes: VolumeCreator,
                 mounts_of: MountsOf | None = None,
                 created: list[str] | None = None) -> list[dict[str, Any]]:
    """The container's Mounts (docker's inspect shape) from Binds, Mounts and
    Volumes; creates named and anonymous volumes; validates.

    A bad mount fails the create with no trace: the volumes this call made
    before it met the bad one are removed again (docker validates every mount
    before creating any volume; an existing volume is never touched).  The
    names of the volumes made are appended to ``created`` (for their events)."""
    made: list[str] = []

    class Creating:
        def create(self, name: str | None = None, **kw: Any) -> dict[str, Any]:
            new = not name or not volumes.exists(name)
            doc = volumes.create(name, **kw)
            if new:
                made.append(doc["Name"])
            return doc

    try:
        mounts = _parse_mounts(config, hc, Creating(), mounts_of)
        if created is not None:
            created.extend(made)
        return mounts
    except BaseException:
        for name in made:
            try:
                volumes.remove(name, force=True)
            except Exception:  # noqa: BLE001 - rollback is best effort
                pass
        raise


def _parse_mounts(config: dict[str, Any], hc: dict[str, Any], volumes: Creator,
                  mounts_of: MountsOf | None = None) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(m: dict[str, Any]) -> None:
        dest = os.path.normpath(m["Destination"])
        if not dest.startswith("/"):
            raise BadRequest(f"invalid mount config: mount path must be absolute: {dest}")
        if dest == "/":
            raise BadRequest("invalid specification: destination can't be '/'")
        if dest in seen:
            raise BadRequest(f"Duplicate mount point: {dest}")
        seen.add(dest)
        m["Destination"] = dest
        mounts.append(m)

    for spec in hc.get("Binds") or ():
        parts = spec.split(":")
        if len(parts) == 1:
            src, dst, opts = None, parts[0], ""
        elif len(parts) == 2:
            src, dst, opts = parts[0], parts[1], ""
        elif len(parts) == 3:
            src, dst, opts = parts
        else:
            raise BadRequest(f"invalid volume specification: '{spec}'")
        words = [w for w in opts.split(",") if w]
        rw = "ro" not in words
        prop = next((w for w in words if w in PROPAGATIONS), "")
        for w in words:
            if w not in ("ro", "rw", "z", "Z", "nocopy", "copy") and w not in PROPAGATIONS:
                raise BadRequest(f"invalid mode: {w}")
        if src is None:
            doc = volumes.create(None)
            add({"Type": "volume", "Name": doc["Name"], "Source": doc["Mountpoint"],
                 "Destination": dst, "Driver": "local", "Mode": opts, "RW": rw,
                 "Propagation": ""})
        elif src.startswith("/"):
            if not os.path.exists(src):
                try:
                    os.makedirs(src, mode=0o755)  # -v creates a missing host directory
                except OSError as e:  # (dockerd's words; a client's mistake, not a 500)
                    raise BadRequest(f"error while creating mount source path '{src}': "
                                     f"mkdir {src}: {(e.strerror or str(e)).lower()}") from None
            add({"Type": "bind", "Source": src, "Destination": dst, "Mode": opts, "RW": rw,
                 "Propagation": prop or "rprivate"})
        else:
            doc = volumes.create(src)
            add({"Type": "volume", "Name": doc["Name"], "Source": doc["Mountpoint"],
                 "Destination": dst, "Driver": "local", "Mode": opts or "z", "RW": rw,
                 "Propagation": "", "NoCopy": "nocopy" in words})
    for m in hc.get("Mounts") or ():
        kind = m.get("Type")
        target = m.get("Target") or ""
        ro = bool(m.get("ReadOnly"))
        if kind == "bind":
            src = m.get("Source") or ""
            if not src.startswith("/") or not os.path.exists(src):
                raise BadRequest(f"invalid mount config for type \"bind\": bind source path "
                                 f"does not exist: {src}")
            prop = (m.get("BindOptions") or {}).get("Propagation") or "rprivate"
            add({"Type": "bind", "Source": src, "Destination": target, "Mode": "",
                 "RW": not ro, "Propagation": prop})
        elif kind == "volume":
            vopts = m.get("VolumeOptions") or {}
            driver_opts = (vopts.get("DriverConfig") or {}).get("Options") or {}
            doc = volumes.create(m.get("Source") or None, labels=vopts.get("Labels"),
                                 options=driver_opts)
            add({"Type": "volume", "Name": doc["Name"], "Source": doc["Mountpoint"],
                 "Destination": target, "Driver": "local", "Mode": "z", "RW": not ro,
                 "Propagation": "", "NoCopy": bool(vopts.get("NoCopy"))})
        elif kind == "tmpfs":
            topts = m.get("TmpfsOptions") or {}
            add({"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "",
                 "RW": not ro, "Propagation": "", "SizeBytes": topts.get("SizeBytes"),
                 "TmpfsMode": topts.get("Mode")})
        else:
            raise BadRequest(f"mount type {kind!r} is not supported")
    for spec in hc.get("VolumesFrom") or ():
        # --volumes-from CONTAINER[:ro|rw]: its binds and volumes, at the same
        # places, read-only/read-write as there unless the suffix says; what
        # this container mounts itself wins (docker's order).  It used to be
        # ignored: the container ran without the data it asked for.
        ref, _, mode = spec.partition(":")
        if mode not in ("", "ro", "rw"):
            raise BadRequest(f"invalid mode for volumes-from: {mode}")
        if mounts_of is None:
            raise BadRequest("--volumes-from is not supported here")
        for m in mounts_of(ref):
            if m.get("Type") not in ("bind", "volume") or \
                    os.path.normpath(m["Destination"]) in seen:
                continue
            copy = dict(m)
            if mode:
                copy["RW"] = mode == "rw"
            add(copy)
    tmpfs_paths = {os.path.normpath(p) for p in (hc.get("Tmpfs") or {})}
    for path in (config.get("Volumes") or {}):
        dest = os.path.normpath(path)
        if dest in seen or dest in tmpfs_paths:
            continue
        doc = volumes.create(None)
        add({"Type": "volume", "Name": doc["Name"], "Source": doc["Mountpoint"],
             "Destination": dest, "Driver": "local", "Mode": "", "RW": True,
             "Propagation": ""})
    return mounts


def oci_mounts(mounts: list[dict[str, Any]], volumes: VolumeStore,
               rootfs: str) -> list[dict[str, Any]]:
    """config.json mounts for the container's Mounts (volumes prepared and, the
    first time, filled from the image)."""
    out: list[dict[str, Any]] = []
    for m in mounts:
        opts = []
        if m["Type"] == "tmpfs":
            opts = ["nosuid", "nodev", "noexec"]
            if m.get("SizeBytes"):
                opts.append(f"size={m['SizeBytes']}")
            if m.get("TmpfsMode"):
                opts.append(f"mode={m['TmpfsMode']:o}")
            if not m["RW"]:
                opts.append("ro")
            out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs",
                        "options": opts})
            continue
        if m["Type"] == "volume":
            source = volumes.prepare(m["Name"])
            if not m.get("NoCopy"):
                volumes.populate(m["Name"], secure_join(rootfs, m["Destination"]))
        else:
            source = m["Source"]
        opts = ["rbind", m.get("Propagation") or "rprivate"]
        if not m["RW"]:
            opts.append("ro")
        out.append({"destination": m["Destination"], "type": "bind", "source": source,
                    "options": opts})
    return out


def _copy_contents(source_dir: str, target: str) -> None:
    """Copy what is in ``source_dir`` (files, symlinks, special files, trees)
    into the directory ``target`` with owners, modes and times, as docker's
    copy-up into a new volume does.

    shutil.copytree/copy2 keep modes and times but not owners: an image's
    files owned by a service user (say 1000:1000, or postgres' data directory)
    would become root's in the volume and the service could not write them.
    An image may hold a tree thousands of levels deep (a container's `mkdir a;
    cd a` loop, committed): fstree walks it iteratively by directory fds, and
    the copy is made the same way, from an fd per level of the target (no
    recursion, no path longer than one name)."""
    src_top = os.open(source_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    # the target directory at each depth of the walk, with the source's stat
    # to give it once everything below is copied (its times change until then)
    made: list[tuple[int, os.stat_result]] = []
    try:
        made.append((os.open(target, fstree.DIR_FLAGS), os.fstat(src_top)))  # (its own: the caller's)
        for entry in fstree.walk(src_top):
            if entry.depth == 0:
                continue
            while len(made) > entry.depth:
                _finish_dir(*made.pop())
            directory = _copy_entry(entry, made[-1][0])
            if directory is not None:
                made.append((directory, entry.st))
        while len(made) > 1:
            _finish_dir(*made.pop())
    finally:
        for fd, _ in made:  # the target itself, or what an error left open
            os.close(fd)
        os.close(src_top)


def _copy_entry(entry: fstree.Entry, parent_fd: int) -> int | None:
    """Make ``entry`` again in the target directory ``parent_fd``: a
    directory is made (owner-only until finished) and its new fd returned;
    anything else is made and given its owner, mode and times now."""
    name, st_ = entry.name, entry.st
    mode = st_.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        return os.open(name, fstree.DIR_FLAGS, dir_fd=parent_fd)
    if stat.S_ISREG(mode):
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=entry.parent_fd)
        try:
            dst = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=parent_fd)
            try:
                _copy_data(src, dst)
                _finish(dst, st_)
            finally:
                os.close(dst)
        finally:
            os.close(src)
        return None
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(name, dir_fd=entry.parent_fd), name, dir_fd=parent_fd)
    else:  # device nodes, fifos, sockets: made again, never read
        os.mknod(name, mode, st_.st_rdev, dir_fd=parent_fd)
    os.chown(name, st_.st_uid, st_.st_gid, dir_fd=parent_fd, follow_symlinks=False)
    if not stat.S_ISLNK(mode):  # after chown, which clears set-id bits
        os.chmod(name, stat.S_IMODE(mode), dir_fd=parent_fd)
    os.utime(name, ns=(st_.st_atime_ns, st_.st_mtime_ns), dir_fd=parent_fd,
             follow_symlinks=False)
    return None


def _copy_data(src: int, dst: int) -> None:
    """All of the file ``src`` into ``dst`` (in the kernel where it can)."""
    try:
        while os.sendfile(dst, src, None, 1 << 30) > 0:
            pass
        return
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
    while True:
        chunk = os.read(src, 1 << 20)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]


def _finish(fd: int, st_: os.stat_result) -> None:
    """Owner, then mode (chown clears set-id bits), then times."""
    os.fchown(fd, st_.st_uid, st_.st_gid)
    os.fchmod(fd, stat.S_IMODE(st_.st_mode))
    os.utime(fd, ns=(st_.st_atime_ns, st_.st_mtime_ns))


def _finish_dir(fd: int, st_: os.stat_result) -> None:
    try:
        _finish(fd, st_)
    finally:
        os.close(fd)


def _du(path: str) -> int:
    """Bytes under a volume.  Containers write volumes, at any depth (a
    2,500-deep mkdir loop): fstree walks iteratively by directory fds and
    never follows a symlink, so a directory swapped for a link mid-walk
    cannot take it into the host's tree."""
    return fstree.path_size(path)


# -- anonymous volumes of a create, listed for recovery ---------------------------------
CREATE_VOLUMES = "create.volumes"  # in a container's directory, while it is created


class RecordingVolumes:
    """The volume store as a create sees it: every anonymous volume the create
    makes is listed in the new container's directory (fsynced) *before* it is
    made, so recovery can remove the volumes of a create that never finished
    (nothing else names them: the record was never written)."""

    def __init__(self, volumes: Any, directory: str) -> None:
        self._volumes = volumes
        self._list = os.path.join(directory, CREATE_VOLUMES)

    def create(self, name: str | None = None, **kw: Any) -> dict[str, Any]:
        if not name:
            name = secrets.token_hex(32)
            kw["anonymous"] = True
            fd = os.open(self._list, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
            try:
                os.write(fd, name.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            crashpoint("engine.create.volume_listed")
        return self._volumes.create(name, **kw)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._volumes, attr)


def created_volumes(directory: str) -> list[str]:
    """The anonymous volumes a create listed (see RecordingVolumes)."""
    try:
        with open(os.path.join(directory, CREATE_VOLUMES)) as f:
            return [n for n in f.read().split() if re.fullmatch(r"[0-9a-f]{64}", n)]
    except OSError:
        return []
