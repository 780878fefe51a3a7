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

import os
import secrets
import shutil
import stat
import threading

from pybox.crashpoints import crashpoint
from pybox.errors import BadRequest, Conflict, NotFound
from pybox.formats import fastjson
from pybox.formats.times import rfc3339_nano_fixed
from pybox.linux import fstree
from pybox.oci.state import write_atomic

PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def _valid_name(name):
    ok = name and (name[0].isalnum()) and all(ch.isalnum() or ch in "_.-" for ch in name)
    if not ok or len(name) < 2:
        raise BadRequest(f'create {name}: "{name}" includes invalid characters for a local '
                         'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                         "intended to pass a host directory, use absolute path")
    return name


class VolumeStore:
    def __init__(self, data_root, mounts_in_use) -> None:
        """``mounts_in_use()`` -> {volume name: [container ids]} (from the engine's
        container records, the single truth about use)."""
        self.root = os.path.join(data_root, "volumes")
        os.makedirs(self.root, mode=0o701, exist_ok=True)
        self.lock = threading.RLock()
        self.mounts_in_use = mounts_in_use
        self.root_owner = None  # (uid, gid) for new volumes under --userns-remap

    def _dir(self, name):
        return os.path.join(self.root, name)

    def _meta_path(self, name):
        return os.path.join(self._dir(name), "volume.json")

    def _read(self, name):
        try:
            return fastjson.load_file(self._meta_path(name))
        except (OSError, ValueError):
            return None

    def exists(self, name):
        return os.path.isfile(self._meta_path(name))

    def get(self, name):
        meta = self._read(name)
        if meta is None:
            raise NotFound(f"get {name}: no such volume")
        return self._document(meta)

    def _document(self, meta):
        name = meta["Name"]
        return {"CreatedAt": meta["CreatedAt"], "Driver": "local",
                "Labels": meta.get("Labels") or {}, "Mountpoint": self.mountpoint(name),
                "Name": name, "Options": meta.get("Options") or {}, "Scope": "local"}

    def mountpoint(self, name):
        return os.path.join(self._dir(name), "_data")

    def create(self, name=None, labels=None, options=None, anonymous: bool=False):
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

    def list(self, filters=None):
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

    def remove(self, name, force: bool=False):
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

    def prune(self, filters=None, all_: bool=False):
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
    def prepare(self, name):
        """Make the volume's directory ready for a container (mount a typed local
        volume such as tmpfs the first time); returns the host path."""
        meta = self._read(name)
        if meta is None:
            raise NotFound(f"get {name}: no such volume")
        path = self.mountpoint(name)
        opts = meta.get("Options") or {}
        if opts.get("type") and not os.path.ismount(path):
            from pybox.linux import syscalls

            syscalls.real().mount(opts.get("device") or opts["type"], path, opts["type"], 0,
                                  opts.get("o") or None)
        return path

    def _unmount(self, name) -> None:
        path = self.mountpoint(name)
        if os.path.ismount(path):
            from pybox.linux import syscalls

            syscalls.real().umount2(path, 2)

    def populate(self, name, source_dir) -> None:
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
                for entry in os.listdir(source_dir):
                    _copy_preserving(os.path.join(source_dir, entry),
                                     os.path.join(target, entry))
                st = os.stat(source_dir)
                os.chown(target, st.st_uid, st.st_gid)
                os.chmod(target, st.st_mode & 0o7777)
            crashpoint("volumes.populate.copied")
            meta.pop("Populating", None)
            meta["Populated"] = True
            write_atomic(self._meta_path(name), fastjson.dumps(meta), durable=True)

    def is_anonymous(self, name):
        meta = self._read(name)
        return bool(meta and meta.get("Anonymous"))


def parse_mounts(config, hc, volumes, mounts_of=None, created=None):
    """The container's Mounts (docker's inspect shape) from Binds, Mounts and
    Volumes; creates named and anonymous volumes; validates.

    A bad mount fails the create with no trace: the volumes this call made
    before it met the bad one are removed again (docker validates every mount
    before creating any volume; an existing volume is never touched).  The
    names of the volumes made are appended to ``created`` (for their events)."""
    made = []

    class Creating:
        def create(self, name=None, **kw):
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


def _parse_mounts(config, hc, volumes, mounts_of=None):
    mounts = []
    seen = set()

    def add(m):
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


def oci_mounts(mounts, volumes, rootfs):
    """config.json mounts for the container's Mounts (volumes prepared and, the
    first time, filled from the image)."""
    from pybox.runtime.rootfs import secure_join

    out = []
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


def _copy_preserving(src, dst) -> None:
    """Copy ``src`` (a file, symlink, special file or tree) to ``dst`` with its
    owners, modes and times, as docker's copy-up into a new volume does.

    shutil.copytree/copy2 keep modes and times but not owners: an image's
    files owned by a service user (say 1000:1000, or postgres' data directory)
    would become root's in the volume and the service could not write them."""
    st_ = os.lstat(src)
    mode = st_.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(dst, 0o700)
        for entry in os.listdir(src):
            _copy_preserving(os.path.join(src, entry), os.path.join(dst, entry))
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    else:  # device nodes, fifos, sockets: made again, never read
        os.mknod(dst, mode, st_.st_rdev)
    os.lchown(dst, st_.st_uid, st_.st_gid)
    if not stat.S_ISLNK(mode):
        os.chmod(dst, stat.S_IMODE(mode))  # after chown, which clears set-id bits
    os.utime(dst, ns=(st_.st_atime_ns, st_.st_mtime_ns), follow_symlinks=False)


def _du(path: str) -> int:
    """Bytes under a volume.  Containers write volumes, at any depth (a
    2,500-deep mkdir loop): fstree walks iteratively by directory fds and
    never follows a symlink, so a directory swapped for a link mid-walk
    cannot take it into the host's tree."""
    return fstree.path_size(path)
