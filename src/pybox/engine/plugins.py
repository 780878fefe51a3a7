"""Docker's managed plugins (``docker plugin ...``), as a dockerd answers them.

A plugin is a rootfs and a config.json (docker's PluginConfig) that dockerd
runs as a container speaking the plugin protocol on a unix socket.  pyboxd
keeps the store and the operations on it as moby's daemon/pkg/plugin does:

    DATA_ROOT/plugins/<id>/config.json     the plugin object (GET /plugins/NAME/json)
    DATA_ROOT/plugins/<id>/rootfs/         the plugin's files
    DATA_ROOT/plugins/<id>/manifest.json   its manifest, and blobs/<hex>: its config
                                           and layer blobs (what a push sends)
    DATA_ROOT/plugins/tmp/                 creations and pulls in progress (gone at start)

A plugin comes into place by one rename of a directory made whole under tmp/,
config.json changes by an atomic write, and removal renames the directory to
``<id>-removing`` before deleting it, an upgrade moves the old directory to
``<id>-old`` and the new one in: a crash leaves the old state or the new, and
what a crash left half done is cleaned up (or put back) when the store is loaded.

* create (``POST /plugins/create?name=``): the body is a tar of config.json and
  rootfs/; config.json is decoded as Go's encoding/json decodes it into moby's
  PluginConfig (keys case-insensitive, unknown keys ignored, the first type
  error reported in Go's words, "failed to parse config: ..."); moby validates
  nothing more.  The rootfs members go through the image layer unpacker (no
  path or link out of the rootfs).  The name is the tagged familiar reference
  (``me/p`` is ``me/p:latest``).
* ls (filters capability and enabled), inspect, rm (an enabled plugin needs
  force), set (env/args/mounts/devices settables, moby's checks and words),
  disable.
* enable: dockerd runs the rootfs with runc and waits for the plugin's socket.
  pybox has no plugin runtime: it answers what runc answers for an entrypoint
  that cannot start (missing, a directory, not executable: the docker-py
  dummy plugin's case) and otherwise refuses with its own error.  So no plugin
  is ever enabled, and volume or network drivers from plugins do not exist.
* privileges: the plugin's manifest and config fetched with the registry
  client, computePrivileges over it; a fetch that fails gives ``[]`` as moby's
  (it swallows the error), a manifest without a plugin config moby's error.
* pull (``docker plugin install``) and upgrade: the manifest, config and
  layers fetched with the registry client, the accepted privileges compared
  as moby compares them, the layers unpacked into the rootfs; offline, the
  registry's error ("error resolving plugin reference: ...").  push: the
  blobs and a schema2 manifest whose config is the plugin's (moby's
  buildManifest), so dockerd installs what pyboxd pushes and the reverse.
"""

import copy
import dataclasses
import functools
import gzip
import hashlib
import json
import os
import posixpath
import re
import secrets
import shutil
import stat
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any

from pybox.errors import BadRequest, Conflict, LayerError, NotFound, PyboxError, RegistryError
from pybox.formats import fastjson, gojson
from pybox.images import reference as references
from pybox.images.auth import ANONYMOUS, Credentials
from pybox.images.layers import unpack_layer
from pybox.images.snapshots import flatten_layers
from pybox.oci.state import write_atomic
from pybox.runtime.rootfs import secure_join

if TYPE_CHECKING:  # the registry client (urllib3) is loaded on first use, not at start
    from pybox.images.registry import Registries, RegistryClient

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"
REMOVING_SUFFIX = "-removing"  # a plugin directory being removed
OLD_SUFFIX = "-old"  # a plugin directory an upgrade replaces
BLOBS = "blobs"
ROOTFS = "rootfs"
CONFIG_LIMIT = 16 << 20  # a config.json larger than this is refused (moby reads any size)
VALID_FULL_ID = re.compile(r"^[a-f0-9]{64}$")
ACCEPTED_FILTERS = ("capability", "enabled")
PLUGIN_CONFIG_MEDIA_TYPE = "application/vnd.docker.plugin.v1+json"
SCHEMA2_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
LAYER_MEDIA_TYPE = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_MEDIA_TYPES = ("application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.oci.image.manifest.v1+json")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUNC_PREFIX = ("failed to create shim task: OCI runtime create failed: runc create failed: "
               "unable to start container process: ")


# -- config.json, decoded as Go's encoding/json into moby's PluginConfig ---------------------------
class PluginInterfaceType(gojson.GoType):
    """moby's PluginInterfaceType, whose UnmarshalJSON takes only a JSON string
    (anything else, null included, ends the decode with its own error) and keeps
    it as the "prefix.capability/version" its MarshalJSON writes back."""

    go = "types.PluginInterfaceType"

    def decode(self, v: Any, st: gojson.DecodeState) -> Any:
        if not isinstance(v, str):
            raise gojson.Fatal(f"{_go_quote(_go_literal(v))} is not a plugin interface type")
        prefix, capability, version = split_interface_type(v)
        return f"{prefix}.{capability}/{version}"

    def null(self) -> Any:
        raise gojson.Fatal(f"{_go_quote('null')} is not a plugin interface type")


_STRING = gojson.Str()
_STRINGS = gojson.Slice(_STRING)
_OPT_STRING = gojson.Ptr(_STRING)
_BOOL = gojson.Bool()
_UINT32 = gojson.Int("uint32")


def _struct(name: str, fields: list[tuple[str, gojson.GoType]]) -> gojson.Struct:
    return gojson.Struct(name, f"types.{name}", fields)


