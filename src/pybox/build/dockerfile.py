"""The Dockerfile parser: text to stages of instructions, as dockerd's classic builder
reads it (buildkit's frontend/dockerfile parser and instructions packages).

Two levels, as there, and two kinds of error message, as dockerd 20.10 prints them:

* the line level: parser directives (``# escape=`` and ``# syntax=`` at the top),
  comments, continuation lines (the escape character at the end of a line; comment
  and empty lines inside a continuation are skipped), heredocs, the instruction word
  and its ``--flags``, and the per-instruction splitting of the rest.  Its errors read
  ``failed to parse Dockerfile: ENV must have two arguments`` (no line number);
* the instruction level: argument counts, flags each instruction accepts, FROM's
  stage name, HEALTHCHECK's options...  Its errors read
  ``dockerfile parse error line 2: unknown instruction: FORM``.

Nothing is expanded here: ``$var`` substitution happens when a step runs, with the
ARG and ENV values of that moment (``pybox.build.expand``).

``Instruction.args`` follows buildkit's per-instruction splitting:

* RUN, CMD, ENTRYPOINT, SHELL: exec form -> the JSON array's strings; shell form ->
  ``[rest of the line]`` (``[]`` when nothing follows);
* ADD, COPY, VOLUME: the JSON array's strings, or the white-space separated words;
* FROM: the white-space separated words; EXPOSE: the same, sorted (as buildkit);
* ENV, LABEL: ``[key1, value1, key2, value2, ...]``, keys and values as written
  (quotes and escapes kept: expand each with expand_word); the old ``ENV key value``
  form gives one pair whose value is the rest of the line;
* ARG: the words as written (``name`` or ``name=default``; quotes kept);
* USER, WORKDIR, STOPSIGNAL, MAINTAINER: ``[rest of the line]``;
* HEALTHCHECK: ``["NONE"]`` or ``["CMD", ...the command as for CMD...]`` (the type
  upper-cased); ``json_form`` is the command's;
* ONBUILD: ``[the trigger instruction as written]`` (heredocs appended), which a
  child build parses with ``parse_instructions``.

``Instruction.flags`` are ``(name, value)`` in the order written, names without the
dashes; value None for a flag written without ``=`` (booleans such as ``--link``).

Where current buildkit differs from dockerd 20.10's, the language follows buildkit (the
words of errors stay 20.10's): heredocs; the flags 20.10 did not know (COPY/ADD
``--link``, ``--exclude``, COPY ``--parents``, ADD ``--checksum``, ``--keep-git-dir``,
``--unpack``, RUN ``--network``, ``--security``, HEALTHCHECK ``--start-interval``) are
accepted; an exec form must be the whole JSON text (20.10 read ``CMD ["a"] junk`` as
``["a"]``).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypedDict

from pybox.build.expand import Lexer, go_isspace, go_quote
from pybox.errors import DockerfileParseError
from pybox.formats.durations import go_duration

MAX_LINE = 64 * 1024 - 1  # bufio.Scanner's token limit, in docker's message
_MS = 1_000_000

# Instructions whose arguments may be heredocs (ONBUILD's trigger too).
_HEREDOC_INSTRUCTIONS = frozenset({"ADD", "COPY", "RUN"})

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^([0-9]*)<<(-?)\s*([^<]*)\Z", re.DOTALL)
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", re.DOTALL)
_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_ONBUILD_PREFIX = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)

# The flags each instruction accepts: name -> kind ("bool", "string", "strings").
_FLAGS: dict[str, dict[str, str]] = {
    "ADD": {"chown": "string", "chmod": "string", "link": "bool", "keep-git-dir": "bool",
            "checksum": "string", "unpack": "bool", "exclude": "strings"},
    "COPY": {"chown": "string", "from": "string", "chmod": "string", "link": "bool",
             "exclude": "strings", "parents": "bool"},
    "FROM": {"platform": "string"},
    "RUN": {"mount": "strings", "network": "string", "security": "string"},
    "HEALTHCHECK": {"interval": "string", "timeout": "string", "start-period": "string",
                    "start-interval": "string", "retries": "string"},
}
KEYWORDS = frozenset({"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
                      "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
                      "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"})
_NETWORK_MODES = ("default", "none", "host")
_SECURITY_MODES = ("sandbox", "insecure")


@dataclass(frozen=True)
class Heredoc:
    """One here-document of an instruction (``RUN <<EOF``)."""

    name: str
    content: str  # the lines up to the delimiter, each with its newline
    expand: bool  # the delimiter was unquoted: variables are expanded
    chomp: bool  # the <<- form: leading tabs are stripped (see chomped())
    fd: int = 0  # the n of ``n<<EOF`` (0 when not written)

    def chomped(self) -> str:
        """The content with the <<- form's leading tabs removed."""
        return re.sub(r"(?m)^\t+", "", self.content) if self.chomp else self.content


