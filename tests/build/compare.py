"""The build corpus's harness: build a case with a daemon's classic builder
(``DOCKER_BUILDKIT=0 docker build``, the docker 28 CLI), read the image back
with ``docker save`` and compare two daemons' images.

What is compared (``differences``): the image config's user-visible fields
(CONFIG_KEYS, the author), the history (created_by and empty_layer of every
entry), every layer's entries (path, type, mode with the set-id and sticky
bits, owner, symlink target, content digest; whiteouts and opaque directories
as overlay-free tar markers) and the flattened file tree.  Modification times
are not compared: a RUN's files are made at build time.

A case is a directory of tests/build/corpus/: its Dockerfile, its context
files, and a case.json of what else it needs and what its image must hold:

    args        more ``docker build`` arguments (--target, --build-arg)
    needs       cases built before this one (tagged ``corpus-<name>``: an
                ONBUILD base, an image COPY --from names)
    pybox_only  why dockerd 20.10's classic builder cannot build it (heredocs,
                --chmod, --link): its image is checked against the expected
                content only
    files       path -> exact content;  absent: paths that must not exist
    links       path -> symlink target;  modes: path -> "0755";  owners: path -> "uid:gid"
    config      config field -> its value (null for unset)
"""

import dataclasses
import hashlib
import io
import json
import os
import posixpath
import re
import subprocess
import tarfile

from support.paths import DOCKER

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts", "Volumes",
               "StopSignal", "Healthcheck", "Shell", "OnBuild")
KEEP_CONTENT = 1 << 20  # file contents kept for the expectations (digests for everything)
BUILD_TIMEOUT = 300


# -- the cases --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    name: str
    path: str
    args: list[str]
    needs: list[str]
    pybox_only: str | None
    files: dict[str, str]
    absent: list[str]
    links: dict[str, str]
    modes: dict[str, str]
    owners: dict[str, str]
    config: dict

    @property
    def tag(self) -> str:
        return tag_of(self.name)


def tag_of(name: str) -> str:
    return f"corpus-{name}"


def load_cases(corpus: str = CORPUS) -> list[Case]:
    cases = []
    for name in sorted(os.listdir(corpus)):
        path = os.path.join(corpus, name)
        if not os.path.isfile(os.path.join(path, "Dockerfile")):
            continue
        spec = {}
        if os.path.exists(os.path.join(path, "case.json")):
            with open(os.path.join(path, "case.json")) as f:
                spec = json.load(f)
        cases.append(Case(name=name, path=path, args=spec.get("args", []), needs=spec.get("needs", []),
                          pybox_only=spec.get("pybox_only"), files=spec.get("files", {}),
                          absent=spec.get("absent", []), links=spec.get("links", {}),
                          modes=spec.get("modes", {}), owners=spec.get("owners", {}),
                          config=spec.get("config", {})))
    return cases