PLUGIN_CONFIG = _struct("PluginConfig", [
    ("Args", _struct("PluginConfigArgs", [("Description", _STRING), ("Name", _STRING),
                                          ("Settable", _STRINGS), ("Value", _STRINGS)])),
    ("Description", _STRING),
    ("DockerVersion", _STRING),
    ("Documentation", _STRING),
    ("Entrypoint", _STRINGS),
    ("Env", gojson.Slice(_struct("PluginEnv", [
        ("Description", _STRING), ("Name", _STRING), ("Settable", _STRINGS),
        ("Value", _OPT_STRING)]))),
    ("Interface", _struct("PluginConfigInterface", [
        ("ProtocolScheme", _STRING), ("Socket", _STRING),
        ("Types", gojson.Slice(PluginInterfaceType()))])),
    ("IpcHost", _BOOL),
    ("Linux", _struct("PluginConfigLinux", [
        ("AllowAllDevices", _BOOL), ("Capabilities", _STRINGS),
        ("Devices", gojson.Slice(_struct("PluginDevice", [
            ("Description", _STRING), ("Name", _STRING), ("Path", _OPT_STRING),
            ("Settable", _STRINGS)])))])),
    ("Mounts", gojson.Slice(_struct("PluginMount", [
        ("Description", _STRING), ("Destination", _STRING), ("Name", _STRING),
        ("Options", _STRINGS), ("Settable", _STRINGS), ("Source", _OPT_STRING),
        ("Type", _STRING)]))),
    ("Network", _struct("PluginConfigNetwork", [("Type", _STRING)])),
    ("PidHost", _BOOL),
    ("PropagatedMount", _STRING),
    ("User", _struct("PluginConfigUser", [("GID", _UINT32), ("UID", _UINT32)])),
    ("WorkDir", _STRING),
    ("rootfs", gojson.Ptr(_struct("PluginConfigRootfs", [("diff_ids", _STRINGS),
                                                        ("type", _STRING)]))),
])
# Go's omitempty fields, left out of the JSON when empty (rootfs, a pointer: when nil)
_OMIT_EMPTY = {("PluginConfig", "DockerVersion"), ("PluginConfigInterface", "ProtocolScheme"),
               ("PluginConfigUser", "GID"), ("PluginConfigUser", "UID"),
               ("PluginConfigRootfs", "type"), ("PluginConfig", "rootfs")}


def _go_quote(text: str) -> str:
    """Go's %q of a string (ASCII-printable text as is, the rest escaped)."""
    return json.dumps(text)


def _go_literal(raw: Any) -> str:
    """The JSON text of a decoded value (what UnmarshalJSON would be handed)."""
    if raw is None:
        return "null"
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return gojson.number_text(raw)
    return json.dumps(raw, separators=(",", ":"))


def split_interface_type(text: str) -> tuple[str, str, str]:
    """(prefix, capability, version) as moby's PluginInterfaceType.UnmarshalJSON
    splits them: the prefix ends at the last '.' before the first '/'; with no
    '.' the capability loses its first character, as moby's does."""
    version_at = len(text)
    prefix_at = 0
    for i, ch in enumerate(text):
        if ch == ".":
            prefix_at = i
        elif ch == "/":
            version_at = i
            break
    version = text[version_at + 1:] if version_at < len(text) else ""
    return text[:prefix_at], text[prefix_at + 1:version_at], version


def parse_config(data: bytes) -> dict[str, Any]:
    """config.json as moby's json.Unmarshal into PluginConfig reads it (Go's
    scanner and decoder: pybox.formats.gojson): the config in docker's JSON
    shape (every field, Go's zero values), or PyboxError("failed to parse
    config: ...") in Go's words."""
    try:
        config = gojson.complete(gojson.decode(gojson.unmarshal(data), PLUGIN_CONFIG),
                                 PLUGIN_CONFIG)
    except gojson.GoJSONError as e:
        raise PyboxError(f"failed to parse config: {e}") from None
    return config


def config_json(config: dict[str, Any]) -> dict[str, Any]:
    """The config as Go marshals it: omitempty fields left out when empty,
    rootfs (a pointer) left out when nil."""
    return _marshal(config, PLUGIN_CONFIG)


def _marshal(value: Any, typ: gojson.GoType) -> Any:
    if isinstance(typ, gojson.Ptr):
        typ = typ.elem
    if isinstance(typ, gojson.Struct) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, (sub, _) in typ.fields.items():
            item = value.get(key)
            if (typ.name, key) in _OMIT_EMPTY and item in ("", 0, None):
                continue
            out[key] = _marshal(item, sub)
        return out
    if isinstance(typ, gojson.Slice) and isinstance(value, list):
        return [_marshal(item, typ.elem) for item in value]
    return value


# -- privileges (moby's computePrivileges) --------------------------------------------------------
def compute_privileges(config: dict[str, Any]) -> list[dict[str, Any]]:
    """What installing a plugin with this config grants it, as moby lists it."""
    out: list[dict[str, Any]] = []

    def add(name: str, description: str, value: list[str]) -> None:
        out.append({"Name": name, "Description": description, "Value": value})

    network = (config.get("Network") or {}).get("Type") or ""
    if network not in ("null", "bridge", ""):
        add("network", "permissions to access a network", [network])
    if config.get("IpcHost"):
        add("host ipc namespace", "allow access to host ipc namespace", ["true"])
    if config.get("PidHost"):
        add("host pid namespace", "allow access to host pid namespace", ["true"])
    for mount in config.get("Mounts") or []:
        if mount.get("Source") is not None:
            add("mount", "host path to mount", [mount["Source"]])
    linux = config.get("Linux") or {}
    for device in linux.get("Devices") or []:
        if device.get("Path") is not None:
            add("device", "host device to access", [device["Path"]])
    if linux.get("AllowAllDevices"):
        add("allow-all-devices", "allow 'rwm' access to all devices", ["true"])
    if linux.get("Capabilities"):
        add("capabilities", "list of additional capabilities required", linux["Capabilities"])
    return out


