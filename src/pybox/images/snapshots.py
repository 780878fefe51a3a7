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

import contextlib
import json
import os
import shutil
import stat
import tarfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import IO, NamedTuple, NotRequired, TypedDict, TypeVar

from pybox.crashpoints import crashpoint
from pybox.errors import ImageError, LayerError, SyscallError
from pybox.images import layers as layer_io
from pybox.images.store import FileLock, Readable, chain_ids, digest_hex, storage_error
from pybox.linux import fstree
from pybox.linux import idmap as idmapping
from pybox.linux.syscalls import Syscalls, real
from pybox.oci.state import validate_id, write_atomic

MOUNT_SOURCE = "pybox-overlay"
SHORT_LINK_LENGTH = 20
MAX_MOUNT_DATA = 4000  # the kernel copies one page of mount options
DRIVER_OVERLAY = "overlay"
DRIVER_COPY = "copy"

# docker's change kinds, as GET /containers/ID/changes returns them
CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2
CHANGE_LETTERS = {CHANGE_MODIFY: "C", CHANGE_ADD: "A", CHANGE_DELETE: "D"}

T = TypeVar("T")

class IdMap(TypedDict):
    """A rootfs's id maps (``pyboxd --userns-remap``), as rootfs.json keeps
    them: rows of [container id, host id, size], as in /proc/PID/uid_map."""

    uid: list[list[int]]
    gid: list[list[int]]


class LayerInfo(TypedDict):
    """layers/CHAIN_HEX/layer.json."""

    chain_id: str
    diff_id: str
    parent: str      # the parent layer's chain-id, "" for a base layer
    size: int        # bytes of file content
    tar_size: int    # bytes of the uncompressed tar (its diff-id's length)
    link: str        # the short name under l/


class RootfsInfo(TypedDict):
    """containers/ID/rootfs.json."""

    id: str
    image: str
    chain_ids: list[str]
    driver: str      # DRIVER_OVERLAY or DRIVER_COPY
    idmap: NotRequired[IdMap]


class Change(NamedTuple):
    """One line of docker diff: kind CHANGE_MODIFY/ADD/DELETE, path '/etc/x'."""

    kind: int
    path: str


def _chain(parent_chain_id: str | None, diff_id: str) -> str:
    return chain_ids([parent_chain_id, diff_id])[1] if parent_chain_id else diff_id


def _mappings(rows: Iterable[Sequence[int]]) -> list[tuple[int, int, int]]:
    """rootfs.json's [container, host, size] rows as the (c, h, n) tuples idmap takes."""
    return [(row[0], row[1], row[2]) for row in rows]


def _owner_map(idmap: IdMap | None) -> layer_io.OwnerMap | None:
    """host (uid, gid) -> the container's, for an idmapped rootfs (else None)."""
    if not idmap:
        return None
    uids, gids = _mappings(idmap["uid"]), _mappings(idmap["gid"])

    def back(mappings: list[tuple[int, int, int]], value: int) -> int:
        inside = idmapping.map_id(mappings, value, to_host=False)
        return idmapping.OVERFLOW_ID if inside is None else inside

    return lambda uid, gid: (back(uids, uid), back(gids, gid))


def _mapped_root(mappings: list[tuple[int, int, int]]) -> int:
    """The host id of the container's root (0) under ``mappings``."""
    host = idmapping.map_id(mappings, 0)
    if host is None:
        raise ImageError("--userns-remap: the id maps do not map the container's root")
    return host


def _allow_traversal(path: str) -> None:
    mode = os.stat(path).st_mode
    if not mode & 0o001:
        os.chmod(path, stat.S_IMODE(mode) | 0o001)


def overlay_supported() -> bool:
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1] == "overlay" for line in f if line.strip())
    except OSError:
        return False