@dataclass(frozen=True)
class Instruction:
    """One instruction as written (see the module docstring for args and flags)."""

    keyword: str
    args: list[str]
    flags: list[tuple[str, str | None]]
    json_form: bool
    original: str
    line: int
    end_line: int
    heredocs: tuple[Heredoc, ...] = field(default=())

    def flag(self, name: str, default: str | None = None) -> str | None:
        """The value of a string flag (the last one written), or default."""
        for key, value in reversed(self.flags):
            if key == name:
                return value if value is not None else ""
        return default

    def flag_values(self, name: str) -> list[str]:
        """Every value of a repeatable flag (--mount, --exclude) in order."""
        return [value or "" for key, value in self.flags if key == name]

    def flag_bool(self, name: str) -> bool:
        """A boolean flag: written bare or as =true (any case)."""
        value = self.flag(name)
        return value is not None and value.lower() in ("", "true")

    def key_values(self) -> list[tuple[str, str]]:
        """ENV and LABEL: the (key, value) pairs, unexpanded."""
        return [(self.args[i], self.args[i + 1]) for i in range(0, len(self.args) - 1, 2)]

    def arg_pairs(self) -> list[tuple[str, str | None]]:
        """ARG: (name, default or None), unexpanded."""
        out: list[tuple[str, str | None]] = []
        for word in self.args:
            name, has_default, default = word.partition("=")
            out.append((name, default if has_default else None))
        return out

    def heredoc(self, word: str) -> Heredoc | None:
        """The heredoc a word such as ``<<EOF`` or ``<<-"EOF"`` refers to, if any."""
        found = parse_heredoc_word(word)
        if found is None:
            return None
        for doc in self.heredocs:
            if doc.name == found.name:
                return doc
        return None


class HealthcheckConfig(TypedDict, total=False):
    """The image config's Healthcheck (durations in nanoseconds; zeros left out)."""

    Test: list[str]
    Interval: int
    Timeout: int
    StartPeriod: int
    StartInterval: int
    Retries: int


def healthcheck(ins: Instruction) -> HealthcheckConfig:
    """HEALTHCHECK's config as the classic builder stores it: ["NONE"], ["CMD", args...]
    for the exec form, ["CMD-SHELL", command] for the shell form (checked at parse)."""
    if ins.args[0] == "NONE":
        return {"Test": ["NONE"]}
    test = ["CMD", *ins.args[1:]] if ins.json_form else ["CMD-SHELL", *ins.args[1:]]
    config: HealthcheckConfig = {"Test": test}

    def duration(flag: str) -> int:
        value = ins.flag(flag)
        return go_duration(value) if value else 0

    if interval := duration("interval"):
        config["Interval"] = interval
    if timeout := duration("timeout"):
        config["Timeout"] = timeout
    if start_period := duration("start-period"):
        config["StartPeriod"] = start_period
    if start_interval := duration("start-interval"):
        config["StartInterval"] = start_interval
    if retries := ins.flag("retries"):
        config["Retries"] = int(retries)
    return config


