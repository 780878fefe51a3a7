"""``Images``: the one object the engine holds for everything about images.

    images = Images.open("/var/lib/pybox", container_running=engine.is_running)
    image_id = images.load(open("busybox.tar", "rb"))[0]["Id"]
    rootfs = images.prepare_rootfs(container_id, "busybox")  # one overlay mount
    ...                                                     # runtime runs it
    images.release_rootfs(container_id)                     # at docker rm

Every method that changes the store is safe to call from several threads and
processes at once (see store.py for the locks), and either completes or leaves
the store as it was: content is written and verified first, the image record and
tags last; on any failure a garbage collection under the exclusive lock removes
what the failed call added and nobody references.

Return values are docker's API shapes (``GET /images/json``, ``/images/ID/json``,
``/images/ID/history``, ``DELETE /images/ID``, ``POST /images/prune``,
``GET /containers/ID/changes``), so the API layer passes them through.
"""

import builtins
import contextlib
import fnmatch
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Self

from pybox.crashpoints import crashpoint
from pybox.errors import ImageError, ImageInUse, ImageNotFound, NotFound
from pybox.formats.times import rfc3339_nano_fixed
from pybox.images import archive, importer
from pybox.images import config as image_config
from pybox.images import reference as references
from pybox.images import store as st
from pybox.images.snapshots import CHANGE_DELETE, CHANGE_LETTERS, IdMap, LayerInfo, Snapshots
from pybox.linux import fstree
from pybox.locations import DEFAULT_DATA_ROOT

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

    from pybox.linux.syscalls import Syscalls

UNPACK_THREADS = max(2, min(4, os.cpu_count() or 1))

# docker's API documents (GET /images/json entries, inspect, history, delete
# and prune results): passed through to the API as they are
DockerDoc = dict[str, Any]
# docker's filters: {"dangling": ["true"], "reference": ["busy*"], ...}
Filters = dict[str, list[str]]
PathOrFile = str | os.PathLike[str]


class LayerUser(NamedTuple):
    """Who holds a layer: kind 'image' (an image Id) or 'container' (its id)."""

    kind: str
    id: str


class RootfsSize(NamedTuple):
    """docker ps -s / inspect --size: SizeRw (what the container wrote) and
    SizeRootFs (that plus its image)."""

    rw: int
    total: int