class Snapshots:
    """The layers/, l/ and containers/ parts of the store (see the module's map)."""

    def __init__(self, root: str, syscalls: Syscalls | None = None,
                 driver: str | None = None) -> None:
        self.root = root
        self.layers_dir = os.path.join(root, "layers")
        self.links_dir = os.path.join(root, "l")
        self.containers_dir = os.path.join(root, "containers")
        self.locks = os.path.join(root, "locks")
        self.ingest = os.path.join(root, "ingest")
        for d in (self.layers_dir, self.links_dir, self.containers_dir, self.locks):
            os.makedirs(d, mode=0o700, exist_ok=True)
        self._syscalls = syscalls
        self._userns_fds: dict[str, int] = {}
        self.driver = driver or (DRIVER_OVERLAY if overlay_supported() else DRIVER_COPY)

    @property
    def sys(self) -> Syscalls:
        if self._syscalls is None:
            self._syscalls = real()
        return self._syscalls

    # -- layers ----------------------------------------------------------------
    def layer_dir(self, chain_id: str) -> str:
        return os.path.join(self.layers_dir, digest_hex(chain_id))

    def diff_dir(self, chain_id: str) -> str:
        return os.path.join(self.layer_dir(chain_id), "diff")

    def has_layer(self, chain_id: str) -> bool:
        return os.path.exists(os.path.join(self.layer_dir(chain_id), "layer.json"))

    def layer_info(self, chain_id: str) -> LayerInfo:
        try:
            with open(os.path.join(self.layer_dir(chain_id), "layer.json"), "rb") as f:
                info: LayerInfo = json.loads(f.read())
                return info
        except FileNotFoundError:
            raise ImageError(f"layer {chain_id} is not in the store", errno=2) from None

    def all_layers(self) -> set[str]:
        return {"sha256:" + n for n in os.listdir(self.layers_dir)
                if not n.startswith(".")}

    def ensure_layer(self, parent_chain_id: str | None, diff_id: str | None,
                     open_blob: Callable[[], AbstractContextManager[Readable]],
                     allow_devices: bool = True) -> LayerInfo:
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

    def _layer_lock(self, chain_id: str) -> str:
        return os.path.join(self.locks, f"layer-{digest_hex(chain_id)}")

    def _unpack_and_place(self, parent_chain_id: str | None, diff_id: str | None,
                          open_blob: Callable[[], AbstractContextManager[Readable]],
                          allow_devices: bool) -> LayerInfo:
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
            info: LayerInfo = {"chain_id": chain_id, "diff_id": result.diff_id,
                               "parent": parent_chain_id or "", "size": result.size,
                               "tar_size": result.tar_size, "link": hexid[:SHORT_LINK_LENGTH]}
            write_atomic(os.path.join(tmp, "layer.json"), json.dumps(info, indent=1),
                         mode=0o644, durable=False)
            crashpoint("images.layer.unpacked")
            final = self.layer_dir(chain_id)
            # with a diff-id the caller holds the layer's lock; without, it is
            # only known now
            lock = (contextlib.nullcontext() if diff_id is not None
                    else FileLock(self._layer_lock(chain_id)))
            with lock:
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
            return info
        except BaseException as e:
            _remove_tree(tmp)
            if isinstance(e, OSError) and not isinstance(e, ImageError):
                raise storage_error(f"unpacking layer {diff_id or ''}".rstrip(), e) from None
            raise

    def remove_layer(self, chain_id: str) -> None:
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
    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.containers_dir, validate_id(container_id))

    def rootfs_path(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), "merged")

    def container_info(self, container_id: str) -> RootfsInfo:
        try:
            with open(os.path.join(self.container_dir(container_id), "rootfs.json"),
                      "rb") as f:
                info: RootfsInfo = json.loads(f.read())
                return info
        except FileNotFoundError:
            raise ImageError(f"container {container_id!r} has no rootfs", errno=2) from None

    def containers(self) -> dict[str, RootfsInfo]:
        """{container id: rootfs.json} of every prepared rootfs."""
        out: dict[str, RootfsInfo] = {}
        for name in os.listdir(self.containers_dir):
            try:
                with open(os.path.join(self.containers_dir, name, "rootfs.json"),
                          "rb") as f:
                    out[name] = json.loads(f.read())
            except (OSError, ValueError):
                continue
        return out

    def is_mounted(self, container_id: str) -> bool:
        return os.path.ismount(self.rootfs_path(container_id))

    def prepare(self, container_id: str, image_id: str, chain_ids: Sequence[str],
                idmap: IdMap | None = None) -> str:
        """Create the container's writable layer and mount its rootfs; returns the
        path.  Preparing again (after a reboot or unmount) re-mounts the same
        upper dir.  On failure nothing is left mounted or created.

        ``idmap`` ({"uid": [[container, host, size], ...], "gid": [...]}, for
        ``pyboxd --userns-remap``) shows the image's layers through idmapped
        mounts, owned by the container's remapped root, and gives the writable
        layer to that root; the layers themselves are never chowned."""
        cdir = self.container_dir(container_id)
        if os.path.exists(os.path.join(cdir, "rootfs.json")):
            existing = self.container_info(container_id)
            if existing["image"] != image_id:
                raise ImageError(f"container {container_id!r} already has a rootfs from "
                                 f"image {existing['image']}")
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
                    os.chown(os.path.join(cdir, "upper"),
                             _mapped_root(_mappings(idmap["uid"])),
                             _mapped_root(_mappings(idmap["gid"])))
            if idmap is not None:
                # the runtime mounts the rootfs from inside the container's user
                # namespace, as a uid with no privilege over our directories: it
                # must be able to pass through them (docker's 0701 data dirs)
                for d in (self.root, self.containers_dir, cdir):
                    _allow_traversal(d)
            info: RootfsInfo = {"id": container_id, "image": image_id,
                                "chain_ids": list(chain_ids), "driver": driver}
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

    def _overlay_data(self, cdir: str, chain_ids: Sequence[str],
                      lowers: Sequence[str] | None = None) -> str:
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

    def _mount_overlay(self, cdir: str, chain_ids: Sequence[str],
                       idmap: IdMap | None = None) -> None:
        if idmap is not None:
            self._mount_idmapped_overlay(cdir, chain_ids, idmap)
            return
        self.sys.mount(MOUNT_SOURCE, os.path.join(cdir, "merged"), "overlay", 0,
                       self._overlay_data(cdir, chain_ids))

    def _mount_idmapped_overlay(self, cdir: str, chain_ids: Sequence[str], idmap: IdMap) -> None:
        """Overlay over idmapped clones of the layers.  The clones are detached
        mounts named by /proc/self/fd/N (overlay clones them privately, so they
        vanish when the fds close); kernels that refuse detached layers get them
        attached below the container dir for the time of the mount instead."""
        if not chain_ids:
            self._mount_overlay(cdir, chain_ids)
            return
        userns = self._idmap_userns(idmap)
        fds: list[int] = []
        staged: list[str] = []
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

    def _idmap_userns(self, idmap: IdMap) -> int:
        """One user namespace fd per distinct idmap, kept for the process's life."""
        key = json.dumps(idmap, sort_keys=True)
        cache = self._userns_fds
        if key not in cache:
            cache[key] = idmapping.user_namespace_fd(_mappings(idmap["uid"]),
                                                     _mappings(idmap["gid"]))
        return cache[key]

    def _umount(self, path: str) -> None:
        try:
            self.sys.umount2(path, 0)
        except SyscallError as e:
            if e.errno == 16:  # EBUSY: still in use (a running container)
                raise ImageError(f"{path} is busy: a container still uses it",
                                 errno=e.errno) from None
            if e.errno != 22:  # EINVAL: not mounted
                raise

    def mount(self, container_id: str) -> str:
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

    def unmount(self, container_id: str) -> None:
        """Unmount (the upper dir stays: a stopped container keeps its changes)."""
        if self.is_mounted(container_id):
            self._umount(self.rootfs_path(container_id))

    def release(self, container_id: str) -> bool:
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
    def lower_dirs(self, container_id: str) -> list[str]:
        """The image's layer dirs, top first."""
        info = self.container_info(container_id)
        return [self.diff_dir(c) for c in reversed(info["chain_ids"])]

    def changes(self, container_id: str) -> list[Change]:
        """docker diff: [(kind, '/path')] sorted by path, kind 0=C, 1=A, 2=D."""
        info = self.container_info(container_id)
        view = LowerView(self.lower_dirs(container_id))
        cdir = self.container_dir(container_id)
        if info["driver"] == DRIVER_OVERLAY:
            out = _overlay_changes(os.path.join(cdir, "upper"), view)
        else:
            out = _tree_changes(os.path.join(cdir, "merged"), view)
        return sorted(out, key=lambda c: c.path)

    def write_layer(self, container_id: str, out: IO[bytes]) -> None:
        """The container's changes as a layer tar (for commit)."""
        info = self.container_info(container_id)
        cdir = self.container_dir(container_id)
        if info["driver"] == DRIVER_OVERLAY:
            layer_io.write_tree(os.path.join(cdir, "upper"), out, overlay_whiteouts=True,
                                owner_map=_owner_map(info.get("idmap")))
        else:
            write_changes(os.path.join(cdir, "merged"), self.changes(container_id), out)

    def export(self, container_id: str, out: IO[bytes]) -> None:
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

    def __init__(self, lower_dirs: list[str]) -> None:
        self.lowers = lower_dirs

    def lookup(self, rel: str) -> os.stat_result | None:
        """lstat of the visible entry at rel ('' = root), or None."""
        parts = rel.split("/") if rel else []
        for layer in self.lowers:
            if not parts:
                return os.lstat(layer)
            opaque_above = False
            st = None
            for i, _part in enumerate(parts):
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

    def listdir(self, rel: str) -> set[str]:
        """Names visible in directory rel (union over layers, minus whiteouts)."""
        names: dict[str, bool] = {}
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
                opaque = layer_io.is_opaque_fd(fd)
            finally:
                os.close(fd)
            if opaque:
                break
        return {n for n, visible in names.items() if visible}