# -- a daemon, as the docker CLI sees it ------------------------------------------------------------
class Side:
    """One daemon (``name``: pyboxd or dockerd) and the CLI environment that talks to it."""

    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.env = dict(env, DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")

    @classmethod
    def of_pyboxd(cls, pyboxd) -> "Side":
        return cls("pyboxd", pyboxd.cli_env)

    @classmethod
    def of_dockerd(cls, dockerd) -> "Side":
        env = dict(os.environ, DOCKER_HOST=dockerd.host, DOCKER_CONFIG=os.path.join(dockerd.base, "cli"))
        env.pop("DOCKER_CONTEXT", None)
        return cls("dockerd", env)

    def docker(self, *args: str, input: bytes | None = None, timeout: float = BUILD_TIMEOUT,
               raw: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run([DOCKER, *args], input=input, env=self.env, capture_output=True,
                              timeout=timeout)
        if raw:
            return proc
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                           proc.stderr.decode(errors="replace"))

    def build(self, context: str, *args: str, tag: str | None = None) -> subprocess.CompletedProcess:
        """``docker build [-t TAG] ARGS CONTEXT`` with the legacy builder."""
        return self.docker("build", *(["-t", tag] if tag else []), *args, context)

    def image_id(self, ref: str) -> str | None:
        proc = self.docker("image", "inspect", "--format", "{{.Id}}", ref)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def containers(self) -> set[str]:
        return set(self.docker("ps", "-aq", "--no-trunc").stdout.split())


def build_error(proc: subprocess.CompletedProcess) -> str:
    """The last line the CLI wrote to stderr that is not its legacy-builder notice."""
    lines = [line for line in proc.stderr.splitlines()
             if line.strip() and "DEPRECATED" not in line and "BuildKit" not in line
             and "environment-variable" not in line]
    return lines[-1] if lines else ""


# -- an image, read back ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Entry:
    kind: str          # file, dir, symlink, hardlink, fifo, char, block, whiteout, opaque
    mode: int          # permission bits with set-id and sticky
    owner: str         # "uid:gid"
    link: str = ""     # symlink target (or a hard link's target path)
    digest: str = ""   # sha256 of a file's content
    group: str = ""    # hard-linked files: the first path of their group (whichever the tar made primary)

    def describe(self) -> str:
        text = f"{self.kind} {self.mode:04o} {self.owner}"
        if self.link:
            text += f" -> {self.link}"
        if self.digest:
            text += f" sha256:{self.digest[:12]}"
        if self.group:
            text += f" (hard link of {self.group})"
        return text


@dataclasses.dataclass
class Snapshot:
    image_id: str
    config: dict          # the image config's "config"
    raw: dict             # the whole image config, as saved
    author: str
    history: list[tuple[str, bool]]   # (created_by, empty_layer)
    layers: list[dict[str, Entry]]    # each layer's entries by path ("/etc/passwd")
    tree: dict[str, Entry]            # the layers applied, hard links resolved to files
    contents: dict[str, bytes]        # the tree's files' contents (small ones)


_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.FIFOTYPE: "fifo",
          tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block"}


def _path(name: str) -> str:
    return posixpath.normpath("/" + name.lstrip("./").rstrip("/")) if name.strip("./") else "/"


Files = tuple[dict[str, Entry], dict[str, bytes]]  # entries by path, the files' contents


def read_layer(data: bytes) -> Files:
    entries: dict[str, Entry] = {}
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for info in tar:
            path = _path(info.name)
            base = posixpath.basename(path)
            owner = f"{info.uid}:{info.gid}"
            if base.startswith(".wh."):  # kept under their own names: /d/.wh.x, /d/.wh..wh..opq
                entries[path] = Entry("opaque" if base == ".wh..wh..opq" else "whiteout", 0, "")
                continue
            kind = _KINDS.get(info.type, f"type-{info.type!r}")
            digest = link = ""
            if kind == "file":
                body = tar.extractfile(info).read()
                digest = hashlib.sha256(body).hexdigest()
                if len(body) <= KEEP_CONTENT:
                    contents[path] = body
            elif kind == "symlink":
                link = info.linkname
            elif kind == "hardlink":
                link = _path(info.linkname)
            entries[path] = Entry(kind, info.mode & 0o7777, owner, link, digest)
    # hard links within the layer: every member a file, naming its group
    groups: dict[str, list[str]] = {}
    for path, entry in entries.items():
        if entry.kind == "hardlink" and entries.get(entry.link, Entry("", 0, "")).kind == "file":
            groups.setdefault(entry.link, [entry.link]).append(path)
    for source, members in groups.items():
        for path in members:
            entries[path] = dataclasses.replace(entries[source], group=min(members))
            if source in contents:
                contents[path] = contents[source]
    return entries, contents


def _under(path: str, top: str) -> bool:
    return path.startswith(top.rstrip("/") + "/")


def flatten(layers: list[Files]) -> Files:
    """The layers applied in order, as overlay shows them."""
    tree: dict[str, Entry] = {}
    contents: dict[str, bytes] = {}

    def drop(top: str, itself: bool) -> None:
        for p in [p for p in tree if _under(p, top) or (itself and p == top)]:
            del tree[p]
            contents.pop(p, None)

    for entries, data in layers:
        for path, entry in entries.items():
            if entry.kind == "opaque":
                drop(posixpath.dirname(path), itself=False)
                continue
            if entry.kind == "whiteout":
                drop(posixpath.join(posixpath.dirname(path), posixpath.basename(path)[4:]), itself=True)
                continue
            if path in tree and tree[path].kind == "dir" and entry.kind != "dir":
                drop(path, itself=False)
            contents.pop(path, None)
            if path in data:
                contents[path] = data[path]
            tree[path] = entry
    return tree, contents


def snapshot(side: Side, ref: str) -> Snapshot:
    """``docker save REF`` read back: config, history, layers, the flattened tree."""
    proc = side.docker("save", ref, raw=True)
    if proc.returncode != 0:
        raise AssertionError(f"{side.name}: docker save {ref}: {proc.stderr.decode(errors='replace')}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        members = {_path(m.name).lstrip("/"): m for m in tar.getmembers()}

        def read(name: str) -> bytes:
            member = members[_path(name).lstrip("/")]
            while member.issym() or member.islnk():  # OCI layouts link blobs
                target = posixpath.join(posixpath.dirname(member.name), member.linkname) \
                    if member.issym() else member.linkname
                member = members[_path(target).lstrip("/")]
            return tar.extractfile(member).read()

        manifest = json.loads(read("manifest.json"))[0]
        config = json.loads(read(manifest["Config"]))
        layers = [read_layer(read(name)) for name in manifest["Layers"]]
    tree, contents = flatten(layers)
    history = [(h.get("created_by", ""), bool(h.get("empty_layer", False)))
               for h in config.get("history", [])]
    return Snapshot(image_id=side.image_id(ref) or "", config=config.get("config") or {}, raw=config,
                    author=config.get("author", ""), history=history, layers=[e for e, _ in layers],
                    tree=tree, contents=contents)


# -- comparisons ------------------------------------------------------------------------------------
# the image config's string fields: Go writes "" for unset, other encoders may leave them out
STRING_KEYS = ("WorkingDir", "User", "StopSignal")


def config_value(config: dict, key: str) -> object:
    """A config field as a user reads it: unset strings are "", unset lists and maps null."""
    value = config.get(key)
    if value is None and key in STRING_KEYS:
        return ""
    return value


SOURCE_HASH = re.compile(r"(file|dir|multi):[0-9a-f]{64}\b")


def mask_source_hashes(history: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """COPY/ADD's created_by with the sources' content hashes (``file:<sha256>``) masked."""
    return [(SOURCE_HASH.sub(r"\1:<hash>", created_by), empty) for created_by, empty in history]


def differences(got: Snapshot, want: Snapshot, got_name: str = "pyboxd",
                want_name: str = "dockerd", source_hashes: bool = True) -> list[str]:
    """Every user-visible difference between two images, one line each
    (``source_hashes=False``: COPY/ADD's source hashes in history not compared)."""
    out: list[str] = []
    got_history, want_history = got.history, want.history
    if not source_hashes:
        got_history, want_history = mask_source_hashes(got_history), mask_source_hashes(want_history)
    for key in CONFIG_KEYS:
        a, b = config_value(got.config, key), config_value(want.config, key)
        if a != b:
            out.append(f"config {key}: {got_name} {json.dumps(a)} != {want_name} {json.dumps(b)}")
    if got.author != want.author:
        out.append(f"author: {got_name} {got.author!r} != {want_name} {want.author!r}")
    if len(got_history) != len(want_history):
        out.append(f"history: {got_name} has {len(got_history)} entries, {want_name} {len(want_history)}")
    for i, (a, b) in enumerate(zip(got_history, want_history)):  # noqa: B905 -- the lengths are told above
        if a != b:
            out.append(f"history {i}: {got_name} {a} != {want_name} {b}")
    if len(got.layers) != len(want.layers):
        out.append(f"layers: {got_name} has {len(got.layers)}, {want_name} {len(want.layers)}")
    else:
        for i, (a, b) in enumerate(zip(got.layers, want.layers, strict=True)):
            out += [f"layer {i}: {line}" for line in _tree_differences(a, b, got_name, want_name)]
    out += [f"tree: {line}" for line in _tree_differences(got.tree, want.tree, got_name, want_name)]
    return out


def _tree_differences(a: dict[str, Entry], b: dict[str, Entry], got_name: str, want_name: str) -> list[str]:
    out = []
    for path in sorted(set(a) | set(b)):
        x, y = a.get(path), b.get(path)
        if x == y:
            continue
        if x is None:
            out.append(f"{path}: only in {want_name} ({y.describe()})")
        elif y is None:
            out.append(f"{path}: only in {got_name} ({x.describe()})")
        else:
            out.append(f"{path}: {got_name} {x.describe()} != {want_name} {y.describe()}")
    return out


def unmet(case: Case, snap: Snapshot) -> list[str]:
    """What the case's case.json expects that the image does not have."""
    out = []
    for path, text in case.files.items():
        entry = snap.tree.get(path)
        if entry is None or entry.kind != "file":
            out.append(f"{path}: expected a file, found {entry.describe() if entry else 'nothing'}")
        elif snap.contents.get(path) != text.encode():
            out.append(f"{path}: content {snap.contents.get(path)!r} != expected {text.encode()!r}")
    for path in case.absent:
        if path in snap.tree:
            out.append(f"{path}: should not exist, found {snap.tree[path].describe()}")
    for path, target in case.links.items():
        entry = snap.tree.get(path)
        if entry is None or entry.kind != "symlink" or entry.link != target:
            found = entry.describe() if entry else "nothing"
            out.append(f"{path}: expected a symlink to {target}, found {found}")
    for path, mode in case.modes.items():
        entry = snap.tree.get(path)
        if entry is None or entry.mode != int(mode, 8):
            out.append(f"{path}: expected mode {mode}, found {entry.describe() if entry else 'nothing'}")
    for path, owner in case.owners.items():
        entry = snap.tree.get(path)
        if entry is None or entry.owner != owner:
            out.append(f"{path}: expected owner {owner}, found {entry.describe() if entry else 'nothing'}")
    for key, value in case.config.items():
        if config_value(snap.config, key) != value:
            out.append(f"config {key}: {json.dumps(config_value(snap.config, key))} != expected "
                       f"{json.dumps(value)}")
    return out


def steps(output: str) -> list[tuple[str, bool]]:
    """A classic build's output as (step instruction, used the cache) pairs."""
    out: list[tuple[str, bool]] = []
    for line in output.splitlines():
        if line.startswith("Step ") and " : " in line:
            out.append((line.split(" : ", 1)[1], False))
        elif line.strip() == "---> Using cache" and out:
            out[-1] = (out[-1][0], True)
    return out
