"""Variable substitution in Dockerfile words, as buildkit's shell lexer does it.

The classic builder expands ``$var`` and ``${var...}`` in the arguments of ADD, COPY,
ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ONBUILD and ARG (not in
RUN, CMD, ENTRYPOINT: the shell does that).  The lexer is not a shell: it knows single
quotes (literal), double quotes (``$`` still expands; the escape character escapes
only ``"``, ``$`` and itself), the escape character (``\\`` or the ``# escape=``
token) outside quotes, and these forms:

    $name ${name}            the value, empty when unset
    ${name:-word} ${name-word}   word when unset (``:`` also when empty)
    ${name:+word} ${name+word}   word when set (``:`` only when not empty)
    ${name:?msg} ${name?msg}     an error when unset (``:`` also when empty)
    ${name#pat} ${name##pat} ${name%pat} ${name%%pat}   prefix/suffix trimmed
    ${name/pat/repl} ${name//pat/repl}                  first/every match replaced

``expand_word`` gives the one string (spaces kept); ``expand_words`` splits the result
into words on unquoted white space *after* expansion, as ProcessWords does (a value with
spaces splits; quoted text does not) -- the classic builder uses it only for EXPOSE
(``EXPOSE $PORTS`` with PORTS="80 443").  Errors are DockerfileParseError with
buildkit's words, wrapped as ``failed to process "<word>": <reason>`` (dockerd prints
them as the failing step's error).

dockerd 20.10's older lexer knew only the ``:`` forms (``${x-w}`` was "missing ':' in
substitution") and no pattern forms; these follow current buildkit, as docker 28 does.

The lexer also serves the parser, which needs its raw modes (quotes and escapes kept,
unset variables left as written) to find heredoc delimiters on a line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

from pybox.errors import DockerfileParseError

_EOF = ""  # what peek/next give at the end: no real character is empty

_SPECIAL_PARAMS = frozenset("@*#?-$!0")


class _LexError(Exception):
    """An error inside one word; process() wraps it with the word."""


def go_isspace(ch: str) -> bool:
    """Go's unicode.IsSpace (Python's isspace also counts \\x1c-\\x1f)."""
    if ch in "\t\n\v\f\r \x85\xa0":
        return True
    return ord(ch) > 0xFF and unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote), as buildkit's messages show words."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


class _Words:
    """The word splitter: unquoted white space ends a word, quoted text never does."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_isspace(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def get(self) -> list[str]:
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
            self.in_word = False
        return self.words


class Lexer:
    """buildkit's shell.Lex: one escape token and the modes its callers use.

    raw_quotes keeps the quote characters in the result, raw_escapes keeps the escape
    characters, skip_unset leaves references to unset variables as written (the parser
    uses these to find heredoc delimiters without changing the line)."""

    def __init__(self, escape: str = "\\", *, raw_quotes: bool = False, raw_escapes: bool = False,
                 skip_unset: bool = False) -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"invalid escape token {escape!r}")
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """The word with variables expanded, quotes and escapes removed."""
        return _Scan(self, word, env).process()[0]

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """The word expanded, then split on unquoted white space."""
        return _Scan(self, word, env).process()[1]