def _in_layer(layer: str, rel: str, call: Callable[[str], T]) -> T:
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


def _same_meta(a: os.stat_result, b: os.stat_result) -> bool:
    return (stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode) and a.st_mode == b.st_mode
            and a.st_uid == b.st_uid and a.st_gid == b.st_gid
            and a.st_mtime_ns // 10**9 == b.st_mtime_ns // 10**9
            and (stat.S_ISDIR(a.st_mode) or a.st_size == b.st_size))


def _open_dir_beneath(root_fd: int, rel: str) -> int | None:
    """An fd of directory ``rel`` below ``root_fd`` reached without following
    any symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), or None when
    it is not one any more: a running container may swap a directory for a
    link to / while we list it, and the host's names must not show up."""
    try:
        return fstree.open_beneath(root_fd, rel, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def _overlay_changes(upper: str, view: LowerView) -> list[Change]:
    """docker diff of an overlay container.  As moby's archive.changes: a
    directory that was only copied up (same metadata as below) is no change of
    its own, but the parent of an added or deleted entry always is one ("C
    /bin" for "D /bin/vi"), whatever the timestamps say -- a delete in the
    second the image's files were dated showed no change of the directory."""
    out: list[Change] = []
    changed_dirs = set()

    def record(kind: int, rel: str) -> None:
        out.append(Change(kind, "/" + rel))
        changed_dirs.add(rel)
        if kind != CHANGE_MODIFY:
            parent = os.path.dirname(rel)
            if parent and parent not in changed_dirs:
                out.append(Change(CHANGE_MODIFY, "/" + parent))
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
            if rel and entry.fd is not None and layer_io.is_opaque_fd(entry.fd):
                for gone in sorted(view.listdir(rel) - set(entry.names())):
                    record(CHANGE_DELETE, f"{rel}/{gone}")
    finally:
        os.close(upper_fd)
    return out


def _tree_changes(root: str, view: LowerView) -> list[Change]:
    """Changes of a flattened copy against the image (the copying driver)."""
    out: list[Change] = []

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
                    out.append(Change(CHANGE_ADD, "/" + rel))
                elif not _same_meta(st, below) or (
                        stat.S_ISLNK(st.st_mode) and link != _readlink_in(view, rel)):
                    out.append(Change(CHANGE_MODIFY, "/" + rel))
                if entry.fd is not None and below is not None and stat.S_ISDIR(below.st_mode):
                    below_dirs.add(rel)
            if entry.fd is not None and rel in below_dirs:
                below_dirs.discard(rel)
                for gone in sorted(view.listdir(rel) - set(entry.names())):
                    out.append(Change(CHANGE_DELETE, "/" + (f"{rel}/{gone}" if rel else gone)))
    finally:
        os.close(root_fd)
    return out


def _readlink_in(view: LowerView, rel: str) -> str | None:
    for layer in view.lowers:
        try:
            st = _in_layer(layer, rel, os.lstat)
        except OSError:
            continue
        return _in_layer(layer, rel, os.readlink) if stat.S_ISLNK(st.st_mode) else None
    return None


def write_changes(root: str, changes: Iterable[Change], out: IO[bytes]) -> None:
    """A layer tar holding the given changes of the tree at root: added and
    modified entries as they are now, deletions as ``.wh.`` whiteouts."""
    kinds = {path.lstrip("/"): kind for kind, path in changes}
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _write_changes(root_fd, kinds, out)
    finally:
        os.close(root_fd)


def _write_changes(root_fd: int, kinds: dict[str, int], out: IO[bytes]) -> None:
    """write_changes through fds: each entry's parent reached without
    following a symlink, a regular file opened O_PATH and read only once
    fstat says it is one (the container may be running)."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(kinds):
            kind = kinds[rel]
            parent, name = os.path.split(rel)
            if kind == CHANGE_DELETE:
                info = tarfile.TarInfo(os.path.join(parent, layer_io.WHITEOUT_PREFIX + name))
                info.mode = 0
                tar.addfile(info)
                continue
            pfd = _open_dir_beneath(root_fd, parent)
            if pfd is None:
                continue
            try:
                try:
                    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                layer_io.add_entry(tar.addfile, pfd, name, rel, st)
            finally:
                os.close(pfd)


# -- the copying driver -------------------------------------------------------------

def flatten_layers(layer_dirs: Iterable[str], dest: str) -> None:
    """Copy layers (base first) into dest as overlay would show them: a whiteout
    deletes, an opaque dir empties what is below, a later entry replaces an
    earlier one.  Never writes through a symlink: every entry is reached from
    its parent's fd (parents are processed before children, and a
    non-directory in the way of a directory is replaced).  Iterative and
    fd-relative, as linux/fstree: a layer may be thousands of directories
    deep (a container's mkdir loop, committed) and deeper than PATH_MAX."""
    is_root = os.geteuid() == 0
    dest_fd = os.open(dest, fstree.DIR_FLAGS)
    try:
        for layer in layer_dirs:
            layer_fd = os.open(layer, fstree.DIR_FLAGS)
            try:
                _copy_layer(layer_fd, dest_fd, is_root)
            finally:
                os.close(layer_fd)
    finally:
        os.close(dest_fd)


class _PendingDir(NamedTuple):
    """A directory copied into dest whose own metadata is set once everything
    under it is copied (its mtime would move with each child otherwise)."""

    depth: int
    fd: int
    st: os.stat_result
    xattrs: dict[str, bytes]


def _copy_layer(layer_fd: int, dest_fd: int, is_root: bool) -> None:
    """One layer over dest, walked depth first with fstree.walk; ``pending``
    holds the dest fds of the directories the walk is inside (dest_fd at
    depth 0), each finished when the walk leaves its subtree."""
    pending = [_PendingDir(0, dest_fd, os.fstat(dest_fd), {})]
    try:
        for entry in fstree.walk(layer_fd, on_error=_raise):
            if not entry.rel:
                continue
            while pending[-1].depth >= entry.depth:
                _finish_dir(pending.pop(), is_root)
            dst_pfd, src_pfd, name, st = pending[-1].fd, entry.parent_fd, entry.name, entry.st
            assert src_pfd is not None  # only the walk's top has none
            if layer_io.is_overlay_whiteout(st):
                _remove_at(dst_pfd, name)
                continue
            xattrs = layer_io.read_xattrs(f"/proc/self/fd/{src_pfd}/{name}")
            if entry.fd is not None:
                pending.append(_PendingDir(entry.depth, _ensure_dir_at(dst_pfd, name), st,
                                           xattrs))
                if layer_io.is_opaque_fd(entry.fd):
                    for below in os.listdir(pending[-1].fd):
                        _remove_at(pending[-1].fd, below)
                continue
            if stat.S_ISDIR(st.st_mode):
                continue  # a directory the walk could not open (gone meanwhile)
            _remove_at(dst_pfd, name)
            if not _copy_entry(src_pfd, dst_pfd, name, st):
                continue
            _set_xattrs(f"/proc/self/fd/{dst_pfd}/{name}", xattrs)
            if is_root:
                os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_pfd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_pfd)
            os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_pfd,
                     follow_symlinks=False)
        while len(pending) > 1:
            _finish_dir(pending.pop(), is_root)
    finally:
        for left in pending[1:]:  # an error: close what is still open
            os.close(left.fd)


