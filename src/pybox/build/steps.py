"""The instructions' effects, as moby's builder/dockerfile dispatchers.go:
each one changes the stage's run config (docker's container Config: Env, Cmd,
Labels ...) and commits a step image, either metadata only (its history a
``/bin/sh -c #(nop) ...`` line, an empty layer) or with the layer a RUN
container, a COPY/ADD or a WORKDIR wrote.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import posixpath
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybox.build import layers
from pybox.build.cache import Prober
from pybox.build.copy import (
    Headers,
    Source,
    chown_ids,
    collect_sources,
    copy_into,
    download,
    is_url,
    mkdir_all,
    resolve_in_scope,
    write_heredoc_source,
)
from pybox.build.dockerfile import Dockerfile, Instruction, Stage, parse_instructions
from pybox.build.expand import expand_word, expand_words
from pybox.engine import spec as specmod
from pybox.errors import BuildError, DockerfileParseError, ImageNotFound, PyboxError
from pybox.formats.durations import go_duration
from pybox.formats.registryauth import ANONYMOUS, Credentials
from pybox.images import platforms, progress
from pybox.images import reference as references
from pybox.images.config import DEFAULT_PATH_ENV
from pybox.images.platforms import Platform

if TYPE_CHECKING:
    from pybox.build.builder import BuildOptions, BuildOutput
    from pybox.build.context import ContextFiles
    from pybox.engine.engine import Engine

DEFAULT_SHELL = ["/bin/sh", "-c"]
# moby's builtinAllowedBuildArgs: usable without an ARG, kept out of history
BUILTIN_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
SNAPSHOT_PREFIX = "build-"


def go_quote(text: str) -> str:
    """Go's strconv.Quote (what %q prints) for the usual strings."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_quote_rune(value: int) -> str:
    """Go's %q of an integer: strconv.QuoteRune ('\x00', 'A')."""
    short = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
             39: "\\'", 92: "\\\\"}
    if value in short:
        return f"'{short[value]}'"
    if value < 0x20 or value == 0x7F:
        return f"'\\x{value:02x}'"
    if value > 0x10FFFF:
        return "'\\ufffd'"
    char = chr(value)
    if not char.isprintable():
        return f"'\\u{value:04x}'" if value <= 0xFFFF else f"'\\U{value:08x}'"
    return f"'{char}'"


def go_list(items: list[str] | None, quote: bool = False) -> str:
    """Go's %v (or %q) of a []string: ``[a b]``."""
    return "[" + " ".join(go_quote(i) if quote else i for i in (items or [])) + "]"


