""".dockerignore: which files of a build context docker leaves out.

Semantics of moby's patternmatcher and ignorefile packages and of the walk that packs
the context (go-archive's TarWithOptions), which together decide what ``docker build``
sends:

* one pattern a line; lines starting with ``#`` are comments; blank lines skipped;
  surrounding white space trimmed; a leading ``!`` makes an exception (a file matched
  by an earlier pattern is put back); each pattern is cleaned as Go's filepath.Clean
  (``./a`` -> ``a``, ``a/`` -> ``a``, ``a//b/../c`` -> ``a/c``) and a leading ``/`` dropped;
* ``*`` any run of characters but ``/``, ``?`` one character but ``/``, ``[...]`` a class
  (``[^...]`` negated), ``\\`` escapes, ``**`` any number of directories (``**/x``,
  ``a/**``, ``a/**/b``); a pattern matches a path or any of its parent directories
  (``node_modules`` excludes everything below it);
* the last matching pattern wins, exceptions included;
* a directory that is excluded is not sent, and nothing below it either, unless an
  exception pattern starts with that directory's path (``dir`` + ``!dir/keep``): then
  the walk goes on below it (the directory's own entry is still left out, docker sends
  ``dir/keep`` without ``dir``).  An exception that does not name the directory
  literally (``!**/keep``) does not reach into an excluded directory.

The CLI never leaves out the Dockerfile and .dockerignore themselves
(trim_build_files); the daemon removes them from the context afterwards when the
patterns match them (PatternMatcher.matches).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from pybox.errors import BadRequest

_BOM = "\ufeff"
_ESCAPED = frozenset(".+()|{}$")  # regexp metacharacters with no meaning in a path pattern


def go_clean(path: str) -> str:
    """Go's path.Clean (filepath.Clean on Linux): lexical, '' -> '.', no trailing '/'."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def parse(data: bytes | str) -> list[str]:
    """A .dockerignore's patterns, cleaned, comments and blank lines dropped (ReadAll)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    out: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines):
        line = line.removesuffix("\r")
        if number == 0:
            line = line.removeprefix(_BOM)
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _check_syntax(pattern: str) -> None:
    """Go's filepath.Match syntax rules: a class must close, a range needs both ends,
    an escape needs a character after it."""
    i, n = 0, len(pattern)

    def escaped_char(j: int) -> int:
        # One class character at j (possibly escaped); the index after it.
        if j >= n or pattern[j] in "-]":
            raise ValueError
        if pattern[j] == "\\":
            j += 1
            if j >= n:
                raise ValueError
        return j + 1

    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise ValueError
            i += 2
        elif ch == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while True:
                if i < n and pattern[i] == "]" and ranges > 0:
                    i += 1
                    break
                i = escaped_char(i)
                if i < n and pattern[i] == "-":
                    i = escaped_char(i + 1)
                ranges += 1
        else:
            i += 1


@dataclass
class Pattern:
    """One cleaned pattern, compiled as patternmatcher does (exact, prefix, suffix, regexp)."""

    text: str  # cleaned, without the "!"
    exclusion: bool
    dirs: int  # its number of path components

    def __post_init__(self) -> None:
        self.kind, self.regex = _compile(self.text)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]  # **/foo matches foo
        assert self.regex is not None
        return self.regex.match(path) is not None

    def __str__(self) -> str:
        return self.text


def _compile(pattern: str) -> tuple[str, re.Pattern[str] | None]:
    regex = ["^"]
    kind = "exact"
    i, n = 0, len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1  # **/ is **
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        regex.append(".*")
                        kind = "regexp"
                else:
                    regex.append("(.*/)?")
                    kind = "regexp"
                if first:
                    kind = "suffix"
            else:
                regex.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            regex.append("[^/]")
            kind = "regexp"
        elif ch in _ESCAPED:
            regex.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                regex.append(re.escape(pattern[i]))
                i += 1
                kind = "regexp"
            else:
                regex.append("\\\\")
        elif ch in "[]":
            regex.append(ch)
            kind = "regexp"
        else:
            regex.append(ch)  # as Go's regexp reads it (^ negates in a class, anchors outside)
        first = False
    if kind != "regexp":
        return kind, None
    regex.append("$")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set" in odd classes
            return kind, re.compile("".join(regex), re.DOTALL)
    except re.error:
        raise ValueError from None


@dataclass(frozen=True)
class MatchInfo:
    """Which patterns matched a directory, passed down to its children."""

    parent_matched: tuple[bool, ...] = ()


class PatternMatcher:
    """The patterns of a .dockerignore (already cleaned by parse(), or raw)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise BadRequest('illegal exclusion pattern: "!"')
                text = text[1:]
                self.exclusions = True
            try:
                _check_syntax(text)
                pattern = Pattern(text, exclusion, len(text.split("/")))
            except ValueError:
                raise BadRequest("syntax error in pattern") from None
            self.patterns.append(pattern)
        self._walked: dict[str, tuple[bool, MatchInfo]] = {}

    def matches(self, path: str) -> bool:
        """MatchesOrParentMatches: the path or one of its parents is matched by the
        last pattern that decides (what the daemon uses for Dockerfile/.dockerignore)."""
        path = go_clean(path)
        if path == ".":
            return False
        parents = _parents(path)
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path) or any(pattern.match(parent) for parent in parents)
            if hit:
                matched = not pattern.exclusion
        return matched

    def matches_legacy(self, path: str) -> bool:
        """The deprecated Matches (one parent level checked), which the docker CLI
        still uses to decide whether to put the Dockerfile back (trim_build_files)."""
        path = go_clean(path)
        if path == ".":
            return False
        parent = os.path.dirname(path) or "."
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parent != "." and pattern.dirs <= len(parent_dirs):
                hit = pattern.match("/".join(parent_dirs[:pattern.dirs]))
            if hit:
                matched = not pattern.exclusion
        return matched

    def matches_using_parent_results(self, path: str, parent: MatchInfo | None = None
                                     ) -> tuple[bool, MatchInfo]:
        """MatchesUsingParentResults: the walk's per-entry decision, given the
        parent directory's MatchInfo (None: work it out from the path's parents)."""
        parent_matched = parent.parent_matched if parent is not None else ()
        matched = False
        infos: list[bool] = []
        parents = _parents(path) if not parent_matched else []
        for index, pattern in enumerate(self.patterns):
            hit = parent_matched[index] if parent_matched else False
            if not hit:
                if pattern.exclusion != matched:
                    infos.append(False)
                    continue
                hit = pattern.match(path)
                if not hit and not parent_matched:
                    hit = any(pattern.match(p) for p in parents)
            infos.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, MatchInfo(tuple(infos))

    def _directory(self, path: str) -> tuple[bool, MatchInfo]:
        """(the walk goes below this directory, its MatchInfo), cached per directory."""
        cached = self._walked.get(path)
        if cached is not None:
            return cached
        parent = os.path.dirname(path)
        info: MatchInfo | None = None
        if parent:
            enters, info = self._directory(parent)
            if not enters:
                result = (False, MatchInfo())
                self._walked[path] = result
                return result
        skip, info = self.matches_using_parent_results(path, info)
        result = (not skip or self._exception_below(path), info)
        self._walked[path] = result
        return result

    def _exception_below(self, directory: str) -> bool:
        # An excluded directory is still walked when an exception starts with its path.
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def excluded(self, path: str, is_dir: bool) -> bool:
        """Whether docker leaves this context entry out (path relative, '/'-separated).

        Decided as the context walk does, for any order of calls: an entry below a
        directory the walk does not enter is excluded; a directory the walk enters
        only for an exception below it is itself excluded (its children decide
        for themselves)."""
        path = go_clean(path)
        if path in (".", "") or path.startswith("../") or path == "..":
            return False
        parent = os.path.dirname(path)
        info: MatchInfo | None = None
        if parent:
            enters, info = self._directory(parent)
            if not enters:
                return True
        skip, _ = self.matches_using_parent_results(path, info)
        return skip

    def prune(self, directory: str) -> bool:
        """True when nothing below this directory can be sent (the walk skips it)."""
        return not self._directory(go_clean(directory))[0]