# -- settables (moby's v2/settable.go and Plugin.Set) ------------------------------------------
ERR_INVALID_FORMAT = "invalid format, must be <name>[.<field>][=<value>]"
ERR_MULTIPLE_FIELDS = "multiple fields are settable, one must be specified"


class Settable:
    """One ``name[.field][=value]`` argument of ``docker plugin set``."""

    def __init__(self, arg: str) -> None:
        at = arg.find("=")
        if at == 0:
            raise PyboxError(ERR_INVALID_FORMAT)
        self.name, self.value = (arg, "") if at < 0 else (arg[:at], arg[at + 1:])
        self.field = ""
        dot = self.name.rfind(".")
        if dot > 0:
            self.field = self.name[dot + 1:]
            self.name = arg[:dot]

    def pretty(self) -> str:
        return f"{self.name}.{self.field}" if self.field else self.name

    def allowed(self, allowed_fields: tuple[str, ...], settable: list[str] | None) -> bool:
        settable = settable or []
        if not self.field:
            if len(settable) == 1:
                self.field = settable[0]
            elif len(settable) > 1:
                raise PyboxError(ERR_MULTIPLE_FIELDS)
        return self.field in allowed_fields and self.field in settable


def apply_settings(plugin: dict[str, Any], args: list[str]) -> None:
    """``docker plugin set``'s arguments applied to the plugin object, in
    place, as moby's Plugin.Set (the same checks, the same words)."""
    if plugin["Enabled"]:
        raise PyboxError("cannot set on an active plugin, disable plugin before setting")
    sets = [Settable(arg) for arg in args]
    config, settings = plugin["Config"], plugin["Settings"]
    for s in sets:
        _apply_one(s, config, settings)


def _not_settable(s: Settable) -> PyboxError:
    return PyboxError(f'"{s.pretty()}" is not settable')


def _apply_one(s: Settable, config: dict[str, Any], settings: dict[str, Any]) -> None:
    for env in config.get("Env") or []:
        if env["Name"] == s.name:
            if not s.allowed(("value",), env["Settable"]):
                raise _not_settable(s)
            entries: list[str] = settings["Env"]
            for i, entry in enumerate(entries):
                if entry.partition("=")[0] == s.name:
                    entries[i] = f"{s.name}={s.value}"
                    return
            entries.append(f"{s.name}={s.value}")
            return
    for i, mount in enumerate(config.get("Mounts") or []):
        if mount["Name"] == s.name:
            if not s.allowed(("source",), mount["Settable"]):
                raise _not_settable(s)
            if mount["Source"] is None:
                raise PyboxError("plugin config has no mount source")
            mount["Source"] = s.value  # (moby's Settings share the pointer)
            if i < len(settings["Mounts"]):
                settings["Mounts"][i]["Source"] = s.value
            return
    for i, device in enumerate(config["Linux"].get("Devices") or []):
        if device["Name"] == s.name:
            if not s.allowed(("path",), device["Settable"]):
                raise _not_settable(s)
            if device["Path"] is None:
                raise PyboxError("plugin config has no device path")
            device["Path"] = s.value
            if i < len(settings["Devices"]):
                settings["Devices"][i]["Path"] = s.value
            return
    if config["Args"]["Name"] == s.name:
        if not s.allowed(("value",), config["Args"]["Settable"]):
            raise _not_settable(s)
        settings["Args"] = s.value.split(" ")
        return
    raise PyboxError(f'setting "{s.name}" not found in the plugin configuration')


def initial_settings(config: dict[str, Any]) -> dict[str, Any]:
    """moby's InitEmptySettings: the settable values start as the config's."""
    return {
        "Args": list(config["Args"]["Value"] or []),
        "Devices": copy.deepcopy(config["Linux"]["Devices"] or []),
        "Env": [f"{e['Name']}={e['Value']}" for e in config["Env"] or [] if e["Value"] is not None],
        "Mounts": copy.deepcopy(config["Mounts"] or []),
    }


# -- names ----------------------------------------------------------------------------------------
def plugin_name(text: str) -> str:
    """A create's name as moby's CreateFromContext makes it: the familiar
    reference with its tag (``latest`` when none)."""
    try:
        ref = references.parse(text)
    except PyboxError as e:
        raise PyboxError(f"failed to parse reference {text}: {e}") from None
    if ref.digest:
        raise PyboxError("canonical references are not permitted")
    return ref.familiar()


def remote_reference(text: str) -> tuple[references.Reference, str]:
    """parseRemoteRef: the remote reference (tagged latest when it has neither
    tag nor digest; a tag beside a digest is dropped from it and returned)."""
    try:
        ref = references.parse(text)
    except PyboxError as e:  # dockerd 20.10 answers these 500
        raise PyboxError(str(e)) from None
    if ref.digest and ref.tag:
        return references.Reference(ref.domain, ref.path, None, ref.digest), ref.tag
    return ref, ""


def local_name(ref: references.Reference, tag: str, name: str) -> str:
    """getName: the local name of a pulled or upgraded plugin."""
    if not name:
        if ref.digest:
            return references.Reference(ref.domain, ref.path, tag or "latest").familiar()
        return ref.familiar()
    local = references.parse(name, default_tag=False)
    if local.digest:
        raise PyboxError("cannot use digest in plugin tag")
    if not local.tag:
        return references.Reference(local.domain, local.path, "latest").familiar()
    return name