@dataclass(frozen=True)
class Stage:
    """A FROM and the instructions after it, up to the next FROM."""

    index: int
    name: str | None  # lower-cased, as docker matches stage names
    base: str  # FROM's image, unexpanded
    platform: str | None
    line: int
    instructions: tuple[Instruction, ...]
    original: str = ""  # the FROM line as written
    instruction: Instruction | None = None  # the FROM itself (its flags, lines)


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile."""

    escape: str
    syntax: str | None
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = ()  # what the classic builder prints before Step 1

    def stage(self, name_or_index: str) -> Stage | None:
        """A stage by name (case-insensitive) or by number, as --target and --from find it."""
        wanted = name_or_index.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage
        if wanted.isdecimal():
            index = int(wanted)
            if index < len(self.stages):
                return self.stages[index]
        return None


# -- the line level ------------------------------------------------------------


class _LineError(Exception):
    """A line-level error: reported as "failed to parse <name>: ..."."""


class _InstructionError(Exception):
    """An instruction-level error: reported with the instruction's first line."""


@dataclass
class _Node:
    keyword: str  # as written
    flags: list[str]
    args: list[str]
    json_form: bool
    original: str
    line: int = 0
    end_line: int = 0
    heredocs: list[Heredoc] = field(default_factory=list)
    child: _Node | None = None  # ONBUILD's trigger