def _parents(path: str) -> list[str]:
    parent = os.path.dirname(path)
    if not parent:
        return []
    parts = parent.split("/")
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]


def excluded(pm: PatternMatcher, path: str, is_dir: bool) -> bool:
    """Whether the context entry at path is left out (see PatternMatcher.excluded)."""
    return pm.excluded(path, is_dir)


def walk(root: str, pm: PatternMatcher) -> Iterator[tuple[str, bool]]:
    """The entries of a context directory docker would send: (relative path, is_dir),
    parents before children, in lexical order; symlinks are not followed."""

    def scan(rel: str) -> Iterator[tuple[str, bool]]:
        with os.scandir(os.path.join(root, rel) if rel else root) as entries:
            ordered = sorted(entries, key=lambda e: e.name)
        for entry in ordered:
            path = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if not pm.excluded(path, is_dir):
                yield path, is_dir
            if is_dir and not pm.prune(path):
                yield from scan(path)

    yield from scan("")


def trim_build_files(patterns: list[str], dockerfile: str, dockerfile_from_stdin: bool = False
                     ) -> list[str]:
    """The docker CLI's TrimBuildFilesFromExcludes: exceptions added so that
    .dockerignore and the Dockerfile are always sent (the daemon drops them later)."""
    out = list(patterns)
    if PatternMatcher(out).matches_legacy(".dockerignore"):
        out.append("!.dockerignore")
    dockerfile = dockerfile.replace(os.sep, "/")
    if not dockerfile_from_stdin and PatternMatcher(out).matches_legacy(dockerfile):
        out.append("!" + dockerfile)
    return out
