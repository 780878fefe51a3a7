"""The classic builder's entry point: ``build()`` turns a context directory and
its Dockerfile into an image, as dockerd 20.10's builder/dockerfile does.

The API (pybox.api.build) fills ``BuildOptions`` from POST /build's query and
hands a ``BuildOutput`` that turns ``stream``/``aux`` calls into the JSON
message stream; ``cancel`` is set when the client goes away.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pybox.build.cache import Prober
from pybox.build.copy import resolve_in_scope
from pybox.build.dockerfile import Dockerfile, Instruction, Stage, parse
from pybox.build.expand import expand_word
from pybox.build.steps import (
    BUILTIN_ARGS,
    BuildArgs,
    Context,
    StageState,
    begin_stage,
    check_flags,
    dispatch,
    flag,
    remove_container,
    words_of,
)
from pybox.errors import BadRequest, BuildError, PyboxError
from pybox.images import reference as references

if TYPE_CHECKING:
    from pybox.build.context import ContextFiles
    from pybox.engine.engine import Engine
    from pybox.images.service import Images

MAX_DOCKERFILE = 16 << 20


@dataclass
class BuildOptions:
    """POST /build's query, decoded (the API fills it; defaults are dockerd's)."""

    tags: list[str] = field(default_factory=list)
    dockerfile: str = "Dockerfile"  # path inside context_dir
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    remove: bool = True  # rm
    force_remove: bool = False  # forcerm
    labels: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    network_mode: str = ""
    extra_hosts: list[str] = field(default_factory=list)
    shm_size: int = 0
    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpu_period: int = 0
    cpu_quota: int = 0
    ulimits: list[dict[str, Any]] = field(default_factory=list)
    platform: str = ""
    quiet: bool = False
    squash: bool = False
    registry_auth: dict[str, dict[str, Any]] = field(default_factory=dict)  # X-Registry-Config
    # the Dockerfile as the API read it (dockerd's Detect reads it, then may
    # remove it from the context: .dockerignore naming it, a remote Dockerfile)
    dockerfile_content: bytes | None = None
    # the context's tar headers carry the file type bits in the mode (dockerd's own
    # tar of a git checkout, docker CLIs before 24): its sources' sums keep them
    # (pybox.build.copy.Headers.DAEMON)
    type_bits: bool = False


class BuildOutput(Protocol):
    """Where the build's progress goes: the API writes each call as one JSON
    message of the stream."""

    def stream(self, text: str) -> None:
        """A {"stream": text} message (text with its newline)."""

    def aux(self, data: dict[str, Any]) -> None:
        """An {"aux": data} message ({"ID": "sha256:..."} at the end)."""

    # optional, looked up with getattr: progress(message) -- a FROM's pull
    # progress, docker's messages ({"status", "id", "progressDetail"}) as they are


def build(engine: Engine, options: BuildOptions, context_dir: str, out: BuildOutput,
          cancel: threading.Event, *, files: ContextFiles | None = None) -> str:
    """Build the Dockerfile ``options.dockerfile`` of ``context_dir``; -> the
    image id ("sha256:..."), tagged with ``options.tags``.  Raises BuildError
    in docker's words; on ``cancel`` the running step is stopped and the
    intermediate containers removed before it raises.  ``files``: the
    context not extracted yet (pybox.build.context): its sources are hashed
    from it, and it is extracted into ``context_dir`` when a step needs it."""
    if options.squash:
        raise BadRequest("squash is only supported with experimental mode")
    for tag in options.tags:
        try:
            ref = references.parse(tag)
        except PyboxError as e:
            raise BadRequest(str(e)) from None
        if ref.digest:
            raise BadRequest(f"invalid reference format: {tag}")
    if options.dockerfile_content is not None:
        text = options.dockerfile_content.decode("utf-8", "replace")
    else:
        text = _read_dockerfile(context_dir, options.dockerfile)
    dockerfile = parse(text)
    check_flags(dockerfile)
    images = engine.images.images
    scratch_dir, lock_fd = _scratch_dir(engine.data_root)
    prober = Prober(images, disabled=options.no_cache, sources=_cache_sources(images, options),
                    restricted=bool(options.cache_from))
    # (q=1: the API holds the messages back and shows them only with an error)
    ctx = Context(engine, options, context_dir, out, cancel, dockerfile.escape, prober,
                  scratch_dir, files)
    try:
        image_id = _run(ctx, dockerfile)
    except BaseException:
        if options.force_remove or cancel.is_set():
            _remove_all(ctx)
        raise
    finally:
        _release_scratch(scratch_dir, lock_fd)
    if options.remove or options.force_remove:
        _remove_all(ctx)
    ctx.say(f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n")
    for tag in options.tags:
        ref = references.parse(tag)
        engine.images.tag(image_id, str(ref))
        ctx.say(f"Successfully tagged {ref.familiar()}\n")
    return image_id


def _scratch_dir(data_root: str) -> tuple[str, int]:
    """A private directory for the steps' temporary files (downloads,
    here-documents) -- not the image store's ingest dir, which a garbage
    collection empties at any time -- held by an flock on DIR.lock; the ones
    a killed daemon left (nobody holds their lock) are removed first, under
    the root's lock so no build is made meanwhile.  -> (the directory, the
    lock's fd)."""
    root = os.path.join(data_root, "builder")
    os.makedirs(root, mode=0o700, exist_ok=True)
    root_fd = os.open(os.path.join(root, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(root_fd, fcntl.LOCK_EX)
        for name in os.listdir(root):
            if not (name.startswith("build-") and name.endswith(".lock")):
                continue
            lock = os.path.join(root, name)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a running build's
            finally:
                os.close(fd)  # (a lock taken here goes with the close)
            shutil.rmtree(lock.removesuffix(".lock"), ignore_errors=True)
            with contextlib.suppress(OSError):
                os.unlink(lock)
        path = tempfile.mkdtemp(prefix="build-", dir=root)
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return path, fd
    finally:
        os.close(root_fd)


def _release_scratch(path: str, fd: int) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.unlink(path + ".lock")
    os.close(fd)


def _cache_sources(images: Images, options: BuildOptions) -> list[str]:
    """--cache-from's images, by Id; the missing ones skipped (dockerd only
    logs them)."""
    found = []
    for ref in options.cache_from:
        try:
            found.append(images.resolve(ref))
        except PyboxError:
            continue
    return found


def _read_dockerfile(context_dir: str, name: str) -> str:
    """The Dockerfile, found inside the context only (a hostile name cannot
    reach out of it)."""
    path = resolve_in_scope(context_dir, name or "Dockerfile")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_DOCKERFILE)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise BadRequest(f"Cannot locate specified Dockerfile: {name}") from None
    except OSError as e:
        raise BuildError(f"reading {name}: {e.strerror}") from None
    return data.decode("utf-8", "replace")


def _remove_all(ctx: Context) -> None:
    for cid in list(ctx.containers):
        if ctx.running == cid or ctx.cancel.is_set():
            with contextlib.suppress(PyboxError):
                ctx.engine.kill(cid)
        remove_container(ctx, cid)


def _stage_refs(stage: Stage, meta: dict[str, str], escape: str) -> list[str]:
    """The stages or images a stage needs: its base and COPY --from's."""
    refs = []
    try:
        refs.append(expand_word(stage.base, meta, escape).lower())
    except PyboxError:
        refs.append(stage.base.lower())
    for ins in stage.instructions:
        value = flag(ins, "from")
        if ins.keyword == "COPY" and value:
            refs.append(value.lower())
    return refs


def _needed(stages: tuple[Stage, ...], target: int, meta: dict[str, str], escape: str) -> set[int]:
    """The stages the target needs (itself, its bases, COPY --from's), by index."""
    names = {s.name.lower(): s.index for s in stages if s.name}
    needed = set()
    todo = [target]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        for ref in _stage_refs(stages[index], meta, escape):
            if ref in names and names[ref] < index:
                todo.append(names[ref])
            elif ref.isdigit() and int(ref) < index:
                todo.append(int(ref))
    return needed


def _run(ctx: Context, dockerfile: Dockerfile) -> str:
    options = ctx.options
    stages = dockerfile.stages
    if not stages:
        raise BuildError("No image was generated. Is your Dockerfile empty?")
    target = len(stages) - 1
    if options.target:
        found = [s.index for s in stages if s.name and s.name.lower() == options.target.lower()]
        if not found:
            raise BadRequest(f"failed to reach build target {options.target} in Dockerfile")
        target = found[0]
    args = BuildArgs(dict(options.build_args))
    extra: list[Instruction] = []
    for key in sorted(options.labels):
        value = options.labels[key]
        extra.append(Instruction("LABEL", [key, value], [], False,
                                 f"LABEL {key}={value}", 0, 0, ()))
    # the meta ARGs first: they decide the FROM lines (and so the stages needed)
    meta_env: dict[str, str] = {}
    for ins in dockerfile.meta_args:
        for word in words_of(ins):
            key, sep, value = word.partition("=")
            val = expand_word(value, args.all_meta(), dockerfile.escape) if sep else None
            args.add(key, val, meta=True)
    meta_env = args.all_meta()
    needed = _needed(stages, target, meta_env, dockerfile.escape)
    chosen = [s for s in stages[:target + 1] if s.index in needed]
    total = len(dockerfile.meta_args) + sum(1 + len(s.instructions) for s in chosen) + len(extra)
    step = 0

    def say_step(text: str) -> None:
        nonlocal step
        step += 1
        ctx.say(f"Step {step}/{total} : {text}\n")

    for ins in dockerfile.meta_args:
        say_step(ins.original)
    image_id = ""
    final_args = args
    for stage in chosen:
        if ctx.cancel.is_set():
            raise BuildError("Build cancelled")
        if stage.name and stage.name.lower() in ctx.stage_names:
            raise BuildError(f"{stage.name} stage name already used")
        say_step(_from_line(stage))
        state = StageState({}, "", args.for_stage(), stage.name)
        begin_stage(ctx, state, stage, dockerfile.escape)
        ctx.say(f" ---> {_short(state.image_id)}\n")
        instructions = list(stage.instructions)
        if stage.index == target:
            instructions += extra
        for ins in instructions:
            if ctx.cancel.is_set():
                ctx.say("Build cancelled\n")
                raise BuildError("Build cancelled")
            say_step(ins.original)
            dispatch(ctx, state, ins)
            ctx.say(f" ---> {_short(state.image_id)}\n")
        if state.image_id:
            ctx.out.aux({"ID": state.image_id})
        args.referenced |= state.args.referenced
        ctx.stage_images[stage.index] = state.image_id
        if stage.name:
            ctx.stage_names[stage.name.lower()] = stage.index
        image_id = state.image_id
        final_args = state.args
    unused = sorted(k for k in options.build_args
                    if k not in args.referenced and k not in BUILTIN_ARGS)
    del final_args
    if unused:
        ctx.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
    if not image_id:
        raise BuildError("No image was generated. Is your Dockerfile empty?")
    return image_id


def _from_line(stage: Stage) -> str:
    platform = f"--platform={stage.platform} " if stage.platform else ""
    name = f" AS {stage.name}" if stage.name else ""
    return f"FROM {platform}{stage.base}{name}"


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]