def go_duration_string(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, scale in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= scale:
                whole, frac = divmod(ns, scale)
                text = str(whole) + (("." + f"{frac:0{len(str(scale)) - 1}d}".rstrip("0"))
                                     if frac else "")
                return sign + text + unit
    seconds, frac = divmod(ns, 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = str(secs) + (("." + f"{frac:09d}".rstrip("0")) if frac else "") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{sign}{minutes}m{sec_text}"
    return sign + sec_text


# -- build arguments (moby's BuildArgs) --------------------------------------------------

@dataclass
class BuildArgs:
    """ARG's values: the client's --build-arg ``options``, the ARGs declared in
    this stage (``allowed``) and before the first FROM (``meta``)."""

    options: dict[str, str | None]
    allowed: dict[str, str | None] = field(default_factory=dict)
    meta: dict[str, str | None] = field(default_factory=dict)
    referenced: set[str] = field(default_factory=set)

    def for_stage(self) -> BuildArgs:
        """A new stage's: the meta args known, no ARG declared yet."""
        return BuildArgs(self.options, {}, dict(self.meta), set(self.referenced))

    def add(self, key: str, value: str | None, meta: bool = False) -> None:
        self.allowed[key] = value
        self.referenced.add(key)
        if meta:
            self.meta[key] = value

    def _get(self, key: str, mapping: dict[str, str | None]) -> str | None:
        value = self.options.get(key)
        if key in self.options and value is not None:
            return value
        default = mapping.get(key)
        if default is None:
            return self.meta.get(key)
        return default

    def _all(self, mapping: dict[str, str | None]) -> dict[str, str]:
        out: dict[str, str] = {}
        for key in list(mapping) + [k for k in BUILTIN_ARGS if k not in mapping]:
            value = self._get(key, mapping)
            if value is not None:
                out[key] = value
        return out

    def all_allowed(self) -> dict[str, str]:
        return self._all(self.allowed)

    def all_meta(self) -> dict[str, str]:
        return self._all(self.meta)

    def filter_allowed(self, env: list[str]) -> list[str]:
        """KEY=VALUE of the args in scope that the config's Env does not set."""
        keys = {e.split("=", 1)[0] for e in env}
        return [f"{k}={v}" for k, v in self.all_allowed().items() if k not in keys]

    def shown(self, key: str) -> bool:
        """Whether a RUN's history names it (moby's IsReferencedOrNotBuiltin)."""
        return key in self.allowed or key not in BUILTIN_ARGS


def env_map(env: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in env:
        key, _, value = entry.partition("=")
        out[key] = value
    return out


# -- a stage being built -----------------------------------------------------------------

@dataclass
class StageState:
    """moby's dispatchState."""

    config: dict[str, Any]
    image_id: str
    args: BuildArgs
    name: str | None = None
    maintainer: str = ""
    cmd_set: bool = False
    os: str = "linux"
    base_image: str = ""

    def begin(self, image_id: str, config: dict[str, Any] | None) -> None:
        self.image_id = image_id
        self.config = copy.deepcopy(config or {})
        env = list(self.config.get("Env") or [])
        if not any(e.split("=", 1)[0] == "PATH" for e in env):
            env.append(DEFAULT_PATH_ENV)
        self.config["Env"] = env
        self.config["OpenStdin"] = False
        self.config["StdinOnce"] = False

    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    def expansion_env(self) -> dict[str, str]:
        env = list(self.config.get("Env") or [])
        return env_map(env + self.args.filter_allowed(env))


class Context:
    """What a step needs of the build: the engine, the options, the output,
    the context dir, the cache, the stages built so far."""

    def __init__(self, engine: Engine, options: BuildOptions, context_dir: str,
                 out: BuildOutput, cancel: threading.Event, escape: str,
                 prober: Prober, scratch_dir: str, files: ContextFiles | None = None) -> None:
        self.engine = engine
        self.images = engine.images.images
        self.options = options
        self.context_dir = context_dir
        self.out = out
        self.cancel = cancel
        self.escape = escape
        self.prober = prober
        self.scratch_dir = scratch_dir
        self.files = files  # the context not extracted yet (a step that needs it does)
        self.stage_images: dict[int, str] = {}  # the stages built, by index
        self.stage_names: dict[str, int] = {}
        self.current_stage = 0
        self.containers: list[str] = []  # intermediate containers to remove
        self.running: str | None = None

    def say(self, text: str) -> None:
        self.out.stream(text)

    def expand(self, word: str, env: dict[str, str]) -> str:
        return expand_word(word, env, self.escape)

    def expand_all(self, word: str, env: dict[str, str]) -> list[str]:
        return expand_words(word, env, self.escape)


# -- splitting an instruction's arguments ------------------------------------------------

def split_words(text: str) -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (expansion removes
    them), as buildkit's parseStringsWhitespaceDelimited does for the
    instructions that take several words."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\" and quote != "'":
            current.append(ch)
            escaped = True
        elif quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            current.append(ch)
            quote = ch
        elif ch.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def words_of(ins: Instruction) -> list[str]:
    """The instruction's words, whether the parser gave the line as one string
    or already split."""
    if ins.json_form:
        return list(ins.args)
    if len(ins.args) == 1:
        return split_words(ins.args[0])
    return list(ins.args)


def key_values(ins: Instruction) -> list[tuple[str, str]]:
    """ENV/LABEL's pairs: the parser gives [key1, value1, key2, value2, ...]."""
    args = list(ins.args)
    if len(args) % 2 or not args:
        raise BuildError(f"{ins.keyword} requires an even number of arguments")
    return [(args[i], args[i + 1]) for i in range(0, len(args), 2)]


def flag(ins: Instruction, name: str) -> str | None:
    """The value of --name (the last one), None when absent."""
    value = None
    for key, val in ins.flags:
        if key.lstrip("-") == name:
            value = val if val is not None else ""
    return value


def command_of(ins: Instruction, state: StageState) -> list[str]:
    """RUN/CMD/ENTRYPOINT's command: the JSON array, or the line run by the
    stage's SHELL (heredocs: the script; the shell reads the here-documents)."""
    if ins.json_form:
        return list(ins.args)
    line = ins.args[0] if len(ins.args) == 1 else " ".join(ins.args)
    if ins.heredocs:
        only = ins.heredoc(line.strip())
        if len(ins.heredocs) == 1 and only is not None:  # RUN <<EOF: the script itself
            script = only.chomped()
            if script.startswith("#!"):  # its own interpreter: run as a file, as buildkit
                end = "PYBOX_HEREDOC_" + hashlib.sha256(script.encode()).hexdigest()[:16]
                return state.shell() + [
                    f'f=$(mktemp 2>/dev/null || echo /tmp/.heredoc-$$); cat > "$f" <<\'{end}\'\n'
                    f'{script}{"" if script.endswith(chr(10)) else chr(10)}{end}\n'
                    'chmod +x "$f"; "$f"; rc=$?; rm -f "$f"; exit $rc']
            return state.shell() + [script]
        script = line  # the shell reads the here-documents (and strips <<-'s tabs)
        for doc in ins.heredocs:
            script += "\n" + doc.content + doc.name
        return state.shell() + [script]
    return state.shell() + [line]


# -- committing -------------------------------------------------------------------------

def nop_config(state: StageState, comment: str, single: bool = False) -> dict[str, Any]:
    """The step's container config: the run config with Cmd the comment
    (moby's withCmdComment / withCmdCommentString)."""
    cfg = copy.deepcopy(state.config)
    cfg["Cmd"] = state.shell() + (["#(nop) " + comment] if single else ["#(nop) ", comment])
    return cfg


def commit_metadata(ctx: Context, state: StageState, comment: str) -> None:
    """A metadata-only step (moby's commit): a cache hit, or a new image with
    an empty layer.  dockerd creates (never starts) a container to commit;
    nothing of it reaches the image, so here none is made: the stream's
    "Running in"/"Removing" lines name the step's would-be container."""
    state.config["Image"] = state.image_id
    container_config = nop_config(state, comment)
    if probe(ctx, state, container_config):
        return
    cid = secrets.token_hex(32)
    ctx.say(f" ---> Running in {cid[:12]}\n")
    inherit_health(ctx, state)
    new = layers.commit_step(ctx.images, state.image_id, state.config, container_config,
                             snapshot=None, container_id=cid, author=state.maintainer)
    ctx.prober.added(state.image_id, new)
    state.image_id = new
    if ctx.options.remove or ctx.options.force_remove:
        ctx.say(f"Removing intermediate container {cid[:12]}\n")


def inherit_health(ctx: Context, state: StageState) -> None:
    """dockerd's step container is created from a config whose Healthcheck is
    the stage's own (a Go pointer both share), and the create fills its zero
    fields from the parent image's: so a HEALTHCHECK NONE after one with
    --interval keeps the interval.  Done here as the committed result shows."""
    mine = state.config.get("Healthcheck")
    if not mine:
        return
    parent = (layers.parent_config(ctx.images, state.image_id).get("config") or {}) \
        if state.image_id else {}
    theirs = parent.get("Healthcheck") or {}
    for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if not mine.get(key) and theirs.get(key):
            mine[key] = theirs[key]


def probe(ctx: Context, state: StageState, container_config: dict[str, Any]) -> bool:
    hit = ctx.prober.probe(state.image_id, container_config)
    if hit is None:
        return False
    ctx.say(" ---> Using cache\n")
    state.image_id = hit
    return True


class Snapshot:
    """A writable layer on the stage's image, mounted, for COPY/ADD/WORKDIR
    (moby's NewRWLayer): released whatever happens."""

    def __init__(self, ctx: Context, image_id: str) -> None:
        self.ctx = ctx
        self.id = SNAPSHOT_PREFIX + secrets.token_hex(16)
        snapshots = ctx.images.snapshots
        with ctx.images.store.gc_lock(shared=True):
            self.root = snapshots.prepare(self.id, image_id or "scratch",
                                          layers.layer_chain(ctx.images, image_id))

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        with self.ctx.images.store.gc_lock(shared=True):
            self.ctx.images.snapshots.release(self.id)


# -- the instructions ---------------------------------------------------------------------

# the flags the classic builder takes (buildkit's parser knows more: dockerd 20.10
# refuses those while parsing); COPY --chmod and --link work here as the issue asks
CLASSIC_FLAGS = {"COPY": ("chown", "chmod", "from", "link"), "ADD": ("chown", "chmod", "link"),
                 "FROM": ("platform",), "RUN": ("mount",),
                 "HEALTHCHECK": ("interval", "timeout", "start-period", "start-interval",
                                 "retries")}


def check_instruction_flags(ins: Instruction) -> None:
    allowed = CLASSIC_FLAGS.get(ins.keyword, ())
    for name, _ in ins.flags:
        if name.lstrip("-") not in allowed:
            raise DockerfileParseError(f"dockerfile parse error line {ins.line}: Unknown flag: "
                                       f"{name.lstrip('-')}")


def check_flags(dockerfile: Dockerfile) -> None:
    """dockerd 20.10's parse-time refusal of the flags it does not know (a
    400 before any step runs: "dockerfile parse error line 2: Unknown flag:
    mount")."""
    for stage in dockerfile.stages:
        for ins in stage.instructions:
            check_instruction_flags(ins)


def dispatch(ctx: Context, state: StageState, ins: Instruction) -> None:
    """Run one instruction of the stage."""
    check_instruction_flags(ins)
    handler = HANDLERS.get(ins.keyword)
    if handler is None:
        raise BuildError(f"unknown instruction: {ins.keyword}")
    handler(ctx, state, ins)


def do_env(ctx: Context, state: StageState, ins: Instruction) -> None:
    env_vars = state.expansion_env()
    env = list(state.config.get("Env") or [])
    message = "ENV"
    for key, value in key_values(ins):
        key = ctx.expand(key, env_vars)
        value = ctx.expand(value, env_vars)
        if not key:
            raise BuildError("ENV names can not be blank")
        entry = f"{key}={value}"
        message += " " + entry
        for i, existing in enumerate(env):
            if existing.split("=", 1)[0] == key:
                env[i] = entry
                break
        else:
            env.append(entry)
    state.config["Env"] = env
    commit_metadata(ctx, state, message)


def do_label(ctx: Context, state: StageState, ins: Instruction) -> None:
    env_vars = state.expansion_env()
    labels = dict(state.config.get("Labels") or {})
    message = "LABEL"
    literal = ins.line == 0  # the client's --label (no line of the Dockerfile): as it is
    for key, value in key_values(ins):
        if not literal:
            key = ctx.expand(key, env_vars)
            value = ctx.expand(value, env_vars)
        if not key:
            raise BuildError("LABEL names can not be blank")
        labels[key] = value
        message += f" {key}={value}"
    state.config["Labels"] = labels
    commit_metadata(ctx, state, message)


def do_maintainer(ctx: Context, state: StageState, ins: Instruction) -> None:
    state.maintainer = " ".join(ins.args).strip()
    commit_metadata(ctx, state, "MAINTAINER " + state.maintainer)


def do_expose(ctx: Context, state: StageState, ins: Instruction) -> None:
    env_vars = state.expansion_env()
    ports: list[str] = []
    for word in words_of(ins):
        ports.extend(ctx.expand_all(word, env_vars))
    exposed = dict(state.config.get("ExposedPorts") or {})
    for port in ports:
        number, _, proto = port.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise BuildError(f"invalid proto: {proto}")
        number = number.rpartition(":")[2]
        if not number:
            raise BuildError(f"no port specified: {port}<empty>")
        start, _, end = number.partition("-")
        if not start.isdigit() or (end and not end.isdigit()):
            raise BuildError(f"invalid containerPort: {number}")
        for p in range(int(start), int(end or start) + 1):
            exposed[f"{p}/{proto}"] = {}
    state.config["ExposedPorts"] = exposed
    commit_metadata(ctx, state, "EXPOSE " + " ".join(ports))


def do_user(ctx: Context, state: StageState, ins: Instruction) -> None:
    user = ctx.expand(" ".join(ins.args).strip(), state.expansion_env())
    state.config["User"] = user
    commit_metadata(ctx, state, f"USER {user}")


def do_volume(ctx: Context, state: StageState, ins: Instruction) -> None:
    env_vars = state.expansion_env()
    volumes = dict(state.config.get("Volumes") or {})
    names = [ctx.expand(w, env_vars) for w in words_of(ins)]
    for name in names:
        if not name:
            raise BuildError("VOLUME specified can not be an empty string")
        volumes[name] = {}
    state.config["Volumes"] = volumes
    commit_metadata(ctx, state, f"VOLUME {go_list(names)}")


def do_stopsignal(ctx: Context, state: StageState, ins: Instruction) -> None:
    sig = ctx.expand(" ".join(ins.args).strip(), state.expansion_env())
    try:
        specmod.parse_signal_name(sig)
    except ValueError:
        raise BuildError(f"Invalid signal: {sig}") from None
    state.config["StopSignal"] = sig
    commit_metadata(ctx, state, f"STOPSIGNAL {sig}")


def do_shell(ctx: Context, state: StageState, ins: Instruction) -> None:
    if not ins.json_form:
        raise BuildError("SHELL requires the arguments to be in JSON form")
    state.config["Shell"] = list(ins.args)
    commit_metadata(ctx, state, f"SHELL {go_list(list(ins.args))}")


def do_cmd(ctx: Context, state: StageState, ins: Instruction) -> None:
    cmd = command_of(ins, state)
    state.config["Cmd"] = cmd
    state.config.pop("ArgsEscaped", None)
    commit_metadata(ctx, state, f"CMD {go_list(cmd, quote=True)}")
    if any(a.strip() for a in ins.args):
        state.cmd_set = True


def do_entrypoint(ctx: Context, state: StageState, ins: Instruction) -> None:
    cmd = command_of(ins, state) if any(a.strip() for a in ins.args) or ins.json_form else []
    state.config["Entrypoint"] = cmd or None
    state.config.pop("ArgsEscaped", None)
    if not state.cmd_set:
        state.config["Cmd"] = None
    commit_metadata(ctx, state, f"ENTRYPOINT {go_list(cmd, quote=True)}")


def do_onbuild(ctx: Context, state: StageState, ins: Instruction) -> None:
    expression = " ".join(ins.args).strip()
    first = expression.split(None, 1)[0].upper() if expression else ""
    if first in ("ONBUILD",):
        raise BuildError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if first in ("FROM", "MAINTAINER"):
        raise BuildError(f"{first} isn't allowed as an ONBUILD trigger")
    state.config["OnBuild"] = [*(state.config.get("OnBuild") or []), expression]
    commit_metadata(ctx, state, "ONBUILD " + expression)


def do_healthcheck(ctx: Context, state: StageState, ins: Instruction) -> None:
    words = list(ins.args)
    if len(words) == 1 and not ins.json_form:
        head, _, tail = words[0].strip().partition(" ")
        words = [head, tail.strip()] if tail.strip() else [head]
    if not words:
        raise BuildError("HEALTHCHECK requires an argument")
    kind = words[0].upper()
    health: dict[str, Any]
    if kind == "NONE":
        if len(words) > 1:
            raise BuildError("HEALTHCHECK NONE takes no arguments")
        health = {"Test": ["NONE"]}
    elif kind == "CMD":
        rest = words[1:]
        if not rest:
            raise BuildError("Missing command after HEALTHCHECK CMD")
        if ins.json_form or (len(rest) == 1 and rest[0].lstrip().startswith("[")
                             and _json_list(rest[0]) is not None):
            items = _json_list(rest[0]) if len(rest) == 1 and not ins.json_form else rest
            health = {"Test": ["CMD", *(items or [])]}
        else:
            health = {"Test": ["CMD-SHELL", " ".join(rest)]}
        for name, key in (("interval", "Interval"), ("timeout", "Timeout"),
                          ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
            value = flag(ins, name)
            if value:
                try:
                    ns = go_duration(value)
                except ValueError as e:
                    raise BuildError(str(e)) from None
                if ns < 0:
                    raise BuildError(f"Interval {name} cannot be less than 1ms")
                health[key] = ns
        retries = flag(ins, "retries")
        if retries:
            if not retries.lstrip("-").isdigit():
                raise BuildError(f'strconv.ParseInt: parsing "{retries}": invalid syntax')
            if int(retries) < 0:
                raise BuildError("--retries cannot be negative")
            health["Retries"] = int(retries)
    else:
        raise BuildError(f"Unknown type {go_quote(words[0])} in HEALTHCHECK (try CMD)")
    old = state.config.get("Healthcheck")
    if old and (old.get("Test") or ["NONE"])[0] != "NONE":
        ctx.say(f"Note: overriding previous HEALTHCHECK: {go_list(old.get('Test'))}\n")
    state.config["Healthcheck"] = health
    # dockerd 20.10 writes it with %q: &{["CMD" "true"] "30s" "0s" "0s" '\x00'}
    text = (f"&{{{go_list(health['Test'], quote=True)} "
            f"{go_quote(go_duration_string(health.get('Interval', 0)))} "
            f"{go_quote(go_duration_string(health.get('Timeout', 0)))} "
            f"{go_quote(go_duration_string(health.get('StartPeriod', 0)))} "
            f"{go_quote_rune(health.get('Retries', 0))}}}")
    commit_metadata(ctx, state, "HEALTHCHECK " + text)


def _json_list(text: str) -> list[str] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def do_arg(ctx: Context, state: StageState, ins: Instruction) -> None:
    env_vars = state.expansion_env()
    parts = []
    for word in words_of(ins):
        key, sep, value = word.partition("=")
        if not key:
            raise BuildError("ARG names can not be blank")
        val = ctx.expand(value, env_vars) if sep else None
        state.args.add(key, val)
        parts.append(f"{key}={val}" if val is not None else key)
    commit_metadata(ctx, state, "ARG " + " ".join(parts))


def normalize_workdir(current: str, requested: str) -> str:
    if not requested:
        raise BuildError("cannot normalize nothing")
    if not requested.startswith("/"):
        requested = posixpath.join(current or "/", requested)
    return posixpath.normpath(requested)


def do_workdir(ctx: Context, state: StageState, ins: Instruction) -> None:
    path = ctx.expand(" ".join(ins.args).strip(), state.expansion_env())
    state.config["WorkingDir"] = normalize_workdir(state.config.get("WorkingDir") or "", path)
    state.config["Image"] = state.image_id
    container_config = nop_config(state, "WORKDIR " + state.config["WorkingDir"], single=True)
    if probe(ctx, state, container_config):
        return
    cid = secrets.token_hex(32)
    ctx.say(f" ---> Running in {cid[:12]}\n")
    inherit_health(ctx, state)
    with Snapshot(ctx, state.image_id) as snap:
        workdir = state.config["WorkingDir"]
        try:
            mkdir_all(snap.root, workdir, (0, 0))
        except BuildError:
            target = resolve_in_scope(snap.root, workdir)
            if os.path.lexists(target) and not os.path.isdir(target):
                raise BuildError(f"Cannot mkdir: {workdir} is not a directory") from None
            raise
        new = layers.commit_step(ctx.images, state.image_id, state.config, container_config,
                                 snapshot=snap.id, container_id=cid, author=state.maintainer)
    ctx.prober.added(state.image_id, new)
    state.image_id = new
    if ctx.options.remove or ctx.options.force_remove:
        ctx.say(f"Removing intermediate container {cid[:12]}\n")


def do_copy(ctx: Context, state: StageState, ins: Instruction) -> None:
    _copy(ctx, state, ins, add=ins.keyword == "ADD")


def _copy(ctx: Context, state: StageState, ins: Instruction, add: bool) -> None:
    name = "ADD" if add else "COPY"
    env_vars = state.expansion_env()
    words = list(ins.args) if ins.json_form else words_of(ins)
    if len(words) < 2:
        raise BuildError(f"{name} requires at least two arguments, but only one was provided. "
                         f"Destination could not be determined.")
    words = [ctx.expand(w, env_vars) for w in words]
    srcs, dest = words[:-1], words[-1]
    chown = flag(ins, "chown")
    chown = ctx.expand(chown, env_vars) if chown else chown
    chmod = flag(ins, "chmod")
    mode = None
    if chmod:
        try:
            mode = int(chmod, 8)
        except ValueError:
            raise BuildError(f"invalid chmod parameter: {chmod!r}") from None
        if mode > 0o7777:
            raise BuildError(f"invalid chmod parameter: {chmod!r}")
    from_ = flag(ins, "from")
    if add and from_ is not None:
        raise BuildError("ADD does not support --from")
    from_image = stage_or_image(ctx, from_, state) if from_ else ""
    from_key = (from_image, tuple(srcs)) if from_image else None
    known = _from_sum(from_key)
    if known is not None and probe(ctx, state, _copy_config(state, name, chown, chmod,
                                                               known, dest)):
        return  # a rebuild's hit: no snapshot of the image to hash its files again
    tmp = os.path.join(ctx.scratch_dir, secrets.token_hex(6))
    os.mkdir(tmp, 0o700)
    try:
        sources: list[Source] = []
        source_root = ctx.context_dir
        with _SourceRoot(ctx, from_image) as root:
            if root is not None:
                source_root = root
            plain: list[str] = []
            for src in srcs:
                doc = ins.heredoc(src) if src.startswith("<<") else None
                if doc is not None:
                    content = doc.chomped()
                    if doc.expand:
                        content = _expand_lines(ctx, content, env_vars)
                    sources.append(write_heredoc_source(tmp, doc.name, content))
                elif add and is_url(src):
                    # its progress in the stream, then a blank line, as dockerd's
                    report = getattr(ctx.out, "progress", None)
                    sources.append(download(src, tmp, report if callable(report) else None))
                    ctx.say("\n")
                elif is_url(src):
                    raise BuildError("source can't be a URL for COPY")
                else:
                    plain.append(src)
            if plain and root is None and ctx.files is not None:
                sources.extend(ctx.files.collect_sources(plain, name))
            elif plain:
                headers = Headers.LAZY if root is not None else \
                    Headers.DAEMON if ctx.options.type_bits else Headers.CLI
                sources.extend(collect_sources(source_root, plain, name, headers))
            if not sources:
                raise BuildError(f"{name} failed: no source files were specified")
            digest = sources[0].digest if len(sources) == 1 else _multi(sources)
            if from_key is not None and len(plain) == len(srcs):
                _remember_from_sum(from_key, digest)
            container_config = _copy_config(state, name, chown, chmod, digest, dest)
            if probe(ctx, state, container_config):
                return
            if ctx.files is not None:
                ctx.files.materialize()  # the sources' host paths exist from here
            with Snapshot(ctx, state.image_id) as snap:
                owner: tuple[int, int] | None = (0, 0)
                if chown:
                    owner = chown_ids(snap.root, chown)
                elif from_:
                    owner = None  # --from without --chown keeps the owners
                try:
                    copy_into(snap.root, sources, dest, state.config.get("WorkingDir") or "/",
                              owner=owner, mode=mode, extract=add, instruction=name)
                except OSError as e:
                    raise BuildError(f"failed to copy files: {e.strerror or e}") from None
                new = layers.commit_step(ctx.images, state.image_id, state.config,
                                         container_config, snapshot=snap.id, container_id="",
                                         author=state.maintainer)
            ctx.prober.added(state.image_id, new)
            state.image_id = new
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _expand_lines(ctx: Context, content: str, env_vars: dict[str, str]) -> str:
    """A here-document with an unquoted delimiter: $VAR expanded (quotes kept)."""
    out = []
    for line in content.split("\n"):
        try:
            out.append(ctx.expand(line.replace('"', '\\"').replace("'", "\\'"), env_vars))
        except PyboxError:
            out.append(line)
    return "\n".join(out)


def _copy_config(state: StageState, name: str, chown: str | None, chmod: str | None,
                 digest: str, dest: str) -> dict[str, Any]:
    """COPY/ADD's container config: its Cmd names the sources' checksum."""
    chown_text = f"--chown={chown}" if chown else ""  # dockerd 20.10: no space
    comment = f"{name} {chown_text}{digest} in {dest} "
    state.config["Image"] = state.image_id
    container_config = nop_config(state, comment, single=True)
    if chmod:
        container_config["Cmd"][-1] = container_config["Cmd"][-1].replace(
            f"{name} ", f"{name} --chmod={chmod} ", 1)
    return container_config


# COPY --from's checksums by (image, sources as written): an image's files never
# change, so a rebuild probes the cache without a snapshot of it (bounded, oldest out)
_FROM_SUMS: dict[tuple[str, tuple[str, ...]], str] = {}
_FROM_SUMS_MAX = 1024
_FROM_SUMS_LOCK = threading.Lock()


def _from_sum(key: tuple[str, tuple[str, ...]] | None) -> str | None:
    if key is None:
        return None
    with _FROM_SUMS_LOCK:
        return _FROM_SUMS.get(key)


def _remember_from_sum(key: tuple[str, tuple[str, ...]], digest: str) -> None:
    with _FROM_SUMS_LOCK:
        if key not in _FROM_SUMS and len(_FROM_SUMS) >= _FROM_SUMS_MAX:
            del _FROM_SUMS[next(iter(_FROM_SUMS))]
        _FROM_SUMS[key] = digest


def _multi(sources: list[Source]) -> str:
    return "multi:" + hashlib.sha256(",".join(s.digest for s in sources).encode()).hexdigest()


class _SourceRoot:
    """COPY --from's root: the stage's or image's filesystem, mounted for the
    copy (a snapshot released afterwards); None for the context."""

    def __init__(self, ctx: Context, image_id: str) -> None:
        self.ctx = ctx
        self.image_id = image_id
        self.snap: Snapshot | None = None

    def __enter__(self) -> str | None:
        if not self.image_id:
            return None
        self.snap = Snapshot(self.ctx, self.image_id)
        return self.snap.root

    def __exit__(self, *exc: object) -> None:
        if self.snap is not None:
            self.snap.__exit__()


def stage_or_image(ctx: Context, ref: str, state: StageState) -> str:
    """COPY --from's image: a stage by name or index, else an image (pulled
    when absent)."""
    key = ref.lower()
    if key in ctx.stage_names:
        return ctx.stage_images[ctx.stage_names[key]]
    if ref.isdigit():
        index = int(ref)
        if index == ctx.current_stage:
            raise BuildError(f"invalid from flag value {ref}: refers to current build stage")
        if index not in ctx.stage_images:
            raise BuildError(f"invalid from flag value {ref}: index out of bounds")
        return ctx.stage_images[index]
    return resolve_image(ctx, ref, None, pull=False)


def do_run(ctx: Context, state: StageState, ins: Instruction) -> None:
    for key, _ in ins.flags:  # --mount: parsed, then refused as dockerd 20.10 does
        raise BuildError(f"the --{key} option requires BuildKit. Refer to "
                         "https://docs.docker.com/go/buildkit/ to learn how to build images "
                         "with BuildKit enabled")
    cmd = command_of(ins, state)
    env = list(state.config.get("Env") or [])
    build_args = state.args.filter_allowed(env)
    save_cmd = cmd
    shown = sorted(a for a in build_args if state.args.shown(a.split("=", 1)[0]))
    if build_args:
        save_cmd = [f"|{len(shown)}", *shown, *cmd]
    state.config["Image"] = state.image_id
    probe_config = copy.deepcopy(state.config)
    probe_config["Cmd"] = save_cmd
    probe_config.pop("ArgsEscaped", None)
    if save_cmd:
        probe_config["Entrypoint"] = None
    if probe(ctx, state, probe_config):
        return
    run_config = copy.deepcopy(state.config)
    run_config["Cmd"] = cmd
    run_config["Env"] = env + build_args
    run_config["Entrypoint"] = [""]
    run_config["Healthcheck"] = {"Test": ["NONE"]}
    cid = run_container(ctx, state, run_config)
    try:
        new = layers.commit_step(ctx.images, state.image_id, state.config, probe_config,
                                 snapshot=cid, container=True, container_id=cid,
                                 author=state.maintainer)
    finally:
        if ctx.options.remove or ctx.options.force_remove:
            remove_container(ctx, cid)
    ctx.prober.added(state.image_id, new)
    state.image_id = new


def host_config(options: BuildOptions) -> dict[str, Any]:
    """moby's hostConfigFromOptions."""
    network = options.network_mode or "default"
    hc: dict[str, Any] = {"NetworkMode": network, "LogConfig": {"Type": "json-file", "Config": {}},
                          "ExtraHosts": list(options.extra_hosts) or None,
                          "CpuShares": options.cpu_shares, "CpuPeriod": options.cpu_period,
                          "CpuQuota": options.cpu_quota, "CpusetCpus": options.cpuset_cpus,
                          "Memory": options.memory, "MemorySwap": options.memory_swap,
                          "Ulimits": list(options.ulimits) or None}
    if options.shm_size:
        hc["ShmSize"] = options.shm_size
    return hc


def run_container(ctx: Context, state: StageState, run_config: dict[str, Any]) -> str:
    """Create and run the RUN's container, its output streamed; -> its id once
    it exited 0.  BuildError with docker's words otherwise."""
    engine = ctx.engine
    body = {k: v for k, v in run_config.items() if v is not None}
    body["Image"] = state.image_id
    body["HostConfig"] = host_config(ctx.options)
    body["AttachStdout"] = body["AttachStderr"] = True
    try:
        cid, warnings = engine.create(body)
    except PyboxError as e:
        raise BuildError(str(e)) from None
    ctx.containers.append(cid)
    for warning in warnings:
        ctx.say(f" ---> [Warning] {warning}\n")
    ctx.say(f" ---> Running in {cid[:12]}\n")
    ctx.running = cid
    try:
        engine.start(cid)
        for stream, data in engine.logs(cid, follow=True, cancelled=ctx.cancel.is_set):
            text = data.decode("utf-8", "replace")
            # stderr in red, each write: moby's streamformatter stderr writer
            ctx.say(f"\x1b[91m{text}\x1b[0m" if stream == 2 else text)
        if ctx.cancel.is_set():
            raise BuildError("Build cancelled")
        code, _error = engine.wait(cid, cancelled=ctx.cancel.is_set)
    except PyboxError as e:
        if isinstance(e, BuildError):
            raise
        raise BuildError(str(e)) from None
    finally:
        ctx.running = None
    if ctx.cancel.is_set():
        raise BuildError("Build cancelled")
    if code:
        raise BuildError(f"The command '{' '.join(run_config['Cmd'])}' returned a non-zero "
                         f"code: {code}", code=code)
    return cid


def remove_container(ctx: Context, cid: str) -> None:
    try:
        ctx.engine.remove(cid, force=True, volumes=True)
    except PyboxError:
        return
    if cid in ctx.containers:
        ctx.containers.remove(cid)
    ctx.say(f"Removing intermediate container {cid[:12]}\n")


# -- FROM --------------------------------------------------------------------------------

def credentials_for(options: BuildOptions, name: str) -> Credentials:
    """The X-Registry-Config entry for the registry of ``name``."""
    try:
        domain = references.parse(name).domain
    except PyboxError:
        return ANONYMOUS
    keys = [domain]
    if domain in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        keys = ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    for key in options.registry_auth:
        host = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
        if key in keys or host in keys:
            entry = options.registry_auth[key] or {}
            username = str(entry.get("username") or "")
            password = str(entry.get("password") or "")
            auth = entry.get("auth")
            if auth and not username:
                try:
                    username, _, password = base64.b64decode(str(auth)).decode().partition(":")
                except ValueError:
                    pass
            return Credentials(username=username, password=password,
                               identity_token=str(entry.get("identitytoken") or ""),
                               registry_token=str(entry.get("registrytoken") or ""))
    return ANONYMOUS


def wanted_platform(text: str | None) -> Platform | None:
    """FROM --platform's (or the build's) platform, parsed; None when unset."""
    if not text:
        return None
    try:
        return platforms.parse(text)
    except PyboxError as e:
        raise BuildError(f"failed to parse platform {text}: {e}") from None


def resolve_image(ctx: Context, name: str, platform: str | None, *, pull: bool) -> str:
    """An image by name or id, pulled when absent, when of another platform
    than the one asked for, or always with ``pull``; -> its Id."""
    images = ctx.images
    wanted = wanted_platform(platform or ctx.options.platform)
    if not pull:
        try:
            image_id = images.resolve(name)
            if wanted is None:
                return image_id
            doc = layers.parent_config(images, image_id)
            if wanted.matches({"os": doc.get("os"), "architecture": doc.get("architecture"),
                               "variant": doc.get("variant")}):
                return image_id
        except ImageNotFound:
            pass
        except PyboxError as e:
            raise BuildError(str(e)) from None
    try:
        ref = references.parse(name)
    except PyboxError as e:
        raise BuildError(str(e)) from None
    try:
        # a FROM's pull shows its progress in the build's stream, as dockerd's, when
        # the output takes docker's progress messages (an optional progress(message))
        report = getattr(ctx.out, "progress", None)
        ctx.engine.distribution.pull(str(ref), platform=str(wanted) if wanted else None,
                                     credentials=credentials_for(ctx.options, name),
                                     progress=report if callable(report) else progress.discard)
        return images.resolve(str(ref))
    except PyboxError as e:
        raise BuildError(str(e)) from None


def begin_stage(ctx: Context, state: StageState, stage: Stage, escape: str) -> None:
    """FROM: the stage's base (scratch, an earlier stage, an image), its config,
    and the base's ONBUILD triggers run."""
    ctx.current_stage = stage.index
    ctx.prober.reset()
    meta = state.args.all_meta()
    name = expand_word(stage.base, meta, escape)
    if not name:
        raise BuildError(f"base name ({stage.base}) should not be blank")
    platform = None
    if stage.platform:
        platform = expand_word(stage.platform, meta, escape)
        wanted_platform(platform)  # checked now: dockerd's words
    if name.lower() in ctx.stage_names:
        image_id = ctx.stage_images[ctx.stage_names[name.lower()]]
    elif name == "scratch":
        image_id = ""
    else:
        image_id = resolve_image(ctx, name, platform, pull=ctx.options.pull)
    doc = layers.parent_config(ctx.images, image_id)
    state.base_image = image_id
    state.begin(image_id, doc.get("config"))
    state.os = str(doc.get("os") or "linux")
    triggers = list(state.config.get("OnBuild") or [])
    if triggers:
        state.config["OnBuild"] = None
        ctx.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        for trigger in triggers:
            commands = parse_instructions(trigger)
            if len(commands) != 1:
                raise BuildError("onbuild trigger should be a single expression")
            dispatch(ctx, state, commands[0])


HANDLERS = {
    "ENV": do_env, "LABEL": do_label, "MAINTAINER": do_maintainer, "EXPOSE": do_expose,
    "USER": do_user, "VOLUME": do_volume, "STOPSIGNAL": do_stopsignal, "SHELL": do_shell,
    "CMD": do_cmd, "ENTRYPOINT": do_entrypoint, "ONBUILD": do_onbuild,
    "HEALTHCHECK": do_healthcheck, "ARG": do_arg, "WORKDIR": do_workdir, "COPY": do_copy,
    "ADD": do_copy, "RUN": do_run,
}
