"""Snapshots: unpacked layers stacked with overlayfs into container root filesystems.

    DATA_ROOT/images/
      layers/CHAIN_HEX/diff/        one layer unpacked (overlay whiteouts), keyed by
                                    its chain-id: the same content on the same base is
                                    stored once, whichever images share it
      layers/CHAIN_HEX/layer.json   diff-id, chain-id, parent chain-id, content size,
                                    uncompressed tar size, short link name
      l/SHORT -> ../layers/CHAIN_HEX/diff
                                    short names keep the overlay mount's option
                                    string (one page) small enough for deep images
      containers/ID/upper/ work/    a container's own writable layer (overlay)
      containers/ID/merged/         its root filesystem: the overlay mount, or with
                                    the copying driver a flattened copy
      containers/ID/rootfs.json     image Id, its chain-ids, the driver

A container rootfs is ONE mount, source ``pybox-overlay``:
``lowerdir=l/TOP:...:l/BASE,upperdir=...,workdir=...`` - no copying, so it takes
milliseconds whatever the image's size.  Where overlay is unavailable (no module,
a data root on a filesystem overlay refuses) the copying driver flattens the
layers into merged/ instead (whiteouts delete, opaque dirs clear).

Reference counts are derived, not stored: a layer's users are the image records
and rootfs.json files that name its chain-id.  Counting from the records means a
crash can never leave a count that is off by one; the store removes a layer when
the last record naming it goes away (under the exclusive gc lock).
"""

import json
import os
import shutil
import stat
import uuid

from pybox.crashpoints import crashpoint
from pybox.errors import ImageError, LayerError, SyscallError
from pybox.images import layers as layer_io
from pybox.images.store import FileLock, chain_ids, digest_hex, storage_error
from pybox.linux import fstree
from pybox.oci.state import validate_id, write_atomic

MOUNT_SOURCE = "pybox-overlay"
SHORT_LINK_LENGTH = 20
MAX_MOUNT_DATA = 4000  # the kernel copies one page of mount options
DRIVER_OVERLAY = "overlay"
DRIVER_COPY = "copy"

# docker's change kinds, as GET /containers/ID/changes returns them
CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2
CHANGE_LETTERS = {CHANGE_MODIFY: "C", CHANGE_ADD: "A", CHANGE_DELETE: "D"}


def _chain(parent_chain_id, diff_id):
    return chain_ids([parent_chain_id, diff_id])[1] if parent_chain_id else diff_id


def _owner_map(idmap):
    """host (uid, gid) -> the container's, for an idmapped rootfs (else None)."""
    if not idmap:
        return None

    from pybox.linux.idmap import OVERFLOW_ID, map_id

    def back(mappings, value):
        inside = map_id(mappings, value, to_host=False)
        return OVERFLOW_ID if inside is None else inside

    return lambda uid, gid: (back(idmap["uid"], uid), back(idmap["gid"], gid))


def _allow_traversal(path) -> None:
    mode = os.stat(path).st_mode
    if not mode & 0o001:
        os.chmod(path, stat.S_IMODE(mode) | 0o001)


def overlay_supported():
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