class Images:
    def __init__(self, data_root: str = DEFAULT_DATA_ROOT, *, syscalls: "Syscalls | None" = None,
                 driver: str | None = None, allow_device_nodes: bool = True,
                 container_running: Callable[[str], bool] | None = None) -> None:
        """``container_running(container_id) -> bool`` lets removal tell a running
        container (a conflict even with force) from a stopped one; without it
        every container is treated as stopped.  ``driver``: 'overlay' or 'copy'
        (default: overlay when the kernel has it)."""
        self.data_root = data_root
        self.root = os.path.join(data_root, "images")
        try:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            self.store = st.ImageStore(self.root)
            self.snapshots = Snapshots(self.root, syscalls=syscalls, driver=driver)
        except OSError as e:
            raise st.storage_error(f"opening the image store at {self.root}", e) from None
        self.blobs = self.store.blobs
        self.allow_device_nodes = allow_device_nodes
        self.container_running = container_running or (lambda cid: False)

    @classmethod
    def open(cls, data_root: str = DEFAULT_DATA_ROOT, *, syscalls: "Syscalls | None" = None,
             driver: str | None = None, allow_device_nodes: bool = True,
             container_running: Callable[[str], bool] | None = None) -> Self:
        """Open (creating if needed) the store and clean what a crash left behind:
        temp files, half-unpacked layers, unreferenced content."""
        images = cls(data_root, syscalls=syscalls, driver=driver,
                     allow_device_nodes=allow_device_nodes, container_running=container_running)
        images.collect_garbage()
        return images

    # -- lookups -----------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """Image Id for a name[:tag], name@digest or (short) Id; ImageNotFound."""
        return self.store.resolve(ref)

    def record(self, ref: str) -> st.ImageRecord:
        return self.store.get_record(self.resolve(ref))

    def config(self, ref: str) -> DockerDoc:
        """The image's OCI config (dict): what the engine needs to create a
        container (config.Cmd, Entrypoint, Env, WorkingDir, User, StopSignal...)."""
        config: DockerDoc = self.blobs.read_json(self.record(ref)["config"]["digest"])
        return config

    def size(self, record: st.ImageRecord) -> int:
        return sum(self._layer_size(layer["chain_id"]) for layer in record["layers"])

    def _layer_size(self, chain_id: str) -> int:
        try:
            return self.snapshots.layer_info(chain_id)["size"]
        except ImageError:
            return 0

    def _tags_and_digests(self, image_id: str, refs: dict[str, str]
                          ) -> tuple[list[str], list[str]]:
        tags: list[str] = []
        digests: list[str] = []
        for ref_text in self.store.refs_of(image_id, refs):
            ref = references.parse(ref_text)
            (digests if ref.digest else tags).append(ref.familiar())
        return tags, digests

    def _containers_using(self, image_id: str) -> list[str]:
        return sorted(cid for cid, info in self.snapshots.containers().items()
                      if info.get("image") == image_id)

    def list(self, *, all: bool = False, filters: Filters | None = None) -> list[DockerDoc]:
        """GET /images/json.  ``filters``: docker's {"dangling": ["true"],
        "reference": ["busy*"], "label": ["k=v"], "before"/"since": [ref]}."""
        filters = filters or {}
        refs = self.store.load_refs()
        records = self.store.records()
        parents = {r.get("parent") for r in records if r.get("parent")}
        out = []
        for record in records:
            image_id = record["id"]
            tags, digests = self._tags_and_digests(image_id, refs)
            if not all and not tags and not digests and image_id in parents:
                continue  # an intermediate image (a committed image's parent)
            patterns = filters.get("reference", [])
            if patterns:
                # as docker: only the image's names that match are listed (one
                # image tagged a:1 and b:1 shows just b:1 for `docker images b`)
                tags = [t for t in tags if _reference_matches(t, patterns)]
                digests = [d for d in digests if _reference_matches(d, patterns)]
                if not tags and not digests:
                    continue
            config = self.blobs.read_json(record["config"]["digest"])
            summary: DockerDoc = {
                "Containers": -1,
                "Created": int(st.parse_rfc3339(config.get("created"))),
                "Id": image_id,
                "Labels": (config.get("config") or {}).get("Labels") or {},
                "ParentId": record.get("parent", ""),
                "RepoDigests": digests,
                "RepoTags": tags,
                "SharedSize": -1,
                "Size": self.size(record),
            }
            if self._matches(summary, filters, refs):
                out.append(summary)
        out.sort(key=lambda s: s["Created"], reverse=True)
        return out

    def _matches(self, summary: DockerDoc, filters: Filters, refs: dict[str, str]) -> bool:
        for value in filters.get("dangling", []):
            dangling = not summary["RepoTags"]
            if (value.lower() in ("true", "1")) != dangling:
                return False
        for label in filters.get("label", []):
            key, sep, value = label.partition("=")
            have = summary["Labels"]
            if key not in have or (sep and have[key] != value):
                return False
        for key, keep_older in (("before", True), ("since", False)):
            for ref in filters.get(key, []):
                other = self.config(ref)
                pivot = int(st.parse_rfc3339(other.get("created")))
                if keep_older and not summary["Created"] < pivot:
                    return False
                if not keep_older and not summary["Created"] > pivot:
                    return False
        return True

    def inspect(self, ref: str) -> DockerDoc:
        """GET /images/NAME/json: docker's image inspect document."""
        image_id = self.resolve(ref)
        record = self.store.get_record(image_id)
        config = self.blobs.read_json(record["config"]["digest"])
        tags, digests = self._tags_and_digests(image_id, self.store.load_refs())
        lowers = [self.snapshots.diff_dir(layer["chain_id"])
                  for layer in reversed(record["layers"])]
        out: DockerDoc = {
            "Id": image_id,
            "RepoTags": tags,
            "RepoDigests": digests,
            "Parent": record.get("parent", ""),
            "Comment": config.get("comment", ""),
            "Created": config.get("created", ""),
            "DockerVersion": config.get("docker_version", ""),
            "Author": config.get("author", ""),
            "Config": image_config.docker_container_config(config.get("config")),
            "Architecture": config.get("architecture", ""),
        }
        if config.get("variant"):
            out["Variant"] = config["variant"]
        out.update({
            "Os": config.get("os", ""),
            "Size": self.size(record),
            "GraphDriver": {"Name": "overlay2" if self.snapshots.driver == "overlay"
                            else "vfs",
                            "Data": {"LowerDir": ":".join(lowers[1:]) or None,
                                     "UpperDir": lowers[0] if lowers else None}},
            "RootFS": {"Type": "layers",
                       "Layers": [layer["diff_id"] for layer in record["layers"]]},
            # never tagged: Go's zero time, as dockerd (the docker CLI cannot parse "")
            "Metadata": {"LastTagTime": record.get("last_tag_time", "0001-01-01T00:00:00Z")},
        })
        if out["GraphDriver"]["Data"]["LowerDir"] is None:
            del out["GraphDriver"]["Data"]["LowerDir"]
        return out

    def history(self, ref: str) -> builtins.list[DockerDoc]:
        """GET /images/NAME/history: newest first; the top entry carries the Id
        and the tags, the next ones those of its parents (a build's steps), the
        rest ``<missing>`` as docker shows for loaded images."""
        image_id = self.resolve(ref)
        record = self.store.get_record(image_id)
        config = self.blobs.read_json(record["config"]["digest"])
        history = list(config.get("history") or [])
        layer_sizes = [self._layer_size(layer["chain_id"]) for layer in record["layers"]]
        if not history:
            history = [{"created": config.get("created", "")} for _ in layer_sizes]
        entries, layer_index = [], 0
        for item in history:
            size = 0
            if not item.get("empty_layer"):
                size = layer_sizes[layer_index] if layer_index < len(layer_sizes) else 0
                layer_index += 1
            entries.append({"Id": "<missing>",
                            "Created": int(st.parse_rfc3339(item.get("created"))),
                            "CreatedBy": item.get("created_by", ""), "Tags": None,
                            "Size": size, "Comment": item.get("comment", "")})
        entries.reverse()
        # as moby's ImageHistory: the entries get the Ids of the image and its
        # parents (a build's intermediate images), one each, while the chain lasts
        refs = self.store.load_refs()
        current: str = image_id
        for entry in entries:
            entry["Id"] = current
            entry["Tags"] = self._tags_and_digests(current, refs)[0] or None
            current = self.store.get_record(current).get("parent", "") \
                if self.store.has_record(current) else ""
            if not current or not self.store.has_record(current):
                break
        return entries

    def layer_users(self, chain_id: str) -> builtins.list[LayerUser]:
        """Who holds a layer: ('image', Id) and ('container', id) pairs.  The
        layer is deleted when this becomes empty (its reference count)."""
        users: builtins.list[LayerUser] = []
        for record in self.store.records():
            if any(chain_id == layer["chain_id"] for layer in record["layers"]):
                users.append(LayerUser("image", record["id"]))
        for cid, info in self.snapshots.containers().items():
            if chain_id in info.get("chain_ids", []):
                users.append(LayerUser("container", cid))
        return users

    # -- tags, removal, garbage ----------------------------------------------------
    def tag(self, source: str, target: str) -> None:
        """docker tag SOURCE TARGET: TARGET (latest when untagged) now names the
        image; a tag moved away leaves its old image dangling, as in docker."""
        target_ref = references.parse(target)
        if target_ref.digest:
            raise ImageError("refusing to create a tag with a digest reference")
        with self.store.meta_lock():
            image_id = self.resolve(source)
            record = self.store.get_record(image_id)
            refs = self.store.load_refs()
            if refs.get(str(target_ref)) != image_id:  # (a rebuild's tag: unchanged)
                refs[str(target_ref)] = image_id
                self.store.save_refs(refs)
            record["last_tag_time"] = rfc3339_nano_fixed()
            self.store.put_record(record)

    def remove(self, ref: str, *, force: bool = False) -> builtins.list[DockerDoc]:
        """DELETE /images/NAME, with docker's rules and messages:
        by name, with other names left: untag only; otherwise the image goes,
        unless a container uses it (a stopped one: needs force; a running one:
        never) or, by Id, several repositories name it (needs force).  Returns
        docker's [{"Untagged": ...}, {"Deleted": ...}] list."""
        with self.store.gc_lock(shared=False):
            image_id = self.resolve(ref)
            short = image_id[len("sha256:"):][:12]
            with self.store.meta_lock():
                refs = self.store.load_refs()
                image_refs = self.store.refs_of(image_id, refs)
                by_name = None
                try:
                    parsed = str(references.parse(ref))
                    if refs.get(parsed) == image_id:
                        by_name = parsed
                except ImageError:
                    pass
                users = self._containers_using(image_id)
                running = [c for c in users if self.container_running(c)]
                if by_name:
                    dropped = _names_going_with(by_name, image_refs)
                    if len(dropped) < len(image_refs):  # other names stay: untag only
                        for ref_text in dropped:
                            del refs[ref_text]
                        self.store.save_refs(refs)
                        return [{"Untagged": references.parse(r).familiar()}
                                for r in dropped]
                if by_name and users and not force:
                    raise ImageInUse(f'conflict: unable to remove repository reference '
                                     f'"{ref}" (must force) - container {users[0][:12]} '
                                     f'is using its referenced image {short}')
                if not by_name and len(image_refs) > 1 and not force:
                    raise ImageInUse(f"conflict: unable to delete {short} (must be forced)"
                                     " - image is referenced in multiple repositories")
                if running:
                    raise ImageInUse(f"conflict: unable to delete {short} (cannot be "
                                     "forced) - image is being used by running container "
                                     f"{running[0][:12]}")
                if users and not force:
                    raise ImageInUse(f"conflict: unable to delete {short} (must be forced)"
                                     " - image is being used by stopped container "
                                     f"{users[0][:12]}")
                result: list[DockerDoc] = []
                for ref_text in image_refs:
                    del refs[ref_text]
                    result.append({"Untagged": references.parse(ref_text).familiar()})
                self.store.save_refs(refs)
                self.store.delete_record(image_id)
                crashpoint("images.remove.deleted")
                result.append({"Deleted": image_id})
            self._collect_locked()
        return result

    def prune(self, *, all: bool = False, filters: Filters | None = None,
              keep: Callable[[DockerDoc], bool] | None = None) -> DockerDoc:
        """POST /images/prune: dangling images (or, with ``all``, every image no
        container uses) are removed; returns ImagesDeleted and SpaceReclaimed.
        ``keep(summary)`` spares more (the prune-only filters, until and label!)."""
        before = self._disk_usage()
        deleted: list[DockerDoc] = []
        used = {info.get("image") for info in self.snapshots.containers().values()}
        for summary in self.list(all=True, filters=filters):
            if summary["Id"] in used or (summary["RepoTags"] and not all):
                continue
            if keep is not None and keep(summary):
                continue
            try:
                deleted.extend(self.remove(summary["Id"], force=True))
            except ImageError:
                continue
        return {"ImagesDeleted": deleted or None,
                "SpaceReclaimed": max(0, before - self._disk_usage())}

    def _disk_usage(self) -> int:
        total = 0
        for top in (self.blobs.dir, self.snapshots.layers_dir):
            try:
                fd = os.open(top, fstree.DIR_FLAGS)
            except OSError:
                continue
            try:  # iterative and fd-relative: a layer may be deeper than PATH_MAX
                total += sum(e.st.st_blocks * 512 for e in fstree.walk(fd) if e.fd is None)
            finally:
                os.close(fd)
        return total

    def collect_garbage(self) -> None:
        """Remove layers and blobs nothing references, and leftovers of crashes."""
        with self.store.gc_lock(shared=False):
            self._collect_locked()

    def _collect_locked(self) -> None:
        self.store.clean_ingest()
        self.snapshots.clean_temp()
        live_chains: set[str] = set()
        live_blobs: set[str] = set()
        for record in self.store.records():
            live_blobs.add(record["manifest"]["digest"])
            live_blobs.add(record["config"]["digest"])
            for layer in record["layers"]:
                live_chains.add(layer["chain_id"])
                live_blobs.add(layer["blob"]["digest"])
        for info in self.snapshots.containers().values():
            live_chains.update(info.get("chain_ids", []))
        # a layer's parents stay with it (a chain-id names a stack)
        for chain_id in sorted(self.snapshots.all_layers() - live_chains):
            self.snapshots.remove_layer(chain_id)
            crashpoint("images.gc.layer")
        for digest in self.blobs.all() - live_blobs:
            self.blobs.delete(digest)

    # -- adding images -----------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[Self]:
        """Hold while adding content (the registry client's pull does): garbage
        collection waits, so blobs written but not yet recorded stay.  On an error
        the content the failed operation added is collected afterwards."""
        ok = False
        try:
            with self.store.gc_lock(shared=True):
                yield self
            ok = True
        finally:
            if not ok:
                with contextlib.suppress(Exception):
                    self.collect_garbage()

    def write_blob(self, stream: st.Readable, expected_digest: str | None = None,
                   expected_size: int | None = None) -> tuple[str, int]:
        """(digest, size) of a blob copied into the store (inside ``writing()``)."""
        return self.blobs.write_stream(stream, expected_digest, expected_size)

    def has_blob(self, digest: str) -> bool:
        return self.blobs.exists(digest)

    def has_layer(self, chain_id: str) -> bool:
        return self.snapshots.has_layer(chain_id)

    def unpack_layer(self, parent_chain_id: str | None, diff_id: str, blob_digest: str,
                     on_read: Callable[[int], None] | None = None) -> LayerInfo:
        """Unpack one layer whose blob is in the store (inside ``writing()``), so
        a pull can unpack each layer as soon as it has arrived instead of after
        the last one; ``add_image`` then finds it done.  ``on_read(n)`` is told
        of every compressed byte read (the pull's "Extracting" progress)."""
        def open_blob() -> io.BufferedReader | _CountingReader:
            blob = self.blobs.open(blob_digest)
            return blob if on_read is None else _CountingReader(blob, on_read)

        return self.snapshots.ensure_layer(parent_chain_id, diff_id, open_blob,
                                           allow_devices=self.allow_device_nodes)

    def add_image(self, manifest: DockerDoc, config_bytes: bytes | None = None, *,
                  refs: Iterable[str] = (), manifest_bytes: bytes | None = None,
                  repo_digest_names: Iterable[str] = (), parent: str = "",
                  repo_digest: str | None = None) -> str:
        """Register an image whose config and layer blobs are in the store (call
        inside ``writing()``): unpack the layers (verified against the config's
        diff-ids), store the manifest, write the record, then tag it.

        ``manifest``: an OCI or docker schema2 manifest (dict).  ``refs``:
        normalised references to point at it.  ``repo_digest_names``: repositories
        (``docker.io/library/busybox``) it was pulled from: RepoDigests become
        NAME@MANIFEST_DIGEST, or NAME@``repo_digest`` when the registry names the
        image by another digest (the index a platform's manifest came from).
        Returns the image Id."""
        refs, repo_digest_names = list(refs), list(repo_digest_names)
        config_desc = manifest.get("config") or {}
        config_digest: str = config_desc.get("digest") or ""
        if config_bytes is None:
            config_bytes = self.blobs.read(config_digest)
        config_digest = self.blobs.write_bytes(config_bytes, config_digest or None)
        config = _json_object(config_bytes, f"image config {config_digest}")
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        layer_descs = list(manifest.get("layers") or [])
        if len(diff_ids) != len(layer_descs):
            raise ImageError(f"invalid image: the manifest has {len(layer_descs)} layers "
                             f"but the config lists {len(diff_ids)} diff-ids")
        chains = st.chain_ids(diff_ids)
        layers: list[st.LayerEntry] = []
        for desc, diff_id, chain_id in zip(layer_descs, diff_ids, chains, strict=True):
            digest = desc.get("digest")
            if not digest or not self.blobs.exists(digest):
                raise ImageError(f"invalid image: layer blob {digest} named by the "
                                 "manifest is missing")
            media = desc.get("mediaType", st.MEDIA_OCI_LAYER)
            if media not in st.LAYER_MEDIA_TYPES:
                raise ImageError(f"invalid image: unsupported layer media type {media}")
            layers.append({"diff_id": diff_id, "chain_id": chain_id,
                           "blob": {"mediaType": media, "digest": digest,
                                    "size": desc.get("size") or self.blobs.size(digest)}})
        self._unpack_layers(layers)
        crashpoint("images.add.unpacked")
        if manifest_bytes is None:
            manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        manifest_digest = self.blobs.write_bytes(manifest_bytes)
        image_id = config_digest
        record: st.ImageRecord = {"id": image_id,
                  "manifest": {"mediaType": manifest.get("mediaType", st.MEDIA_OCI_MANIFEST),
                               "digest": manifest_digest, "size": len(manifest_bytes)},
                  "config": {"mediaType": config_desc.get("mediaType", st.MEDIA_OCI_CONFIG),
                             "digest": config_digest, "size": len(config_bytes)},
                  "layers": layers, "parent": parent or "", "added": rfc3339_nano_fixed()}
        with self.store.meta_lock():
            if self.store.has_record(image_id):
                old = self.store.get_record(image_id)
                record["parent"] = record["parent"] or old.get("parent", "")
                record["added"] = old.get("added", record["added"])
                if "last_tag_time" in old:  # loaded again untagged: still tagged then
                    record["last_tag_time"] = old["last_tag_time"]
            if refs:
                record["last_tag_time"] = rfc3339_nano_fixed()
            self.store.put_record(record)
            all_refs = self.store.load_refs()
            crashpoint("images.add.recorded")
            for ref in refs:
                all_refs[str(references.parse(ref))] = image_id
            for name in repo_digest_names:
                repo = references.parse(name)
                all_refs[f"{repo.name}@{repo_digest or manifest_digest}"] = image_id
            if refs or repo_digest_names:
                self.store.save_refs(all_refs)
        return image_id

    def _unpack_layers(self, layers: builtins.list[st.LayerEntry]) -> None:
        """Unpack the missing layers, several at once: each goes to its own
        directory, and decompression, hashing and writes release the GIL."""
        def unpack(index: int) -> None:
            layer = layers[index]
            parent = layers[index - 1]["chain_id"] if index else None
            digest = layer["blob"]["digest"]
            self.snapshots.ensure_layer(parent, layer["diff_id"],
                                        lambda: self.blobs.open(digest),
                                        allow_devices=self.allow_device_nodes)

        missing = [i for i, layer in enumerate(layers)
                   if not self.snapshots.has_layer(layer["chain_id"])]
        if len(missing) <= 1:
            for index in missing:
                unpack(index)
            return
        with ThreadPoolExecutor(max_workers=min(UNPACK_THREADS, len(missing))) as pool:
            futures = [pool.submit(unpack, index) for index in missing]
            errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise errors[0]

    def import_(self, source: PathOrFile | st.Readable, *, reference: str | None = None,
                changes: Iterable[str] = (), message: str = "",
                created: str | None = None) -> str:
        """docker import: a rootfs tarball (plain/gzip/zstd/...) as a one-layer
        image, ``changes`` as ``--change`` lines.  Returns the image Id."""
        return importer.import_rootfs(self, source, reference=reference, changes=changes,
                                      message=message, created=created)

    def load(self, source: PathOrFile | st.Readable, *, name: str | None = None
             ) -> builtins.list[DockerDoc]:
        """docker load: a docker-archive or OCI archive (file object or path), or
        an OCI layout directory (path).  ``name`` names OCI images whose index
        gives only a tag (umoci's ``ref.name: latest``).  Returns one dict per
        image: {"Id", "RepoTags"} (familiar names), for docker's
        "Loaded image: ..." / "Loaded image ID: ..." lines."""
        with self.writing():
            if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
                found = archive.read_oci_layout_dir(os.fspath(source), self.blobs, name)
            else:
                with st.open_source(source) as stream:
                    found = archive.read_archive(stream, self.blobs, name)
                    if name:
                        found = [_name_oci(item, name) for item in found]
            if not found:
                raise ImageError("invalid archive: it holds no image")
            loaded = []
            for item in found:
                image_id = self.add_image(item.manifest, item.config_bytes, refs=item.refs,
                                          manifest_bytes=item.manifest_bytes)
                loaded.append({"Id": image_id, "RepoTags": [
                    references.parse(r).familiar() for r in item.refs]})
            return loaded

    def save(self, refs: str | Iterable[str], dest: PathOrFile | IO[bytes], *,
             format: str = "docker-archive") -> builtins.list[str]:
        """docker save: images (names or Ids) into ``dest`` (binary file object or
        path).  ``format``: 'docker-archive' (default, what docker save writes),
        'oci-archive' (a tarred OCI layout with the blobs as stored) or 'oci-dir'
        (an OCI layout directory at path ``dest``).  -> the Ids of the images
        written, in order (names as ``save_selection`` reads them)."""
        if isinstance(refs, str):
            refs = [refs]
        images: list[archive.SavedImage] = []
        by_id: dict[str, archive.SavedImage] = {}
        for image_id, tags in self.save_selection(refs):
            if image_id in by_id:
                by_id[image_id].refs.extend(t for t in tags if t not in by_id[image_id].refs)
                continue
            record = self.store.get_record(image_id)
            image = archive.SavedImage(record, self.blobs.read(record["config"]["digest"]),
                                       list(tags), self.blobs.open, self._layer_tar_size)
            by_id[image_id] = image
            images.append(image)
        with self.store.gc_lock(shared=True):
            if format == "oci-dir":
                if not isinstance(dest, (str, os.PathLike)):
                    raise ImageError("an OCI layout directory needs a path")
                archive.write_oci(images, archive.oci_dir_writer(os.fspath(dest)))
                return list(by_id)
            with st.open_dest(dest) as out:
                if format == "docker-archive":
                    archive.write_docker_archive(images, out)
                elif format == "oci-archive":
                    archive.write_oci(images, archive.oci_tar_writer(out))
                else:
                    raise ImageError(f"unknown archive format {format!r}")
        return list(by_id)

    def save_selection(self, names: Iterable[str]) -> builtins.list[tuple[str, builtins.list[str]]]:
        """What ``docker save NAME...`` writes, as dockerd's tarexport reads its
        names: (image Id, the tags written for it) per name, every name looked
        up before anything is written (ImageNotFound).  An Id or Id prefix
        (``sha256:`` or not) or a NAME@DIGEST writes the image with no tag (a
        load then leaves it untagged, as it was named); NAME:TAG writes that
        tag only; a bare NAME every image of that repository with all its tags
        (an Id prefix when no repository has that name).  A NAME:TAG or
        NAME@DIGEST not in the store: dockerd's "reference does not exist"."""
        all_refs = self.store.load_refs()
        chosen: builtins.list[tuple[str, builtins.list[str]]] = []
        for text in names:
            if references.ANCHORED_ID_RE.match(text) or text.startswith("sha256:"):
                chosen.append((self.resolve(text), []))
                continue
            try:
                ref = references.parse(text, default_tag=False)
            except ImageError:
                if not references.looks_like_id(text):
                    raise
                chosen.append((self.resolve(text), []))
                continue
            if ref.digest or ref.tag:
                key = ref.with_digest(ref.digest) if ref.digest else ref
                image_id = all_refs.get(str(key))
                if image_id is None:  # dockerd's reference store's words
                    raise NotFound("reference does not exist")
                chosen.append((image_id, [] if ref.digest else [str(ref)]))
            else:
                same_name = [(r, i) for r, i in sorted(all_refs.items())
                             if references.parse(r).name == ref.name]
                if not same_name:
                    chosen.append((self.resolve(text), []))
                for r, image_id in same_name:
                    chosen.append((image_id, [] if "@" in r else [r]))
        return chosen

    def _layer_tar_size(self, layer: st.LayerEntry) -> int:
        return self.snapshots.layer_info(layer["chain_id"])["tar_size"]

    def commit(self, container_id: str, *, reference: str | None = None,
               changes: Iterable[str] = (), message: str = "", author: str = "",
               config: DockerDoc | None = None) -> str:
        """docker commit: the container's changes as a new layer on its image, the
        image's config with ``config`` (docker's container Config keys) and
        ``changes`` applied.  The engine pauses the container around this when
        asked.  Returns the new image Id."""
        return importer.commit_container(self, container_id, reference=reference,
                                         changes=changes, message=message, author=author,
                                         config=config)

    # -- container root filesystems ------------------------------------------------
    def prepare_rootfs(self, container_id: str, image: str, idmap: IdMap | None = None) -> str:
        """Mount a container's root filesystem from ``image`` (name or Id) and
        return its path (for config.json's root.path).  Idempotent: called again
        for the same container (after unmount_rootfs or a reboot) it re-mounts the
        same writable layer.  The image's layers stay until release_rootfs, even
        if the image is removed meanwhile."""
        with self.store.gc_lock(shared=True):
            image_id = self.resolve(image)
            record = self.store.get_record(image_id)
            return self.snapshots.prepare(container_id, image_id,
                                          [layer["chain_id"] for layer in record["layers"]],
                                          idmap=idmap)

    def rootfs_path(self, container_id: str) -> str:
        return self.snapshots.rootfs_path(container_id)

    def mount_rootfs(self, container_id: str) -> str:
        """Re-mount a prepared rootfs (no-op when mounted); returns its path."""
        return self.snapshots.mount(container_id)

    def unmount_rootfs(self, container_id: str) -> None:
        """Unmount, keeping the container's changes (a stopped container)."""
        self.snapshots.unmount(container_id)

    def release_rootfs(self, container_id: str) -> bool:
        """Unmount and delete the container's writable layer (docker rm); the
        image's layers lose this user.  True if there was one."""
        with self.store.gc_lock(shared=True):
            released = self.snapshots.release(container_id)
        return released

    def rootfs_image(self, container_id: str) -> str:
        return self.snapshots.container_info(container_id)["image"]

    def rootfs_info(self, container_id: str) -> dict[str, str]:
        """inspect's GraphDriver.Data for a container: MergedDir, UpperDir,
        WorkDir, LowerDir (the image's layer dirs, top first)."""
        cdir = self.snapshots.container_dir(container_id)
        info = self.snapshots.container_info(container_id)
        data = {"MergedDir": self.snapshots.rootfs_path(container_id)}
        if info["driver"] == "overlay":
            data["UpperDir"] = os.path.join(cdir, "upper")
            data["WorkDir"] = os.path.join(cdir, "work")
        lowers = self.snapshots.lower_dirs(container_id)
        if lowers:
            data["LowerDir"] = ":".join(lowers)
        return data

    def rootfs_size(self, container_id: str) -> RootfsSize:
        """(SizeRw, SizeRootFs) as docker ps -s / inspect --size report them: the
        bytes the container wrote, and that plus its image's size."""
        info = self.snapshots.container_info(container_id)
        if info["driver"] == "overlay":
            rw = _tree_size(os.path.join(self.snapshots.container_dir(container_id),
                                         "upper"))
        else:
            rw = 0
            merged = self.snapshots.rootfs_path(container_id)
            for change in self.snapshots.changes(container_id):
                if change.kind != CHANGE_DELETE:
                    path = os.path.join(merged, change.path.lstrip("/"))
                    if os.path.isfile(path) and not os.path.islink(path):
                        rw += os.lstat(path).st_size
        try:
            base = self.size(self.store.get_record(info["image"]))
        except ImageError:
            base = sum(self._layer_size(c) for c in info["chain_ids"])
        return RootfsSize(rw, rw + base)

    def diff(self, container_id: str) -> builtins.list[DockerDoc]:
        """GET /containers/ID/changes: [{"Path", "Kind"}], Kind 0=C 1=A 2=D."""
        return [{"Path": path, "Kind": kind}
                for kind, path in self.snapshots.changes(container_id)]

    @staticmethod
    def diff_lines(changes: Iterable[DockerDoc]) -> builtins.list[str]:
        """docker diff's text: 'C /etc'."""
        return [f"{CHANGE_LETTERS[c['Kind']]} {c['Path']}" for c in changes]

    def export(self, container_id: str, dest: PathOrFile | IO[bytes]) -> None:
        """docker export: the container's filesystem, flattened, as one tar."""
        with st.open_dest(dest) as out:
            self.snapshots.export(container_id, out)


