"""The Dockerfile parser (skeleton: interfaces first, completed in the next commits)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pybox.errors import DockerfileParseError


@dataclass(frozen=True)
class Heredoc:
    """One here-document of an instruction (``RUN <<EOF``)."""

    name: str
    content: str
    expand: bool  # the delimiter was unquoted: variables are expanded
    chomp: bool  # the <<- form: leading tabs stripped


@dataclass(frozen=True)
class Instruction:
    """One instruction as written."""

    keyword: str
    args: list[str]
    flags: list[tuple[str, str | None]]
    json_form: bool
    original: str
    line: int
    end_line: int
    heredocs: tuple[Heredoc, ...] = field(default=())


@dataclass(frozen=True)
class Stage:
    """A FROM and the instructions after it, up to the next FROM."""

    index: int
    name: str | None
    base: str
    platform: str | None
    line: int
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile."""

    escape: str
    syntax: str | None
    meta_args: tuple[Instruction, ...]
    stages: tuple[Stage, ...]


def parse(data: bytes | str) -> Dockerfile:
    """Parse a Dockerfile (minimal for now: one instruction per line, shell form)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    meta: list[Instruction] = []
    stages: list[Stage] = []
    current: list[Instruction] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        ins = Instruction(keyword.upper(), [rest.strip()], [], False, line, number, number, ())
        if ins.keyword == "FROM":
            if stages:
                stages[-1] = _with(stages[-1], current)
            current = []
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            stages.append(Stage(len(stages), name, words[0] if words else "", None, number, ()))
        elif not stages:
            if ins.keyword != "ARG":
                raise DockerfileParseError(f"Dockerfile parse error line {number}: "
                                           "the first instruction must be FROM")
            meta.append(ins)
        else:
            current.append(ins)
    if stages:
        stages[-1] = _with(stages[-1], current)
    return Dockerfile("\\", None, tuple(meta), tuple(stages))


def _with(stage: Stage, instructions: list[Instruction]) -> Stage:
    return Stage(stage.index, stage.name, stage.base, stage.platform, stage.line, tuple(instructions))