def _raise(entry: fstree.Entry, error: OSError) -> None:
    raise error


def _ensure_dir_at(pfd: int, name: str) -> int:
    """dest's directory ``name`` (made 0755 if missing, replacing a
    non-directory), opened without following anything."""
    try:
        if not stat.S_ISDIR(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode):
            _remove_at(pfd, name)
            os.mkdir(name, 0o755, dir_fd=pfd)
    except FileNotFoundError:
        os.mkdir(name, 0o755, dir_fd=pfd)
    return os.open(name, fstree.DIR_FLAGS, dir_fd=pfd)


def _finish_dir(done: _PendingDir, is_root: bool) -> None:
    """A copied directory's xattrs, owner, mode and times (children all in)."""
    try:
        _set_xattrs(f"/proc/self/fd/{done.fd}", done.xattrs)
        if is_root:
            os.fchown(done.fd, done.st.st_uid, done.st.st_gid)
        os.fchmod(done.fd, stat.S_IMODE(done.st.st_mode))
        os.utime(done.fd, ns=(done.st.st_atime_ns, done.st.st_mtime_ns))
    finally:
        os.close(done.fd)


def _copy_entry(src_pfd: int, dst_pfd: int, name: str, st: os.stat_result) -> bool:
    """Make the non-directory ``name`` in dest as it is in the layer; False
    for what a layer cannot hold (a socket)."""
    if stat.S_ISREG(st.st_mode):
        shutil.copyfile(f"/proc/self/fd/{src_pfd}/{name}", f"/proc/self/fd/{dst_pfd}/{name}",
                        follow_symlinks=False)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=src_pfd), name, dir_fd=dst_pfd)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(name, dir_fd=dst_pfd)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst_pfd)
    else:
        return False
    return True


def _set_xattrs(path: str, xattrs: dict[str, bytes]) -> None:
    for xname, value in xattrs.items():
        try:
            os.setxattr(path, xname, value, follow_symlinks=False)
        except OSError:
            pass


def _remove_tree(path: str) -> None:
    """shutil.rmtree(path, ignore_errors=True) without its recursion: an upper
    dir may hold a tree thousands of directories deep (a container's mkdir
    loop, a docker cp), which Python 3.11's rmtree fails on (RecursionError)
    -- the container was left Dead and could not be removed."""
    fstree.remove_tree(path, ignore_errors=True)


def _remove_at(pfd: int, name: str) -> None:
    """Remove dest's entry ``name`` (a directory with all below it), if any."""
    try:
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        fstree.remove_tree_at(pfd, name)
    else:
        os.unlink(name, dir_fd=pfd)


__all__ = ["Snapshots", "LowerView", "flatten_layers", "write_changes", "LayerError"]