class _CountingReader:
    """A file object that reports how many bytes were read through it."""

    def __init__(self, f: io.BufferedReader, on_read: Callable[[int], None]) -> None:
        self._f = f
        self._on_read = on_read

    def read(self, size: int = -1, /) -> bytes:
        data = self._f.read(size)
        if data:
            self._on_read(len(data))
        return data

    def readinto(self, buffer: "WriteableBuffer") -> int:
        count = self._f.readinto(buffer)
        if count:
            self._on_read(count)
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._f.close()


def _names_going_with(by_name: str, image_refs: list[str]) -> list[str]:
    """docker's rule: untagging NAME:TAG also drops NAME@DIGEST references when no
    other tag of NAME remains (so `docker rmi busybox` removes a pulled image)."""
    ref = references.parse(by_name)
    dropped = [by_name]
    if ref.digest:
        return dropped
    others = [references.parse(r) for r in image_refs if r != by_name]
    if not any(o.name == ref.name and not o.digest for o in others):
        dropped += [str(o) for o in others if o.name == ref.name and o.digest]
    return dropped


def _tree_size(path: str) -> int:
    """Bytes under ``path`` (whiteouts not counted).  fstree walks by
    directory fds, iteratively (a container's tree may be thousands of
    levels deep), and never follows a symlink, so a running container
    swapping one of its directories for a link cannot send the walk into
    the host's tree."""
    return fstree.path_size(path, skip=lambda s: s.st_mode & 0o170000 == 0o020000
                            and s.st_rdev == 0)


def _name_oci(item: archive.ImageToAdd, name: str) -> archive.ImageToAdd:
    if item.refs:
        return item
    item.refs = [str(references.parse(name))]
    return item


def _json_object(data: bytes, what: str) -> DockerDoc:
    try:
        obj = json.loads(data)
    except ValueError as e:
        raise ImageError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ImageError(f"{what} is not a JSON object")
    return obj


__all__ = ["Images", "DEFAULT_DATA_ROOT", "ImageNotFound"]


def _reference_matches(ref: str, patterns: Iterable[str]) -> bool:
    """docker's reference.FamiliarMatch: a pattern matches the familiar
    reference (name:tag or name@digest) or its name alone."""
    name = ref.partition("@")[0]
    if "@" not in ref:
        head, sep, tail = ref.rpartition(":")
        if sep and "/" not in tail:
            name = head
    return any(fnmatch.fnmatchcase(ref, p) or fnmatch.fnmatchcase(name, p) for p in patterns)