class _Scan:
    """One pass over one word (the state of buildkit's shellWord)."""

    def __init__(self, lex: Lexer, word: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.source = word
        self.text = word
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes

    # -- the scanner -----------------------------------------------------------

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos >= len(self.text):
            return _EOF
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    # -- the grammar -----------------------------------------------------------

    def process(self) -> tuple[str, list[str]]:
        try:
            return self.stop_on(_EOF, self.raw_escapes)
        except _LexError as err:
            raise DockerfileParseError(f"failed to process {go_quote(self.source)}: {err}") from None

    def stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        escape = self.lex.escape
        while self.peek() != _EOF:
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.get()
            if ch == "$":
                tmp = self.dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch in "'\"<":
                tmp = self.single_quote() if ch == "'" else (
                    self.double_quote() if ch == '"' else self.possible_heredoc())
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = self.next()
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.get()

    def single_quote(self) -> str:
        # Everything up to the next ' is literal; ' itself cannot be escaped.
        result: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            result.append(ch)

    def double_quote(self) -> str:
        # Literal except $ (expanded) and the escape token before " $ or itself.
        result: list[str] = []
        escape = self.lex.escape
        ch = self.next()
        if self.lex.raw_quotes:
            result.append(ch)
        while True:
            ch = self.peek()
            if ch == _EOF:
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lex.raw_quotes:
                    result.append(ch)
                return "".join(result)
            if ch == "$":
                result.append(self.dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    result.append(ch)
                following = self.peek()
                if following == _EOF:
                    continue  # a lone escape at the end: the next turn reports the quote
                if following in ('"', "$", escape):
                    ch = self.next()
            result.append(ch)

    def possible_heredoc(self) -> str:
        # "<<" and the blanks after it stay together in one word (a heredoc marker).
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        spaces: list[str] = []
        while self.peek() != _EOF and self.peek() in "\t\r ":
            spaces.append(self.next())
        return "<<" + "".join(spaces)

    def name(self) -> str:
        # A name: letters, digits, _; or all the digits of a positional parameter;
        # or one special parameter character.
        out: list[str] = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not out and ch.isdecimal():
                while self.peek() != _EOF and self.peek().isdecimal():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def get(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        return ("", False) if value is None else (value, True)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.get(name)
            if not found and self.lex.skip_unset:
                return "$" + name
            return value
        self.next()
        ch = self.peek()
        if ch == _EOF:
            raise _LexError("syntax error: missing '}'")
        if ch in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        modifier = ch
        if ch == "}":
            value, found = self.get(name)
            if not found and self.lex.skip_unset:
                return "${" + name + "}"
            return value
        if ch == _EOF:
            raise _LexError("syntax error: missing '}'")
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            modifier += ch
        if ch == "/" and not null_is_unset:
            return self.replace(name)
        if ch not in ("+", "-", "?", "#", "%") and ch != _EOF:
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        raw = ch in ("#", "%")
        if null_is_unset and raw:
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        try:
            word = self.stop_on("}", raw)[0]
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise
        value, found = self.get(name)
        if self.lex.skip_unset and not found:
            return "${" + name + modifier + word + "}"
        if ch == "-":
            return word if not found or (null_is_unset and not value) else value
        if ch == "+":
            return "" if not found or (null_is_unset and not value) else word
        if ch == "?":
            if not found:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and not value:
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        if ch == "%":
            return _trim_suffix(word, value, greedy)
        return _trim_prefix(word, value, greedy)

    def replace(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        try:
            pattern = self.stop_on("/", True)[0]
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement = self.stop_on("}", True)[0]
        except _LexError:
            if self.peek() == _EOF:
                raise _LexError("syntax error: missing '}'") from None
            raise
        value, found = self.get(name)
        if self.lex.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _pattern_regex(pattern, greedy=True, anchored=False)
        if every:
            return regex.sub(lambda _m: replacement, value)
        return regex.sub(lambda _m: replacement, value, count=1)


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """A shell wildcard pattern (``*`` ``?``, ``\\`` escapes; no brackets) as a regex."""
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            following = pattern[i] if i < len(pattern) else ""
            if following in ("}", "/"):
                continue  # escaped only for the ${} syntax
            if following not in ("*", "?", "\\"):
                raise _LexError(f"invalid pattern ({pattern}) in substitution: "
                                f"invalid escape '\\{following}'")
            out.append(re.escape(following))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _pattern_regex(pattern, greedy=greedy, anchored=True).match(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    # Reversed, an escape stays in front of the character it escapes.
    units: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            units.append(pattern[i:i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return "".join(reversed(units))


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # The shortest/longest match at the end is the same match at the start of the
    # reversed value, with the reversed pattern.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """ProcessWord: variables expanded, quotes and escapes removed, spaces kept."""
    return Lexer(escape).process_word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """ProcessWords: expanded, then split on white space outside quotes."""
    return Lexer(escape).process_words(word, env)