def go_atoi(text: str) -> int:
    """strconv.Atoi, with its errors (the enable's timeout)."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise PyboxError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if not -(1 << 63) <= value < (1 << 63):
        raise PyboxError(f'strconv.Atoi: parsing "{text}": value out of range')
    return value


# -- the plugin tar -------------------------------------------------------------------------------
class _HashingWriter:
    """A write-only file that hashes what it is given and passes it on (the
    gzip'd rootfs layer, to its blob file; or nowhere)."""

    def __init__(self, out: IO[bytes] | None) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.out is not None:
            self.out.write(data)
        return len(data)

    def flush(self) -> None:
        if self.out is not None:
            self.out.flush()


def split_plugin_tar(body: IO[bytes], rootfs_tar: IO[bytes],
                     layer: IO[bytes] | None = None) -> tuple[bytes | None, str, int]:
    """moby's splitConfigRootFSFromTar: config.json's bytes (None when
    absent), and the rootfs/ members written to ``rootfs_tar`` renamed below
    rootfs/ (members elsewhere are dropped), gzip'd into ``layer`` (the
    plugin's layer blob); -> (config, the layer's digest -- the config's rootfs
    diff_id, as moby records it --, its size)."""
    config: bytes | None = None
    has_rootfs = False
    sink = _HashingWriter(layer)
    try:
        with tarfile.open(fileobj=body, mode="r|") as tar, \
                tarfile.open(fileobj=rootfs_tar, mode="w|", format=tarfile.PAX_FORMAT) as out:
            for member in tar:
                name = posixpath.normpath(member.name) if member.name else "."
                if name.startswith("/"):
                    name = name[1:]
                if name == CONFIG_FILE and member.isreg():
                    f = tar.extractfile(member)
                    if f is None or member.size > CONFIG_LIMIT:
                        raise PyboxError(f"failed to read {CONFIG_FILE}: larger than "
                                         f"{CONFIG_LIMIT} bytes")
                    config = f.read()
                parts = name.split("/")
                if parts[0] != ROOTFS:
                    continue
                renamed = posixpath.normpath("/".join(parts[1:])) if parts[1:] else "."
                clone = copy.copy(member)
                clone.name = renamed
                clone.pax_headers = {k: v for k, v in member.pax_headers.items()
                                     if k not in ("path", "linkpath")}
                if member.islnk() and member.linkname.lower().startswith(ROOTFS + "/"):
                    clone.linkname = member.linkname[len(ROOTFS) + 1:]
                data = tar.extractfile(member) if member.isreg() else None
                out.addfile(clone, data)
                has_rootfs = True
    except tarfile.TarError as e:
        if "empty file" in str(e):
            raise PyboxError("no rootfs found: EOF") from None
        raise PyboxError("failed to read from tar: archive/tar: invalid tar header") from None
    if not has_rootfs:
        raise PyboxError("no rootfs found: EOF")
    rootfs_tar.seek(0)
    with gzip.GzipFile(fileobj=sink, mode="wb", mtime=0) as gz:
        shutil.copyfileobj(rootfs_tar, gz, 1 << 20)
    rootfs_tar.seek(0)
    return config, "sha256:" + sink.hash.hexdigest(), sink.size


# -- the store ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Fetched:
    """A plugin's manifest as its registry gave it."""

    doc: dict[str, Any]
    media_type: str
    client: "RegistryClient"
    data: bytes
    digest: str


Emit = Callable[[str, str, str, dict[str, str]], object]
Progress = Callable[[dict[str, Any]], None]  # a pull's or push's JSON message, to its stream


def _no_progress(message: dict[str, Any]) -> None:
    """Progress nobody reads."""


class Plugins:
    """The plugins of one pyboxd (DATA_ROOT/plugins)."""

    def __init__(self, root: str, registries: "Callable[[], Registries]",
                 emit: Emit, docker_version: str) -> None:
        self.root = root
        self.tmp = os.path.join(root, "tmp")
        self.registries = registries
        self.emit = emit
        self.docker_version = docker_version
        self.lock = threading.Lock()
        self.plugins: dict[str, dict[str, Any]] = {}  # id -> the plugin object
        self._load()

    # -- persistence --
    def _load(self) -> None:
        """The plugins on disk; what a crash left half made or half removed goes."""
        os.makedirs(self.root, 0o700, exist_ok=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp, 0o700, exist_ok=True)
        for entry in sorted(os.listdir(self.root)):  # ("<id>" before "<id>-old")
            path = os.path.join(self.root, entry)
            if entry.endswith(REMOVING_SUFFIX) and VALID_FULL_ID.match(
                    entry[:-len(REMOVING_SUFFIX)]):
                shutil.rmtree(path, ignore_errors=True)
                continue
            if entry.endswith(OLD_SUFFIX) and VALID_FULL_ID.match(entry[:-len(OLD_SUFFIX)]):
                current = path[:-len(OLD_SUFFIX)]
                if os.path.exists(current):  # the upgrade was done: the old one goes
                    shutil.rmtree(path, ignore_errors=True)
                    continue
                os.rename(path, current)  # cut short between its renames: back as it was
                entry, path = os.path.basename(current), current
            if not VALID_FULL_ID.match(entry):
                continue
            try:
                with open(os.path.join(path, CONFIG_FILE), "rb") as f:
                    plugin = fastjson.loads(f.read())
            except (OSError, ValueError):
                continue  # moby logs and skips a plugin it cannot load
            if isinstance(plugin, dict) and plugin.get("Id") == entry:
                self.plugins[entry] = plugin

    def _save(self, plugin: dict[str, Any]) -> None:
        write_atomic(os.path.join(self.root, plugin["Id"], CONFIG_FILE),
                     fastjson.dumps(plugin), durable=True)

    # -- lookups --
    def _resolve(self, ref_or_id: str) -> dict[str, Any]:
        """moby's resolvePluginID: a full id, a name (tagged latest when it has
        no tag), or a unique id prefix; under self.lock."""
        if VALID_FULL_ID.match(ref_or_id):
            if ref_or_id in self.plugins:
                return self.plugins[ref_or_id]
            raise NotFound(f'plugin "{ref_or_id}" not found')
        try:
            ref = references.parse(ref_or_id)
        except PyboxError:
            raise NotFound(f'plugin "{ref_or_id}" not found') from None
        if ref.digest:
            raise NotFound(f'plugin "{ref_or_id}" not found')
        name = ref.familiar()
        for plugin in self.plugins.values():
            if plugin["Name"] == name:
                return plugin
        found = [p for pid, p in self.plugins.items() if pid.startswith(ref_or_id)]
        if len(found) > 1:
            raise BadRequest(f'multiple plugins found for "{ref_or_id}"')
        if not found:
            raise NotFound(f'plugin "{ref_or_id}" not found')
        return found[0]

    def _name_free(self, name: str) -> None:
        if any(p["Name"] == name for p in self.plugins.values()):
            raise Conflict(f"plugin {name} already exists")

    def inspect(self, ref_or_id: str) -> dict[str, Any]:
        with self.lock:
            return self._view(self._resolve(ref_or_id))

    @staticmethod
    def _view(plugin: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(plugin)
        out["Config"] = config_json(out["Config"])
        if not out.get("PluginReference"):
            out.pop("PluginReference", None)
        return out

    def list_plugins(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        """GET /plugins: moby's List with its filters (capability, enabled)."""
        for key in filters:
            if key not in ACCEPTED_FILTERS:
                raise BadRequest(f"Invalid filter '{key}'")
        enabled_only = disabled_only = False
        if "enabled" in filters:
            values = filters["enabled"]
            if "true" in values:
                enabled_only = True
            elif "false" in values:
                disabled_only = True
            else:
                raise BadRequest(f"Invalid filter 'enabled=[{' '.join(values)}]'")
        capabilities = filters.get("capability")
        out = []
        with self.lock:
            for plugin in self.plugins.values():
                if (enabled_only and not plugin["Enabled"]) or (disabled_only and plugin["Enabled"]):
                    continue
                if capabilities is not None and not all(
                        _filter_match(capabilities, split_interface_type(t)[1])
                        for t in plugin["Config"]["Interface"]["Types"] or []):
                    continue
                out.append(self._view(plugin))
        return out

    # -- create --
    def create(self, name: str, chunks: Iterable[bytes]) -> str:
        """POST /plugins/create: the plugin from a tar of config.json and
        rootfs/, stored disabled; -> its id."""
        name = plugin_name(name)
        with self.lock:
            self._name_free(name)
        work = tempfile.mkdtemp(prefix="create-", dir=self.tmp)
        try:
            blobs = os.path.join(work, BLOBS)
            os.mkdir(blobs, 0o700)
            body_path = os.path.join(work, "body.tar")
            with open(body_path, "w+b") as body:
                for chunk in chunks:
                    body.write(chunk)
                body.seek(0)
                layer_path = os.path.join(blobs, "layer")
                with open(os.path.join(work, "rootfs.tar"), "w+b") as rootfs_tar, \
                        open(layer_path, "wb") as layer:
                    config_bytes, diff_id, layer_size = split_plugin_tar(body, rootfs_tar, layer)
                    os.unlink(body_path)
                    rootfs = os.path.join(work, ROOTFS)
                    os.mkdir(rootfs, 0o755)
                    try:
                        unpack_layer(rootfs_tar, rootfs, allow_devices=True)
                    except LayerError as e:
                        raise PyboxError(f"Error processing tar file: {e}") from None
            os.unlink(os.path.join(work, "rootfs.tar"))
            os.rename(layer_path, os.path.join(blobs, diff_id.partition(":")[2]))
            if config_bytes is None:
                raise PyboxError("config not found")
            config = parse_config(config_bytes)
            config["rootfs"] = {"diff_ids": [diff_id], "type": "layers"}
            config["DockerVersion"] = self.docker_version
            # the config blob and the manifest a push sends (moby's buildManifest)
            config_blob = fastjson.dumps(config_json(config)).encode() + b"\n"
            config_digest = _write_blob(blobs, config_blob)
            manifest = build_manifest((config_digest, len(config_blob)),
                                      [(diff_id, layer_size)])
            write_atomic(os.path.join(work, MANIFEST_FILE), manifest, durable=True)
            pid = secrets.token_hex(32)
            plugin: dict[str, Any] = {
                "Config": config, "Enabled": False, "Id": pid, "Name": name,
                "PluginReference": name, "Settings": initial_settings(config),
            }
            self._commit(work, plugin)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        self.emit("plugin", "create", pid, {"name": name})
        return pid

    def _commit(self, work: str, plugin: dict[str, Any]) -> None:
        """A plugin made whole in ``work`` comes into place (one rename)."""
        write_atomic(os.path.join(work, CONFIG_FILE), fastjson.dumps(plugin), durable=True)
        with self.lock:
            self._name_free(plugin["Name"])
            os.rename(work, os.path.join(self.root, plugin["Id"]))
            _fsync_dir(self.root)
            self.plugins[plugin["Id"]] = plugin

    # -- state changes --
    def remove(self, ref_or_id: str, force: bool) -> None:
        with self.lock:
            plugin = self._resolve(ref_or_id)
            if plugin["Enabled"] and not force:
                raise Conflict(f"plugin {plugin['Name']} is enabled")
            pid = plugin["Id"]
            path = os.path.join(self.root, pid)
            removing = path + REMOVING_SUFFIX
            shutil.rmtree(removing, ignore_errors=True)
            try:
                os.rename(path, removing)
            except FileNotFoundError:
                pass  # (gone from under pyboxd: the record goes all the same)
            del self.plugins[pid]
        shutil.rmtree(removing, ignore_errors=True)
        self.emit("plugin", "remove", pid, {"name": ref_or_id})

    def set(self, ref_or_id: str, args: list[str]) -> None:
        with self.lock:
            plugin = self._resolve(ref_or_id)
            changed = copy.deepcopy(plugin)
            apply_settings(changed, args)
            self._save(changed)
            self.plugins[plugin["Id"]] = changed

    def disable(self, ref_or_id: str, force: bool) -> None:
        with self.lock:
            plugin = self._resolve(ref_or_id)
            if not plugin["Enabled"]:
                raise Conflict(f"plugin is already disabled: plugin {plugin['Name']} found "
                               "but disabled")
            plugin["Enabled"] = False
            self._save(plugin)
        self.emit("plugin", "disable", plugin["Id"], {"name": ref_or_id})

    def enable(self, ref_or_id: str, timeout: int) -> None:
        """dockerd starts the plugin with runc and waits ``timeout`` seconds
        for its socket.  pybox answers runc's error for an entrypoint that
        cannot start, and otherwise that it cannot run plugins."""
        with self.lock:
            plugin = self._resolve(ref_or_id)
            if plugin["Enabled"]:
                raise Conflict(f"plugin already enabled: plugin {plugin['Name']} is enabled")
            config = plugin["Config"]
            for mount in config.get("Mounts") or []:
                if mount.get("Source") is None:
                    raise PyboxError("mount source is not specified")
            args = [*(config.get("Entrypoint") or []), *(plugin["Settings"]["Args"] or [])]
            rootfs = os.path.join(self.root, plugin["Id"], ROOTFS)
            problem = (mount_problem(config.get("Mounts") or [])
                       or entrypoint_problem(rootfs, args, config.get("WorkDir") or "/"))
            if problem:
                raise PyboxError(RUNC_PREFIX + problem + ": unknown")
            raise PyboxError(f"plugin {plugin['Name']} cannot be enabled: pybox does not run "
                             "managed plugins (no plugin runtime)")

    # -- registry --
    def _fetch_manifest(self, ref: references.Reference,
                        credentials: Credentials) -> "Fetched":
        """The manifest of ``ref`` from its registry."""
        client = self.registries().client(ref.domain, credentials)
        last: RegistryError | None = None
        for endpoint in list(client.candidates):
            try:
                client.ping(endpoint)
                data, media_type, digest = client.get_manifest(ref.path,
                                                               ref.digest or ref.tag or "latest")
                doc = json.loads(data)
                if not isinstance(doc, dict):
                    raise RegistryError(f"invalid manifest for {ref}")
                return Fetched(doc, doc.get("mediaType") or media_type, client, data, digest)
            except RegistryError as e:
                last = e
            except ValueError as e:
                last = RegistryError(f"invalid manifest for {ref}: {e}")
        raise last or RegistryError(f"no endpoint for registry {ref.domain}")

    def privileges(self, remote: str, credentials: Credentials = ANONYMOUS) -> list[dict[str, Any]]:
        """GET /plugins/privileges: computePrivileges over the remote plugin's
        config; [] when the registry cannot be reached (moby swallows that)."""
        ref, _ = remote_reference(remote)
        try:
            fetched = self._fetch_manifest(ref, credentials)
        except (RegistryError, OSError):
            return []
        doc, media_type, client = fetched.doc, fetched.media_type, fetched.client
        config_desc = doc.get("config")
        if (media_type not in MANIFEST_MEDIA_TYPES or not isinstance(config_desc, dict)
                or config_desc.get("mediaType") != PLUGIN_CONFIG_MEDIA_TYPE
                or not isinstance(config_desc.get("digest"), str)):
            raise PyboxError(f"did not find plugin config for specified reference {ref}")
        try:
            with client.open_blob(ref.path, config_desc["digest"], None) as blob:
                data = b""
                while len(data) <= CONFIG_LIMIT:
                    chunk = blob.read(1 << 20)
                    if not chunk:
                        break
                    data += chunk
        except (RegistryError, OSError):
            return []
        try:
            config = parse_config(data)
        except PyboxError as e:
            raise PyboxError(f"error unmarshaling plugin config for {ref}: "
                             f"{str(e).removeprefix('failed to parse config: ')}") from None
        return compute_privileges(config)

    def pull(self, remote: str, name: str, credentials: Credentials = ANONYMOUS,
             privileges: list[dict[str, Any]] | None = None, upgrade: bool = False,
             progress: Progress = _no_progress) -> None:
        """POST /plugins/pull and /plugins/NAME/upgrade: the plugin's manifest,
        config and layers fetched with the registry client and installed
        (disabled) under its local name, or in place of the old one's config
        and rootfs.  Errors before the first ``progress`` message are the
        request's (dockerd's: the checks, then the manifest's fetch); after it,
        the stream's."""
        ref, tag = remote_reference(remote)
        local = local_name(ref, tag, name)
        with self.lock:
            if upgrade:
                old = self._resolve(local)
                if old["Enabled"]:
                    raise Conflict(f"plugin must be disabled before upgrading: plugin "
                                   f"{old['Name']} is enabled")
            elif any(p["Name"] == local for p in self.plugins.values()):
                raise BadRequest(f"plugin {local} already exists")
        try:
            fetched = self._fetch_manifest(ref, credentials)
        except (RegistryError, OSError) as e:
            raise PyboxError(f"error resolving plugin reference: {e}") from None
        doc, media_type, client = fetched.doc, fetched.media_type, fetched.client
        # from here on dockerd's answer is a stream (errors its last line)
        progress({"status": f"Pulling from {ref.familiar_name}", "id": ref.tag or ref.digest})
        progress({"status": f"Digest: {fetched.digest}"})
        config_desc = doc.get("config")
        layers = doc.get("layers")
        if (media_type not in MANIFEST_MEDIA_TYPES or not isinstance(config_desc, dict)
                or config_desc.get("mediaType") != PLUGIN_CONFIG_MEDIA_TYPE):
            raise PyboxError("fetched plugin image but plugin config is missing")
        if not isinstance(layers, list) or not all(
                isinstance(d, dict) and isinstance(d.get("digest"), str) for d in layers):
            raise PyboxError(f"invalid manifest for {ref}: bad layers")
        work = tempfile.mkdtemp(prefix="pull-", dir=self.tmp)
        try:
            blobs = os.path.join(work, BLOBS)
            os.mkdir(blobs, 0o700)
            config_bytes = self._download(client, ref, config_desc, blobs)
            config = parse_config(config_bytes)
            if privileges is not None and not privileges_equal(compute_privileges(config),
                                                               privileges):
                raise PyboxError("incorrect privileges")
            rootfs = os.path.join(work, ROOTFS)
            os.mkdir(rootfs, 0o755)
            # one layer (what docker plugin create makes) unpacks into the rootfs;
            # several each into its own directory, then flattened as overlay
            # shows them (whiteouts delete, opaque directories hide)
            apart = len(layers) > 1
            layer_dirs = []
            for i, desc in enumerate(layers):
                short = desc["digest"].partition(":")[2][:12]
                progress(_status("Waiting", short))
                self._download(client, ref, desc, blobs, keep=False)
                progress(_status("Download complete", short))
                dest = os.path.join(work, f"layer-{i}") if apart else rootfs
                if apart:
                    os.mkdir(dest, 0o755)
                    layer_dirs.append(dest)
                try:
                    with open(os.path.join(blobs, desc["digest"].partition(":")[2]), "rb") as f:
                        unpack_layer(f, dest, allow_devices=True)
                except LayerError as e:
                    raise PyboxError(f"error applying plugin layer: {e}") from None
                progress(_status("Complete", short))
            if apart:
                flatten_layers(layer_dirs, rootfs)
                for dest in layer_dirs:
                    shutil.rmtree(dest)
            write_atomic(os.path.join(work, MANIFEST_FILE), fetched.data, durable=True)
            if upgrade:
                self._replace(work, local, config, str(ref))
            else:
                plugin: dict[str, Any] = {
                    "Config": config, "Enabled": False, "Id": secrets.token_hex(32),
                    "Name": local, "PluginReference": str(ref),
                    "Settings": initial_settings(config),
                }
                self._commit(work, plugin)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        self.emit("plugin", "pull", ref.familiar(), {"name": local})

    def _download(self, client: "RegistryClient", ref: references.Reference, desc: dict[str, Any],
                  blobs: str, keep: bool = True) -> bytes:
        """A blob of the plugin into ``blobs`` (its digest checked); -> its bytes
        when ``keep`` (the config), else b"" (a layer, left on disk)."""
        digest = desc["digest"]
        algorithm, _, hexpart = digest.partition(":")
        if algorithm != "sha256" or not VALID_FULL_ID.match(hexpart):
            raise PyboxError(f"invalid digest {digest!r} in the manifest of {ref}")
        size = desc.get("size") if isinstance(desc.get("size"), int) else None
        h = hashlib.sha256()
        kept = bytearray()
        path = os.path.join(blobs, hexpart)
        try:
            with client.open_blob(ref.path, digest, size) as blob, open(path, "wb") as out:
                while chunk := blob.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
                    if keep:
                        kept += chunk
                        if len(kept) > CONFIG_LIMIT:
                            raise PyboxError(f"plugin config of {ref} larger than "
                                             f"{CONFIG_LIMIT} bytes")
        except (RegistryError, OSError) as e:
            raise PyboxError(f"error fetching {digest} of {ref}: {e}") from None
        if "sha256:" + h.hexdigest() != digest:
            raise PyboxError(f"digest mismatch for {digest} of {ref}")
        return bytes(kept)

    def _replace(self, work: str, name: str, config: dict[str, Any], reference: str) -> None:
        """An upgrade: the plugin keeps its id, name and settings; its config,
        rootfs, manifest and blobs are the new ones (moby's upgradePlugin)."""
        with self.lock:
            plugin = self._resolve(name)
            if plugin["Enabled"]:
                raise Conflict(f"plugin must be disabled before upgrading: plugin "
                               f"{plugin['Name']} is enabled")
            pdir = os.path.join(self.root, plugin["Id"])
            changed = dict(plugin, Config=config, PluginReference=reference)
            write_atomic(os.path.join(work, CONFIG_FILE), fastjson.dumps(changed), durable=True)
            # two renames; a crash between them leaves <id>-old alone, which the
            # next start renames back (the plugin as it was before the upgrade)
            old = pdir + OLD_SUFFIX
            shutil.rmtree(old, ignore_errors=True)
            os.rename(pdir, old)
            os.rename(work, pdir)
            _fsync_dir(self.root)
            self.plugins[plugin["Id"]] = changed
        shutil.rmtree(old, ignore_errors=True)

    def push_check(self, ref_or_id: str) -> tuple[references.Reference, str]:
        """The reference a push of the plugin goes to and the plugin's id (404
        for no such plugin)."""
        with self.lock:
            plugin = self._resolve(ref_or_id)
        return references.parse(plugin["Name"]), plugin["Id"]

    def push(self, ref: references.Reference, pid: str, credentials: Credentials = ANONYMOUS,
             progress: Progress = _no_progress) -> None:
        """POST /plugins/NAME/push: the plugin's blobs and manifest to its
        registry (moby's Push: "Preparing" per blob, "Upload complete", then the
        aux record with the tag, digest and size)."""
        pdir = os.path.join(self.root, pid)
        try:
            with open(os.path.join(pdir, MANIFEST_FILE), "rb") as f:
                manifest = f.read()
            doc = json.loads(manifest)
        except (OSError, ValueError) as e:
            raise PyboxError(f"error reading plugin manifest: {e}") from None
        descs = [*doc.get("layers", []), doc["config"]]
        for desc in descs:
            progress(_status("Preparing", desc["digest"].partition(":")[2][:12]))
        client = self.registries().client(ref.domain, credentials, push=True)
        last: RegistryError | None = None
        for endpoint in list(client.candidates):
            try:
                client.ping(endpoint)
                last = None
                break
            except (RegistryError, OSError) as e:
                last = e if isinstance(e, RegistryError) else RegistryError(str(e))
        if last is not None:
            raise PyboxError(f"error pushing plugin: {last}")
        scopes = [f"repository:{ref.path}:pull,push"]  # (registry.push_scope's)
        try:
            for desc in descs:
                digest = desc["digest"]
                path = os.path.join(pdir, BLOBS, digest.partition(":")[2])
                size = os.path.getsize(path)
                if client.blob_size(ref.path, digest, scopes=scopes) is None:
                    _, location = client.start_upload(ref.path, scopes=scopes)
                    assert location is not None  # (no mount asked: an upload URL)
                    client.finish_upload(location, digest, scopes=scopes,
                                         body=functools.partial(_open_binary, path), size=size)
            for desc in descs:
                progress(_status("Upload complete", desc["digest"].partition(":")[2][:12]))
            digest = client.put_manifest(ref.path, ref.tag or "latest", manifest,
                                         SCHEMA2_MEDIA_TYPE)
        except (RegistryError, OSError) as e:
            raise PyboxError(f"error pushing plugin: {e}") from None
        progress({"progressDetail": {}, "aux": {"Tag": ref.tag or "latest", "Digest": digest,
                                                "Size": len(manifest)}})


def privileges_equal(required: list[dict[str, Any]], given: list[Any]) -> bool:
    """moby's isEqual over privileges: as many, and after sorting by name the
    same names and values -- from the second on (moby's loop starts at 1)."""
    if len(required) != len(given):
        return False

    def key(p: Any) -> str:
        return p.get("Name", "") if isinstance(p, dict) else ""

    ours, theirs = sorted(required, key=key), sorted(given, key=key)
    for a, b in list(zip(ours, theirs, strict=True))[1:]:
        if not isinstance(b, dict) or a["Name"] != b.get("Name"):
            return False
        values = b.get("Value")
        if sorted(a["Value"] or []) != sorted(values if isinstance(values, list) else []):
            return False
    return True


def _status(text: str, ident: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"status": text}
    if ident is not None:
        message["progressDetail"] = {}
        message["id"] = ident
    return message


def _filter_match(values: list[str], source: str) -> bool:
    """filters.Args.Match: an exact value, or one that as a regular expression
    matches somewhere in ``source``."""
    for value in values:
        if value == source:
            return True
        try:
            if re.search(value, source):
                return True
        except re.error:
            continue
    return False


def build_manifest(config: tuple[str, int], layers: list[tuple[str, int]]) -> bytes:
    """moby's buildManifest: a schema2 manifest whose config is the plugin's."""
    doc = {"schemaVersion": 2, "mediaType": SCHEMA2_MEDIA_TYPE,
           "config": {"mediaType": PLUGIN_CONFIG_MEDIA_TYPE, "size": config[1],
                      "digest": config[0]},
           "layers": [{"mediaType": LAYER_MEDIA_TYPE, "size": size, "digest": digest}
                      for digest, size in layers]}
    return fastjson.dumps(doc).encode()


def _write_blob(blobs: str, data: bytes) -> str:
    """A blob into the directory ``blobs`` (named by its hex digest); -> its digest."""
    digest = hashlib.sha256(data).hexdigest()
    write_atomic(os.path.join(blobs, digest), data)
    return "sha256:" + digest


def _open_binary(path: str) -> IO[bytes]:
    return open(path, "rb")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mount_problem(mounts: list[dict[str, Any]]) -> str | None:
    """runc's error for a plugin mount of a filesystem type the kernel does
    not know (a config's mount without "type" is one: runc mounts type "")."""
    try:
        with open("/proc/filesystems") as f:
            known = {line.split()[-1] for line in f if line.strip()}
    except OSError:
        known = set()
    for mount in mounts:
        kind = mount.get("Type") or ""
        if kind != "bind" and kind not in known:
            source, target = mount.get("Source") or "", mount.get("Destination") or ""
            return (f'error during container init: error mounting "{source}" to rootfs at '
                    f'"{target}": mount {source}:{target} (via /proc/self/fd/6): no such device')
    return None


def entrypoint_problem(rootfs: str, args: list[str], cwd: str) -> str | None:
    """What runc says when the plugin's process cannot be started in
    ``rootfs`` (None when it could be): no args, an executable not found, not a
    file or not executable."""
    if not args:
        return "args must not be empty"
    name = args[0]
    if "/" not in name:
        for directory in DEFAULT_PATH.split(":"):
            if _executable(secure_join(rootfs, posixpath.join(directory, name))):
                return None
        return f'exec: "{name}": executable file not found in $PATH'
    path = secure_join(rootfs, posixpath.join(cwd, name))
    try:
        st = os.stat(path)
    except OSError as e:
        return f'exec: "{name}": stat {name}: {os.strerror(e.errno or 2).lower()}'
    if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
        return f'exec: "{name}": permission denied'
    return None


def _executable(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)