class _Directives:
    """The parser directives: only in the first lines, each key once."""

    def __init__(self) -> None:
        self.escape = "\\"
        self.syntax: str | None = None
        self.seen: set[str] = set()
        self.done = False
        self._continuation = self._compile("\\")

    @staticmethod
    def _compile(escape: str) -> re.Pattern[str]:
        e = re.escape(escape)
        return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")

    def feed(self, line: str) -> bool:
        """Look at one (newline-trimmed) line; True if it was a directive."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE.match(line[1:].lstrip())
        if not match or match.group(1).lower() not in _DIRECTIVES:
            self.done = True
            return False
        key, value = match.group(1).lower(), match.group(2)
        if key in self.seen:
            raise _LineError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            if value not in ("`", "\\"):
                raise _LineError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
            self._continuation = self._compile(value)
        elif key == "syntax":
            self.syntax = value
        return True

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """The line without its continuation character, and whether it ends the instruction."""
        match = self._continuation.search(line)
        if match is None:
            return line, True
        return line[:match.start()] + (match.group(1) or ""), False


def _is_comment(line: str) -> bool:
    stripped = line.lstrip()
    return stripped.startswith("#")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _lines(text: str) -> list[str]:
    """Lines with their endings, as buildkit's scanner hands them over."""
    # Only \n ends a line (str.splitlines would also split on \r, \v, \x1c...).
    lines = [part + "\n" for part in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    for line in lines:
        if len(line) > MAX_LINE + 1:
            raise _LineError(f"dockerfile line greater than max allowed size of {MAX_LINE}")
    return lines


def _parse_words(rest: str, escape: str) -> list[str]:
    """Words separated by white space, quotes and escapes kept (ENV, LABEL, ARG)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    in_quote = False
    in_word = False
    i = 0
    n = len(rest)
    while i < n:
        ch = rest[i]
        if not in_word and not in_quote:
            if go_isspace(ch):
                i += 1
                continue
            in_word = True
        if in_quote:
            if ch == quote:
                in_quote = False
            if ch == escape and quote != "'":
                if i + 1 == n:
                    in_quote = False
                    i += 1
                    continue  # a lone escape at the end is dropped
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        if go_isspace(ch):
            if blank_ok or word:
                words.append("".join(word))
            word = []
            blank_ok = False
            in_word = False
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
            in_quote = True
        if ch == escape:
            if i + 1 == n:
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if (in_word or in_quote) and (blank_ok or word):
        words.append("".join(word))
    return words


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """The leading ``--flag`` words of an instruction's arguments, and the rest."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    phase = "spaces"
    i = 0
    n = len(line)
    while i <= n:
        ch = line[i] if i < n else ""
        if phase == "spaces":
            if i == n:
                break
            if go_isspace(ch):
                i += 1
                continue
            if ch != "-" or i + 1 == n or line[i + 1] != "-":
                return line[i:], words
            phase = "word"
        if i == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == "word":
            if go_isspace(ch):
                text = "".join(word)
                phase = "spaces"
                if text == "--":
                    return line[i:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                i += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = "quote"
                i += 1
                continue
            if ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                i += 1
                ch = line[i]
            word.append(ch)
            i += 1
            continue
        # in a quote
        if ch == quote:
            phase = "word"
            i += 1
            continue
        if ch == escape:
            if i + 1 == n:
                phase = "word"
                i += 1
                continue
            i += 1
            ch = line[i]
        word.append(ch)
        i += 1
    return "", words


def _parse_json(rest: str) -> list[str] | None:
    """The strings of a JSON array, None when rest is not a JSON array."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None

    def no_constants(name: str) -> object:
        raise ValueError(name)  # NaN/Infinity are not JSON to Go

    try:
        value = json.loads(rest, parse_constant=no_constants)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise _LineError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    if rest == "":
        return [], False
    items = _parse_json(rest)
    if items is not None:
        return items, True
    return [rest], False


def _maybe_json_to_list(rest: str) -> tuple[list[str], bool]:
    items = _parse_json(rest)
    if items is not None:
        return items, True
    return _split_whitespace(rest), False


def _split_whitespace(rest: str) -> list[str]:
    return _WHITESPACE.split(rest) if rest else []


def _name_values(rest: str, keyword: str, escape: str) -> list[str]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _LineError(f"{keyword} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise _LineError(f"Syntax error - can't find = in {go_quote(word)}. "
                             "Must be of the form: name=value")
        key, _, value = word.partition("=")
        out += [key, value]
    return out


def _health_args(rest: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    if sep == 0:
        return [], False
    following = sep
    while following < len(rest) and rest[following].isspace():
        following += 1
    cmd, json_form = _maybe_json(rest[following:])
    return [rest[:sep]] + cmd, json_form


def _node(line: str, escape: str) -> _Node:
    """One logical line (continuations joined) split into keyword, flags, args."""
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    keyword = parts[0]
    rest = ""
    flags: list[str] = []
    if len(parts) == 2:
        rest, flags = _extract_flags(parts[1], escape)
    rest = rest.strip()
    upper = keyword.upper()
    json_form = False
    child: _Node | None = None
    args: list[str]
    if upper in ("RUN", "CMD", "ENTRYPOINT", "SHELL"):
        args, json_form = _maybe_json(rest)
    elif upper in ("ADD", "COPY", "VOLUME"):
        args, json_form = _maybe_json_to_list(rest)
    elif upper in ("ENV", "LABEL"):
        args = _name_values(rest, upper, escape)
    elif upper == "ARG":
        args = _parse_words(rest, escape)
    elif upper in ("EXPOSE", "FROM"):
        args = _split_whitespace(rest)
    elif upper in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        args = [rest] if rest else []
    elif upper == "HEALTHCHECK":
        args, json_form = _health_args(rest)
    elif upper == "ONBUILD":
        args = []
        if rest:
            child = _node(rest, escape)
            args = [child.keyword] + child.args
    else:
        args = []  # an unknown instruction: reported at the instruction level
    return _Node(keyword, flags, args, json_form, line, child=child)


def parse_heredoc_word(word: str) -> Heredoc | None:
    """A heredoc marker (``<<EOF``, ``<<-EOF``, ``3<<"EOF"``) as a Heredoc (no content);
    None for any other word (one that does not even lex included)."""
    try:
        return _heredoc_marker(word)
    except _LineError:
        return None


def _heredoc_marker(word: str) -> Heredoc | None:
    match = _HEREDOC.match(word)
    if match is None or not match.group(3):
        return None
    rest = match.group(3)
    try:
        words = Lexer(skip_unset=True).process_words(rest, {})
        raw = Lexer(raw_quotes=True, skip_unset=True).process_words(rest, {})
    except DockerfileParseError as err:
        raise _LineError(str(err)) from None
    if len(words) != 1:
        return None
    if len(raw) != 1:
        raise _LineError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=words[0], content="", expand=quotes == raw_quotes,
                   chomp=match.group(2) == "-", fd=int(match.group(1) or 0))


def _heredocs_of(line: str) -> list[Heredoc]:
    try:
        words = Lexer(raw_quotes=True, raw_escapes=True, skip_unset=True).process_words(line, {})
    except DockerfileParseError:
        return []
    docs = []
    for word in words:
        doc = _heredoc_marker(word)
        if doc is not None:
            docs.append(doc)
    return docs


def _can_have_heredocs(node: _Node) -> bool:
    if node.keyword.upper() == "ONBUILD" and node.child is not None:
        node = node.child
    return node.keyword.upper() in _HEREDOC_INSTRUCTIONS and not node.json_form


def _parse_lines(text: str) -> tuple[list[_Node], _Directives, list[str]]:
    """The line level: directives, comments, continuations, heredocs."""
    directives = _Directives()
    lines = _lines(text)
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    nodes: list[_Node] = []
    warnings: list[str] = []
    current = 0
    index = 0

    def process(raw: str, strip_left: bool) -> str:
        line = _trim_newline(raw)
        if strip_left:
            line = line.lstrip()
        directives.feed(line)
        return "" if _is_comment(line) else line

    while index < len(lines):
        raw = lines[index]
        index += 1
        text_line = process(raw, True)
        current += 1
        start = current
        text_line, end_of_line = directives.trim_continuation(text_line)
        if end_of_line and not text_line:
            continue
        buf = [text_line]
        empty_continuation = False
        while not end_of_line and index < len(lines):
            raw = lines[index]
            index += 1
            text_line = process(raw, False)
            current += 1
            if _is_comment(raw):
                continue
            if not _trim_newline(text_line).lstrip():
                empty_continuation = True
                continue
            text_line, end_of_line = directives.trim_continuation(text_line)
            buf.append(text_line)
        line = "".join(buf)
        if empty_continuation:
            warnings.append(f"[WARNING]: Empty continuation line found in:\n    {line}")
        node = _node(line, directives.escape)
        if _can_have_heredocs(node) and "<<" in line:
            for doc in _heredocs_of(line):
                content: list[str] = []
                terminated = False
                while index < len(lines):
                    raw = lines[index]
                    index += 1
                    current += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    content.append(raw)
                if not terminated:
                    raise _LineError("unterminated heredoc")
                node.heredocs.append(Heredoc(doc.name, "".join(content), doc.expand, doc.chomp, doc.fd))
        node.line, node.end_line = start, current
        nodes.append(node)
    if warnings:
        warnings.append("[WARNING]: Empty continuation lines will become errors in a future release.")
    if not nodes:
        raise _LineError("file with no instructions")
    return nodes, directives, warnings


# -- the instruction level -----------------------------------------------------


def _parse_flags(keyword: str, raw: list[str]) -> list[tuple[str, str | None]]:
    """Check the flags against what the instruction accepts (BFlags.Parse, 20.10's words)."""
    known = _FLAGS.get(keyword, {})
    seen: set[str] = set()
    out: list[tuple[str, str | None]] = []
    for word in raw:
        if not word.startswith("--"):
            raise _InstructionError(f"Arg should start with -- : {word}")
        name, has_value, value = word[2:].partition("=")
        kind = known.get(name)
        if kind is None:
            raise _InstructionError(f"Unknown flag: {name}")
        if name in seen and kind != "strings":
            raise _InstructionError(f"Duplicate flag specified: {name}")
        seen.add(name)
        if kind == "bool":
            if has_value and value == "":
                raise _InstructionError(f"Missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise _InstructionError(f"Expecting boolean value for flag {name}, not: {value}")
        elif not has_value:
            raise _InstructionError(f"Missing a value on flag: {name}")
        out.append((name, value if has_value else None))
    return out


def _go_parse_int32(text: str) -> int:
    """strconv.ParseInt(text, 10, 32) with Go's error words."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise _InstructionError(f'strconv.ParseInt: parsing {go_quote(text)}: invalid syntax')
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise _InstructionError(f'strconv.ParseInt: parsing {go_quote(text)}: value out of range')
    return value


def _check_health(node: _Node, flags: list[tuple[str, str | None]]) -> None:
    for name in ("interval", "timeout", "start-period", "start-interval"):
        values = [v for k, v in flags if k == name]
        if not values or not values[-1]:
            continue
        try:
            duration = go_duration(values[-1])
        except ValueError as err:
            raise _InstructionError(str(err)) from None
        if duration < _MS:  # 0 too: the classic builder wants at least 1ms
            raise _InstructionError(f'Interval "{name}" cannot be less than 1ms')
    retries = [v for k, v in flags if k == "retries"]
    if retries and retries[-1]:
        count = _go_parse_int32(retries[-1])
        if count < 1:
            raise _InstructionError(f"--retries must be at least 1 (not {count})")


_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING = ("shared", "private", "locked")


def _check_mount(spec: str) -> None:
    """RUN --mount's value as buildkit validates it when parsing (the classic builder
    then refuses any --mount when the step runs)."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as err:
        raise _InstructionError(f"failed to parse csv mounts: {err}") from None
    kind = "bind"
    values: dict[str, str] = {}
    for item in fields:
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value:
            if key in ("readonly", "ro", "readwrite", "rw"):
                continue
            if key == "required":
                if kind in ("secret", "ssh"):
                    continue
                raise _InstructionError(f"unexpected key '{key}' for mount type '{kind}'")
            raise _InstructionError(f"invalid field '{item}' must be a key=value pair")
        if key == "type":
            if value.lower() not in _MOUNT_TYPES:
                raise _InstructionError(f"unsupported mount type {go_quote(value)}")
            kind = value.lower()
        elif key in ("readonly", "ro", "readwrite", "rw"):
            if value not in _GO_BOOLS:
                raise _InstructionError(f"invalid value for {key}: {value}")
        elif key == "required":
            if kind not in ("secret", "ssh"):
                raise _InstructionError(f"unexpected key '{key}' for mount type '{kind}'")
            if value not in _GO_BOOLS:
                raise _InstructionError(f"invalid value for {key}: {value}")
        elif key == "sharing":
            if value.lower() not in _SHARING:
                raise _InstructionError(f"unsupported sharing value {go_quote(value)}")
        elif key in ("mode", "uid", "gid"):
            digits = "01234567" if key == "mode" else "0123456789"
            if not value or any(c not in digits for c in value) or int(value, len(digits)) >= 2**32:
                raise _InstructionError(f"invalid value {value} for {key}")
        elif key not in ("from", "source", "src", "target", "dst", "destination", "id"):
            raise _InstructionError(f"unexpected key '{key}' in '{item}'")
        values["source" if key == "src" else key] = value
    for key in ("mode", "uid", "gid"):
        if key in values and kind not in ("secret", "ssh", "cache"):
            raise _InstructionError(f"{key} not allowed for {go_quote(kind)} type mounts")
    if "sharing" in values and kind != "cache":
        raise _InstructionError(f"invalid cache sharing set for {kind} mount")
    if kind == "secret":
        if values.get("from"):
            raise _InstructionError("secret mount should not have a from")
        if values.get("sharing"):
            raise _InstructionError("secret mount should not define sharing")
        target = values.get("target") or values.get("dst") or values.get("destination")
        if not values.get("source") and not target and not values.get("id"):
            raise _InstructionError("invalid secret mount. one of source, target required")
        if values.get("source") and values.get("id"):
            raise _InstructionError("both source and id can't be set")


def _exactly_one(node: _Node, keyword: str) -> None:
    if len(node.args) != 1:
        raise _InstructionError(f"{keyword} requires exactly one argument")


def _at_least_one(node: _Node, keyword: str) -> None:
    if not node.args:
        raise _InstructionError(f"{keyword} requires at least one argument")


def _instruction(node: _Node) -> Instruction:
    """The instruction level: buildkit's instructions.ParseInstruction checks."""
    keyword = node.keyword.upper()
    if keyword not in KEYWORDS:
        raise _InstructionError(f"unknown instruction: {keyword}")
    args = list(node.args)
    flags: list[tuple[str, str | None]] = []
    if keyword in ("ENV", "LABEL"):
        flags = _parse_flags(keyword, node.flags)
        _at_least_one(node, keyword)
        if any(not args[i] for i in range(0, len(args), 2)):
            raise _InstructionError(f"{keyword} names can not be blank")
    elif keyword == "MAINTAINER":
        _exactly_one(node, keyword)
        flags = _parse_flags(keyword, node.flags)
    elif keyword in ("ADD", "COPY"):
        if len(args) < 2:
            raise _InstructionError(f"{keyword} requires at least two arguments, but only one was "
                                    "provided. Destination could not be determined")
        flags = _parse_flags(keyword, node.flags)
        if parse_heredoc_word(args[-1]) is not None:
            raise _InstructionError(f"{keyword} cannot accept a heredoc as a destination")
    elif keyword == "FROM":
        if len(args) == 3 and args[1].lower() == "as":
            if not _STAGE_NAME.match(args[2].lower()):
                raise _InstructionError(f"invalid name for build stage: {go_quote(args[2])}, "
                                        "name can't start with a number or contain symbols")
        elif len(args) != 1:
            raise _InstructionError("FROM requires either one or three arguments")
        flags = _parse_flags(keyword, node.flags)
    elif keyword == "ONBUILD":
        _at_least_one(node, keyword)
        flags = _parse_flags(keyword, node.flags)
        trigger = args[0].strip().upper()
        if trigger == "ONBUILD":
            raise _InstructionError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _InstructionError(f"{trigger} isn't allowed as an ONBUILD trigger")
        expression = _ONBUILD_PREFIX.sub("", node.original, count=1)
        for doc in node.heredocs:
            expression += "\n" + doc.content + doc.name
        args = [expression]
    elif keyword in ("WORKDIR", "USER"):
        _exactly_one(node, keyword)
        flags = _parse_flags(keyword, node.flags)
    elif keyword == "RUN":
        flags = _parse_flags(keyword, node.flags)
        for name, value in flags:
            if name == "mount":
                _check_mount(value or "")
            elif name == "network" and value not in _NETWORK_MODES:
                raise _InstructionError(f"invalid network mode {go_quote(value or '')}")
            elif name == "security" and value not in _SECURITY_MODES:
                raise _InstructionError(f"security {go_quote(value or '')} is not valid")
    elif keyword in ("CMD", "ENTRYPOINT"):
        flags = _parse_flags(keyword, node.flags)
    elif keyword == "HEALTHCHECK":
        _at_least_one(node, keyword)
        kind = args[0].upper()
        args[0] = kind
        if kind == "NONE":
            if len(args) != 1:
                raise _InstructionError("HEALTHCHECK NONE takes no arguments")
        else:
            flags = _parse_flags(keyword, node.flags)
            if kind != "CMD":
                raise _InstructionError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
            if len(args) == 1:
                raise _InstructionError("Missing command after HEALTHCHECK CMD")
            _check_health(node, flags)
    elif keyword == "EXPOSE":
        _at_least_one(node, keyword)
        flags = _parse_flags(keyword, node.flags)
        args.sort()  # buildkit sorts them (history shows "EXPOSE 80/udp 8080 9000")
    elif keyword == "VOLUME":
        _at_least_one(node, keyword)
        flags = _parse_flags(keyword, node.flags)
        if any(not arg.strip() for arg in args):
            raise _InstructionError("VOLUME specified can not be an empty string")
        args = [arg.strip() for arg in args]
    elif keyword == "STOPSIGNAL":
        _exactly_one(node, keyword)  # flags are not looked at (as buildkit)
    elif keyword == "ARG":
        _at_least_one(node, keyword)  # flags are not looked at (as buildkit)
        if any(arg.startswith("=") for arg in args):
            raise _InstructionError("ARG names can not be blank")
    elif keyword == "SHELL":
        flags = _parse_flags(keyword, node.flags)
        if not args:
            raise _InstructionError("SHELL requires at least one argument")
        if not node.json_form:
            raise _InstructionError("SHELL requires the arguments to be in JSON form")
    return Instruction(keyword=keyword, args=args, flags=flags, json_form=node.json_form,
                       original=node.original, line=node.line, end_line=node.end_line,
                       heredocs=tuple(node.heredocs))


def _decode(data: bytes | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else data


def _instructions(text: str, name: str) -> tuple[list[Instruction], _Directives, list[str]]:
    try:
        nodes, directives, warnings = _parse_lines(text)
    except _LineError as err:
        raise DockerfileParseError(f"failed to parse {name}: {err}") from None
    out = []
    for node in nodes:
        try:
            out.append(_instruction(node))
        except _InstructionError as err:
            raise DockerfileParseError(f"dockerfile parse error line {node.line}: {err}") from None
    return out, directives, warnings


def parse_instructions(data: bytes | str, name: str = "Dockerfile") -> list[Instruction]:
    """Instructions without stages (ONBUILD triggers, ``docker commit --change``)."""
    text = _decode(data)
    if not text:
        raise DockerfileParseError(f"the Dockerfile ({name}) cannot be empty")
    return _instructions(text, name)[0]


def parse(data: bytes | str, name: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; DockerfileParseError in dockerd's words (name: the
    Dockerfile's path as the client gave it, for the messages)."""
    text = _decode(data)
    if not text:
        raise DockerfileParseError(f"the Dockerfile ({name}) cannot be empty")
    instructions, directives, warnings = _instructions(text, name)
    meta: list[Instruction] = []
    stages: list[Stage] = []
    body: list[Instruction] = []
    head: Instruction | None = None

    def close() -> None:
        if head is not None:
            stages.append(_stage(len(stages), head, body))

    for ins in instructions:
        if ins.keyword == "FROM":
            close()
            head, body = ins, []
        elif head is None:
            if ins.keyword != "ARG":
                raise DockerfileParseError("no build stage in current context")
            meta.append(ins)
        else:
            body.append(ins)
    close()
    return Dockerfile(escape=directives.escape, syntax=directives.syntax, meta_args=tuple(meta),
                      stages=tuple(stages), warnings=tuple(warnings))


def _stage(index: int, head: Instruction, body: list[Instruction]) -> Stage:
    name = head.args[2].lower() if len(head.args) == 3 else None
    return Stage(index=index, name=name, base=head.args[0], platform=head.flag("platform") or None,
                 line=head.line, instructions=tuple(body), original=head.original.strip(),
                 instruction=head)


def iter_all(dockerfile: Dockerfile) -> Iterator[Instruction]:
    """Every instruction in file order (meta ARGs, then each FROM and its body)."""
    yield from dockerfile.meta_args
    for stage in dockerfile.stages:
        if stage.instruction is not None:
            yield stage.instruction
        yield from stage.instructions