class Snapshots:
    def __init__(self, root, syscalls=None, driver=None) -> None:
        self.root = root
        self.layers_dir = os.path.join(root, "layers")
        self.links_dir = os.path.join(root, "l")
        self.containers_dir = os.path.join(root, "containers")
        self.locks = os.path.join(root, "locks")
        self.ingest = os.path.join(root, "ingest")
        for d in (self.layers_dir, self.links_dir, self.containers_dir, self.locks):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self._syscalls = syscalls
        self.driver = driver or (DRIVER_OVERLAY if overlay_supported() else DRIVER_COPY)

    @property
    def sys(self):
        if self._syscalls is None:
            from pybox.linux.syscalls import real

            self._syscalls = real()
        return self._syscalls

    # -- layers ----------------------------------------------------------------
    def layer_dir(self, chain_id):
        return os.path.join(self.layers_dir, digest_hex(chain_id))

    def diff_dir(self, chain_id):
        return os.path.join(self.layer_dir(chain_id), "diff")

    def has_layer(self, chain_id):
        return os.path.exists(os.path.join(self.layer_dir(chain_id), "layer.json"))

    def layer_info(self, chain_id):
        try:
            with open(os.path.join(self.layer_dir(chain_id), "layer.json"), "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            raise ImageError(f"layer {chain_id} is not in the store", errno=2) from None

    def all_layers(self):
        return {"sha256:" + n for n in os.listdir(self.layers_dir)
                if not n.startswith(".")}

    def ensure_layer(self, parent_chain_id, diff_id, open_blob, allow_devices: bool=True):
        """Unpack a layer once; returns its layer.json (with ``chain_id``).

        ``open_blob()`` gives the (compressed) tar stream; it is only called when
        the layer is missing.  With ``diff_id`` known the layer is found by its
        chain-id first and the unpack is verified against it; without (docker
        import of a compressed tarball) the unpack tells the diff-id.  The unpack
        goes to a temp dir renamed into place when complete and verified, under a
        per-layer lock: concurrent imports of the same layer wait for one another
        and the second finds it done."""
        if diff_id is not None:
            chain_id = _chain(parent_chain_id, diff_id)
            with FileLock(self._layer_lock(chain_id)):
                if self.has_layer(chain_id):
                    return self.layer_info(chain_id)
                return self._unpack_and_place(parent_chain_id, diff_id, open_blob,
                                              allow_devices)
        return self._unpack_and_place(parent_chain_id, None, open_blob, allow_devices)

    def _layer_lock(self, chain_id):
        return os.path.join(self.locks, f"layer-{digest_hex(chain_id)}")

    def _unpack_and_place(self, parent_chain_id, diff_id, open_blob, allow_devices):
        tmp = os.path.join(self.layers_dir, f".tmp-{uuid.uuid4().hex}")
        try:
            os.mkdir(tmp, 0o700)
            diff = os.path.join(tmp, "diff")
            os.mkdir(diff, 0o755)
            with open_blob() as blob:
                result = layer_io.unpack_layer(blob, diff, allow_devices=allow_devices,
                                               expected_diff_id=diff_id)
            chain_id = _chain(parent_chain_id, result.diff_id)
            hexid = digest_hex(chain_id)
            info = {"chain_id": chain_id, "diff_id": result.diff_id,
                    "parent": parent_chain_id or "", "size": result.size,
                    "tar_size": result.tar_size, "link": hexid[:SHORT_LINK_LENGTH]}
            write_atomic(os.path.join(tmp, "layer.json"), json.dumps(info, indent=1),
                         mode=0o644, durable=False)
            crashpoint("images.layer.unpacked")
            final = self.layer_dir(chain_id)
            lock = None if diff_id is not None else FileLock(self._layer_lock(chain_id))
            if lock:
                lock.__enter__()
            try:
                if self.has_layer(chain_id):  # someone else finished it meanwhile
                    _remove_tree(tmp)
                    return self.layer_info(chain_id)
                if os.path.exists(final):  # a crash's leftover without layer.json
                    fstree.remove_tree(final)
                os.rename(tmp, final)
                crashpoint("images.layer.placed")
                link = os.path.join(self.links_dir, info["link"])
                if not os.path.lexists(link):
                    os.symlink(os.path.join("..", "layers", hexid, "diff"), link)
            finally:
                if lock:
                    lock.__exit__(None, None, None)
            return info
        except BaseException as e:
            _remove_tree(tmp)
            if isinstance(e, OSError) and not isinstance(e, ImageError):
                raise storage_error(f"unpacking layer {diff_id or ''}".rstrip(), e) from None
            raise

    def remove_layer(self, chain_id) -> None:
        """Delete a layer (the caller holds the exclusive gc lock and has checked
        that nothing names it)."""
        path = self.layer_dir(chain_id)
        try:
            link = self.layer_info(chain_id)["link"]
            link_path = os.path.join(self.links_dir, link)
            if os.path.islink(link_path):
                os.unlink(link_path)
        except (ImageError, KeyError, ValueError):
            pass
        _remove_tree(path)

    def clean_temp(self) -> None:
        """Remove half-unpacked layers a crashed process left (exclusive gc lock)."""
        for name in os.listdir(self.layers_dir):
            path = os.path.join(self.layers_dir, name)
            if name.startswith(".tmp-") or not os.path.exists(
                    os.path.join(path, "layer.json")):
                _remove_tree(path)

    # -- container root filesystems ----------------------------------------------
    def container_dir(self, container_id):
        return os.path.join(self.containers_dir, validate_id(container_id))

    def rootfs_path(self, container_id):
        return os.path.join(self.container_dir(container_id), "merged")

    def container_info(self, container_id):
        try:
            with open(os.path.join(self.container_dir(container_id), "rootfs.json"),
                      "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            raise ImageError(f"container {container_id!r} has no rootfs", errno=2) from None

    def containers(self):
        """{container id: rootfs.json} of every prepared rootfs."""
        out = {}
        for name in os.listdir(self.containers_dir):
            try:
                with open(os.path.join(self.containers_dir, name, "rootfs.json"),
                          "rb") as f:
                    out[name] = json.loads(f.read())
            except (OSError, ValueError):
                continue
        return out

    def is_mounted(self, container_id):
        return os.path.ismount(self.rootfs_path(container_id))

    def prepare(self, container_id, image_id, chain_ids, idmap=None):
        """Create the container's writable layer and mount its rootfs; returns the
        path.  Preparing again (after a reboot or unmount) re-mounts the same
        upper dir.  On failure nothing is left mounted or created.

        ``idmap`` ({"uid": [[container, host, size], ...], "gid": [...]}, for
        ``pyboxd --userns-remap``) shows the image's layers through idmapped
        mounts, owned by the container's remapped root, and gives the writable
        layer to that root; the layers themselves are never chowned."""
        cdir = self.container_dir(container_id)
        if os.path.exists(os.path.join(cdir, "rootfs.json")):
            info = self.container_info(container_id)
            if info["image"] != image_id:
                raise ImageError(f"container {container_id!r} already has a rootfs from "
                                 f"image {info['image']}")
            self.mount(container_id)
            return self.rootfs_path(container_id)
        for chain_id in chain_ids:
            if not self.has_layer(chain_id):
                raise ImageError(f"layer {chain_id} of image {image_id} is missing")
        driver = self.driver
        if idmap is not None and driver != DRIVER_OVERLAY:
            raise ImageError("--userns-remap needs overlayfs (idmapped image layers)")
        if driver == DRIVER_OVERLAY and len(self._overlay_data(cdir, chain_ids)) > MAX_MOUNT_DATA:
            if idmap is not None:
                raise ImageError(f"image {image_id} has too many layers for --userns-remap")
            driver = DRIVER_COPY
        try:
            os.mkdir(cdir, 0o700)
        except FileExistsError:
            fstree.remove_tree(cdir)  # a leftover without rootfs.json: never finished
            os.mkdir(cdir, 0o700)
        except OSError as e:
            raise storage_error(f"creating the rootfs of {container_id}", e) from None
        crashpoint("images.rootfs.dir")
        try:
            merged = os.path.join(cdir, "merged")
            os.mkdir(merged, 0o755)
            if driver == DRIVER_OVERLAY:
                os.mkdir(os.path.join(cdir, "upper"), 0o755)
                os.mkdir(os.path.join(cdir, "work"), 0o700)
                if idmap is not None:  # the merged root dir is the upper dir's
                    from pybox.linux.idmap import map_id

                    os.chown(os.path.join(cdir, "upper"), map_id(idmap["uid"], 0),
                             map_id(idmap["gid"], 0))
            if idmap is not None:
                # the runtime mounts the rootfs from inside the container's user
                # namespace, as a uid with no privilege over our directories: it
                # must be able to pass through them (docker's 0701 data dirs)
                for d in (self.root, self.containers_dir, cdir):
                    _allow_traversal(d)
            info = {"id": container_id, "image": image_id, "chain_ids": list(chain_ids),
                    "driver": driver}
            if idmap is not None:
                info["idmap"] = idmap
            # not fsynced: the upper dir's own content never is either (a container's
            # writes are not durable in docker), and this keeps prepare in a few ms
            write_atomic(os.path.join(cdir, "rootfs.json"), json.dumps(info), mode=0o644,
                         durable=False)
            crashpoint("images.rootfs.recorded")
            if driver == DRIVER_OVERLAY:
                try:
                    self._mount_overlay(cdir, chain_ids, idmap)
                except SyscallError as e:
                    if idmap is None and self.driver == DRIVER_OVERLAY and e.errno in (19, 22, 95):
                        # ENODEV, EINVAL, EOPNOTSUPP: this filesystem cannot be an
                        # overlay upper dir: fall back to copying for this container
                        fstree.remove_tree(os.path.join(cdir, "upper"))
                        fstree.remove_tree(os.path.join(cdir, "work"))
                        info["driver"] = driver = DRIVER_COPY
                        write_atomic(os.path.join(cdir, "rootfs.json"), json.dumps(info),
                                     mode=0o644, durable=True)
                    else:
                        raise
            if driver == DRIVER_COPY:
                flatten_layers([self.diff_dir(c) for c in chain_ids], merged)
            return merged
        except BaseException as e:
            if os.path.ismount(os.path.join(cdir, "merged")):
                self._umount(os.path.join(cdir, "merged"))
            _remove_tree(cdir)
            if isinstance(e, OSError) and not isinstance(e, (ImageError, SyscallError)):
                raise storage_error(f"preparing the rootfs of {container_id}", e) from None
            if isinstance(e, SyscallError):
                raise ImageError(f"mounting the rootfs of {container_id}: {e}",
                                 errno=e.errno) from None
            raise

    def _overlay_data(self, cdir, chain_ids, lowers=None):
        lowers = list(lowers or [])
        for chain_id in ([] if lowers else reversed(chain_ids)):  # top layer first
            lowers.append(os.path.join(self.links_dir, digest_hex(chain_id)[:SHORT_LINK_LENGTH]))
        if not lowers:
            empty = os.path.join(self.root, "empty")
            os.makedirs(empty, 0o755, exist_ok=True)
            lowers.append(empty)
        data = (f"lowerdir={':'.join(lowers)},upperdir={os.path.join(cdir, 'upper')},"
                f"workdir={os.path.join(cdir, 'work')}")
        if os.path.exists("/sys/module/overlay/parameters/index"):
            data += ",index=off"  # as docker: a lower dir may be shared by many mounts
        return data

    def _mount_overlay(self, cdir, chain_ids, idmap=None):
        if idmap is not None:
            return self._mount_idmapped_overlay(cdir, chain_ids, idmap)
        self.sys.mount(MOUNT_SOURCE, os.path.join(cdir, "merged"), "overlay", 0,
                       self._overlay_data(cdir, chain_ids))

    def _mount_idmapped_overlay(self, cdir, chain_ids, idmap):
        """Overlay over idmapped clones of the layers.  The clones are detached
        mounts named by /proc/self/fd/N (overlay clones them privately, so they
        vanish when the fds close); kernels that refuse detached layers get them
        attached below the container dir for the time of the mount instead."""
        from pybox.linux import idmap as idmapping

        if not chain_ids:
            return self._mount_overlay(cdir, chain_ids)
        userns = self._idmap_userns(idmap)
        fds, staged = [], []
        try:
            for chain_id in reversed(chain_ids):
                fds.append(idmapping.idmapped_tree(self.diff_dir(chain_id), userns, self.sys))
            lowers = [f"/proc/self/fd/{fd}" for fd in fds]
            try:
                self.sys.mount(MOUNT_SOURCE, os.path.join(cdir, "merged"), "overlay", 0,
                               self._overlay_data(cdir, chain_ids, lowers))
                return
            except SyscallError as e:
                if e.errno != 22:
                    raise
            stage = os.path.join(cdir, "idmapped")
            os.makedirs(stage, 0o700, exist_ok=True)
            for i, fd in enumerate(fds):
                target = os.path.join(stage, str(i))
                os.makedirs(target, 0o700, exist_ok=True)
                self.sys.move_mount(fd, "", -100, target, 0x4)  # MOVE_MOUNT_F_EMPTY_PATH
                staged.append(target)
            self.sys.mount(MOUNT_SOURCE, os.path.join(cdir, "merged"), "overlay", 0,
                           self._overlay_data(cdir, chain_ids, staged))
        finally:
            for fd in fds:
                os.close(fd)
            for target in staged:  # overlay holds private clones of its layers
                try:
                    self.sys.umount2(target, 2)  # MNT_DETACH
                except SyscallError:
                    pass

    def _idmap_userns(self, idmap):
        """One user namespace fd per distinct idmap, kept for the process's life."""
        from pybox.linux import idmap as idmapping

        key = json.dumps(idmap, sort_keys=True)
        cache = self.__dict__.setdefault("_userns_fds", {})
        if key not in cache:
            cache[key] = idmapping.user_namespace_fd(
                [tuple(m) for m in idmap["uid"]], [tuple(m) for m in idmap["gid"]])
        return cache[key]

    def _umount(self, path):
        try:
            self.sys.umount2(path, 0)
        except SyscallError as e:
            if e.errno == 16:  # EBUSY: still in use (a running container)
                raise ImageError(f"{path} is busy: a container still uses it",
                                 errno=e.errno) from None
            if e.errno != 22:  # EINVAL: not mounted
                raise

    def mount(self, container_id):
        """Mount an existing container rootfs (no-op when mounted or copied)."""
        info = self.container_info(container_id)
        if info["driver"] == DRIVER_OVERLAY and not self.is_mounted(container_id):
            for chain_id in info["chain_ids"]:
                if not self.has_layer(chain_id):
                    raise ImageError(f"layer {chain_id} of container {container_id} "
                                     "is missing")
            try:
                self._mount_overlay(self.container_dir(container_id), info["chain_ids"],
                                    info.get("idmap"))
            except SyscallError as e:
                raise ImageError(f"mounting the rootfs of {container_id}: {e}",
                                 errno=e.errno) from None
        return self.rootfs_path(container_id)

    def unmount(self, container_id) -> None:
        """Unmount (the upper dir stays: a stopped container keeps its changes)."""
        if self.is_mounted(container_id):
            self._umount(self.rootfs_path(container_id))

    def release(self, container_id) -> bool:
        """Unmount and delete the container's writable layer and its record."""
        cdir = self.container_dir(container_id)
        if not os.path.exists(cdir):
            return False
        if self.is_mounted(container_id):
            self._umount(self.rootfs_path(container_id))
        # rootfs.json first: from then on no layer counts this container as a user
        crashpoint("images.release.unmounted")
        try:
            os.unlink(os.path.join(cdir, "rootfs.json"))
        except FileNotFoundError:
            pass
        crashpoint("images.release.unrecorded")
        _remove_tree(cdir)
        return True

    # -- diff and export -------------------------------------------------------------
    def lower_dirs(self, container_id):
        """The image's layer dirs, top first."""
        info = self.container_info(container_id)
        return [self.diff_dir(c) for c in reversed(info["chain_ids"])]

    def changes(self, container_id):
        """docker diff: [(kind, '/path')] sorted by path, kind 0=C, 1=A, 2=D."""
        info = self.container_info(container_id)
        view = LowerView(self.lower_dirs(container_id))
        cdir = self.container_dir(container_id)
        if info["driver"] == DRIVER_OVERLAY:
            out = _overlay_changes(os.path.join(cdir, "upper"), view)
        else:
            out = _tree_changes(os.path.join(cdir, "merged"), view)
        return sorted(out, key=lambda c: c[1])

    def write_layer(self, container_id, out) -> None:
        """The container's changes as a layer tar (for commit)."""
        info = self.container_info(container_id)
        cdir = self.container_dir(container_id)
        if info["driver"] == DRIVER_OVERLAY:
            layer_io.write_tree(os.path.join(cdir, "upper"), out, overlay_whiteouts=True,
                                owner_map=_owner_map(info.get("idmap")))
        else:
            write_changes(os.path.join(cdir, "merged"), self.changes(container_id), out)

    def export(self, container_id, out) -> None:
        """The container's whole filesystem as one tar (docker export)."""
        info = self.container_info(container_id)
        mounted_here = False
        if info["driver"] == DRIVER_OVERLAY and not self.is_mounted(container_id):
            self.mount(container_id)
            mounted_here = True
        try:
            layer_io.write_tree(self.rootfs_path(container_id), out,
                                owner_map=_owner_map(info.get("idmap")))
        finally:
            if mounted_here:
                self.unmount(container_id)


# -- the layers below a container, as one read-only view ----------------------------

class LowerView:
    """Answers "what does the image have at PATH" from its layer dirs (top first),
    honouring whiteouts and opaque dirs as overlay would."""

    def __init__(self, lower_dirs) -> None:
        self.lowers = lower_dirs

    def lookup(self, rel):
        """lstat of the visible entry at rel ('' = root), or None."""
        parts = rel.split("/") if rel else []
        for layer in self.lowers:
            if not parts:
                return os.lstat(layer)
            opaque_above = False
            st = None
            for i, part in enumerate(parts):
                if i and _in_layer(layer, "/".join(parts[:i]), layer_io.is_opaque_dir):
                    opaque_above = True  # this layer hides everything below in path
                try:
                    st = _in_layer(layer, "/".join(parts[:i + 1]), os.lstat)
                except FileNotFoundError:
                    st = None
                    break
                if layer_io.is_overlay_whiteout(st):
                    return None
                if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
                    return None  # a non-directory here hides the subtree below
            if st is not None:
                return st
            if opaque_above:
                return None
        return None

    def listdir(self, rel):
        """Names visible in directory rel (union over layers, minus whiteouts)."""
        names = {}
        for layer in self.lowers:
            try:
                st = _in_layer(layer, rel, os.lstat)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if layer_io.is_overlay_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                break
            fd = _in_layer(layer, rel, lambda p: os.open(p, fstree.DIR_FLAGS))
            try:
                for name in os.listdir(fd):
                    if name not in names:
                        names[name] = not layer_io.is_overlay_whiteout(
                            os.stat(name, dir_fd=fd, follow_symlinks=False))
                opaque = layer_io._is_opaque_fd(fd)
            finally:
                os.close(fd)
            if opaque:
                break
        return {n for n, visible in names.items() if visible}


def _in_layer(layer, rel, call):
    """call(path) on layer/rel: the path itself when it is short, else
    /proc/self/fd/PARENT/NAME with the parent opened in pieces (an image's
    tree may be deeper than PATH_MAX; layer dirs are pybox's, never
    changed once made)."""
    path = os.path.join(layer, rel) if rel else layer
    if len(path) < 3000:
        return call(path)
    parent, _, name = rel.rpartition("/")
    base = os.open(layer, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pfd = fstree.open_beneath(base, parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    finally:
        os.close(base)
    try:
        return call(f"/proc/self/fd/{pfd}/{name}")
    finally:
        os.close(pfd)


def _same_meta(a, b):
    return (stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode) and a.st_mode == b.st_mode
            and a.st_uid == b.st_uid and a.st_gid == b.st_gid
            and a.st_mtime_ns // 10**9 == b.st_mtime_ns // 10**9
            and (stat.S_ISDIR(a.st_mode) or a.st_size == b.st_size))


def _open_dir_beneath(root_fd, rel):
    """An fd of directory ``rel`` below ``root_fd`` reached without following
    any symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or None when
    it is not one any more: a running container may swap a directory for a
    link to / while we list it, and the host's names must not show up."""
    try:
        return fstree.open_beneath(root_fd, rel, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _overlay_changes(upper, view):
    """docker diff of an overlay container.  As moby's archive.changes: a
    directory that was only copied up (same metadata as below) is no change of
    its own, but the parent of an added or deleted entry always is one ("C
    /bin" for "D /bin/vi"), whatever the timestamps say -- a delete in the
    second the image's files were dated showed no change of the directory."""
    out = []
    changed_dirs = set()

    def record(kind, rel) -> None:
        out.append((kind, "/" + rel))
        changed_dirs.add(rel)
        if kind != CHANGE_MODIFY:
            parent = os.path.dirname(rel)
            if parent and parent not in changed_dirs:
                out.append((CHANGE_MODIFY, "/" + parent))
                changed_dirs.add(parent)

    upper_fd = os.open(upper, fstree.DIR_FLAGS)
    try:
        for entry in fstree.walk(upper_fd):  # iterative: any depth
            rel, st = entry.rel, entry.st
            if rel:
                if layer_io.is_overlay_whiteout(st):
                    if view.lookup(rel) is not None:
                        record(CHANGE_DELETE, rel)
                    continue
                below = view.lookup(rel)
                if below is None:
                    record(CHANGE_ADD, rel)
                elif not (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(below.st_mode)
                          and _same_meta(st, below)):
                    record(CHANGE_MODIFY, rel)
            if rel and entry.fd is not None and layer_io._is_opaque_fd(entry.fd):
                for gone in sorted(view.listdir(rel) - set(entry.names())):
                    record(CHANGE_DELETE, f"{rel}/{gone}")
    finally:
        os.close(upper_fd)
    return out


def _tree_changes(root, view):
    """Changes of a flattened copy against the image (the copying driver)."""
    out = []

    root_fd = os.open(root, fstree.DIR_FLAGS)
    below_dirs = {""}  # the walked directories that are directories below too
    try:
        for entry in fstree.walk(root_fd):  # iterative: any depth
            rel, st = entry.rel, entry.st
            if rel:
                try:
                    link = (os.readlink(entry.name, dir_fd=entry.parent_fd)
                            if stat.S_ISLNK(st.st_mode) else None)
                except OSError:
                    continue
                below = view.lookup(rel)
                if below is None:
                    out.append((CHANGE_ADD, "/" + rel))
                elif not _same_meta(st, below) or (
                        stat.S_ISLNK(st.st_mode) and link != _readlink_in(view, rel)):
                    out.append((CHANGE_MODIFY, "/" + rel))
                if entry.fd is not None and below is not None and stat.S_ISDIR(below.st_mode):
                    below_dirs.add(rel)
            if entry.fd is not None and rel in below_dirs:
                below_dirs.discard(rel)
                for gone in sorted(view.listdir(rel) - set(entry.names())):
                    out.append((CHANGE_DELETE, "/" + (f"{rel}/{gone}" if rel else gone)))
    finally:
        os.close(root_fd)
    return out


def _readlink_in(view, rel):
    for layer in view.lowers:
        try:
            st = _in_layer(layer, rel, os.lstat)
        except OSError:
            continue
        return _in_layer(layer, rel, os.readlink) if stat.S_ISLNK(st.st_mode) else None
    return None


def write_changes(root, changes, out) -> None:
    """A layer tar holding the given changes of the tree at root: added and
    modified entries as they are now, deletions as ``.wh.`` whiteouts."""
    kinds = {path.lstrip("/"): kind for kind, path in changes}
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_changes(root_fd, kinds, out)
    finally:
        os.close(root_fd)


def _write_changes(root_fd, kinds, out) -> None:
    """write_changes through fds: each entry's parent reached without
    following a symlink, a regular file opened O_PATH and read only once
    fstat says it is one (the container may be running)."""
    import tarfile

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(kinds):
            kind = kinds[rel]
            if kind == CHANGE_DELETE:
                parent, name = os.path.split(rel)
                info = tarfile.TarInfo(os.path.join(parent, layer_io.WHITEOUT_PREFIX + name))
                info.mode = 0
                tar.addfile(info)
                continue
            parent, name = os.path.split(rel)
            pfd = _open_dir_beneath(root_fd, parent)
            if pfd is None:
                continue
            try:
                _write_change(tar, pfd, name, rel)
            finally:
                os.close(pfd)


def _write_change(tar, pfd, name, rel) -> None:
    import tarfile

    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    path = f"/proc/self/fd/{pfd}/{name}"  # for the l*xattr calls only
    info = layer_io._tarinfo(rel, path, st, stat.S_ISDIR(st.st_mode))
    if stat.S_ISREG(st.st_mode):
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            with open(f"/proc/self/fd/{fd}", "rb") as f:
                info.size = os.fstat(f.fileno()).st_size
                tar.addfile(info, f)
        finally:
            os.close(fd)
        return
    if stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(name, dir_fd=pfd)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        return
    tar.addfile(info)


# -- the copying driver -------------------------------------------------------------

def flatten_layers(layer_dirs, dest) -> None:
    """Copy layers (base first) into dest as overlay would show them: a whiteout
    deletes, an opaque dir empties what is below, a later entry replaces an
    earlier one.  Never writes through a symlink: parents are processed before
    children, and a non-directory in the way of a directory is replaced."""
    is_root = os.geteuid() == 0
    for layer in layer_dirs:
        _copy_layer_dir(layer, dest, "", is_root)


def _copy_meta(src_st, dst, is_root, is_link) -> None:
    if is_root:
        os.lchown(dst, src_st.st_uid, src_st.st_gid)
    if not is_link:
        os.chmod(dst, stat.S_IMODE(src_st.st_mode))
    os.utime(dst, ns=(src_st.st_atime_ns, src_st.st_mtime_ns), follow_symlinks=False)


def _remove_tree(path) -> None:
    """shutil.rmtree(path, ignore_errors=True) without its recursion: an upper
    dir may hold a tree thousands of directories deep (a container's mkdir
    loop, a docker cp), which Python 3.11's rmtree fails on (RecursionError)
    -- the container was left Dead and could not be removed."""
    fstree.remove_tree(path, ignore_errors=True)


def _remove(path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        fstree.remove_tree(path)
    else:
        os.unlink(path)


def _copy_layer_dir(layer, dest, rel_dir, is_root) -> None:
    src_dir = os.path.join(layer, rel_dir) if rel_dir else layer
    dst_dir = os.path.join(dest, rel_dir) if rel_dir else dest
    if rel_dir and layer_io.is_opaque_dir(src_dir):
        for name in os.listdir(dst_dir):
            _remove(os.path.join(dst_dir, name))
    for name in sorted(os.listdir(src_dir)):
        src = os.path.join(src_dir, name)
        dst = os.path.join(dst_dir, name)
        st = os.lstat(src)
        if layer_io.is_overlay_whiteout(st):
            _remove(dst)
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                dst_st = os.lstat(dst)
                if not stat.S_ISDIR(dst_st.st_mode):
                    _remove(dst)
                    os.mkdir(dst, 0o755)
            except FileNotFoundError:
                os.mkdir(dst, 0o755)
            _copy_layer_dir(layer, dest, f"{rel_dir}/{name}" if rel_dir else name, is_root)
            for xname, value in layer_io._read_xattrs(src).items():
                try:
                    os.setxattr(dst, xname, value, follow_symlinks=False)
                except OSError:
                    pass
            _copy_meta(st, dst, is_root, False)
            continue
        _remove(dst)
        if stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dst, follow_symlinks=False)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dst)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(dst)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            os.mknod(dst, st.st_mode, st.st_rdev)
        else:
            continue
        for xname, value in layer_io._read_xattrs(src).items():
            try:
                os.setxattr(dst, xname, value, follow_symlinks=False)
            except OSError:
                pass
        _copy_meta(st, dst, is_root, stat.S_ISLNK(st.st_mode))


__all__ = ["Snapshots", "LowerView", "flatten_layers", "write_changes", "LayerError"]
