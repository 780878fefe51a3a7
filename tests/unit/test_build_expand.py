"""pybox.build.expand: the variable substitution of Dockerfile words (buildkit's shell
lexer), as the classic builder applies it to ENV, LABEL, WORKDIR, COPY... arguments.

Expected values follow the Dockerfile reference and what dockerd's classic builder
produced for the same words (checked against a private dockerd 20.10: ENV/LABEL values
in the image config)."""

import pytest

from pybox.build.expand import Lexer, expand_word, expand_words, go_quote
from pybox.errors import BadRequest, DockerfileParseError

ENV = {"A": "hello", "EMPTY": "", "SP": "x y", "P": "/usr/local/bin", "F": "a.tar.gz"}


@pytest.mark.parametrize("word, want", [
    ("plain", "plain"),
    ("$A", "hello"),
    ("${A}", "hello"),
    ("${A}_x", "hello_x"),
    ("$A_x", ""),  # the name is A_x, unset
    ("$UNSET", ""),
    ("a$", "a$"),
    ("$ a", "$ a"),
    ("$1", ""),
    ("x$9y", "xy"),
    # default / alternative, with and without ':'
    ("${UNSET:-def}", "def"),
    ("${EMPTY:-def}", "def"),
    ("${A:-def}", "hello"),
    ("${UNSET-def}", "def"),
    ("${EMPTY-def}", ""),
    ("${A:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${UNSET:+alt}", ""),
    ("${EMPTY+alt}", "alt"),
    ("${UNSET+alt}", ""),
    ("${A:?msg}", "hello"),
    ("${EMPTY?msg}", ""),
    ("${UNSET:-$A}", "hello"),
    ("${UNSET:-${EMPTY:-deep}}", "deep"),
    ("${UNSET:-a b}", "a b"),
    # quotes
    ("'$A'", "$A"),
    ('"$A"', "hello"),
    ('"$A world"', "hello world"),
    ("\"a'b\"", "a'b"),
    ("'a\"b'", 'a"b'),
    ('x"y z"w', "xy zw"),
    ('""', ""),
    ("''", ""),
    # escapes: outside quotes anything; inside double quotes only " $ and itself
    ("\\$A", "$A"),
    ("a\\ b", "a b"),
    ("a\\\\b", "a\\b"),
    ('"a\\\\b\\c"', "a\\b\\c"),
    ('"q\\"uote"', 'q"uote'),
    ('"\\$A"', "$A"),
    ("'a\\b'", "a\\b"),
    ("trailing\\", "trailing"),
    # pattern forms
    ("${P#*/}", "usr/local/bin"),
    ("${P##*/}", "bin"),
    ("${P%/*}", "/usr/local"),
    ("${P%%/*}", ""),
    ("${F%.*}", "a.tar"),
    ("${F%%.*}", "a"),
    ("${F#a.}", "tar.gz"),
    ("${F#nomatch}", "a.tar.gz"),
    ("${P/local/l}", "/usr/l/bin"),
    ("${P//l/L}", "/usr/LocaL/bin"),
    ("${F/?/X}", "X.tar.gz"),
    ("${UNSET#x}", ""),
])
def test_expand_word(word: str, want: str) -> None:
    assert expand_word(word, ENV) == want


@pytest.mark.parametrize("word, want", [
    ("a b  c", ["a", "b", "c"]),
    ("$SP", ["x", "y"]),  # a value with spaces splits (after expansion)
    ('"$SP"', ["x y"]),
    ("'a b' c", ["a b", "c"]),
    ("a\\ b c", ["a b", "c"]),
    ("${UNSET:-d e}", ["d", "e"]),
    ('""', []),
    ("  ", []),
    ("pre$SP", ["prex", "y"]),
    ("<< EOF", ["<< EOF"]),  # a heredoc marker keeps its blank
])
def test_expand_words(word: str, want: list[str]) -> None:
    assert expand_words(word, ENV) == want


def test_backtick_escape() -> None:
    assert expand_word("a`$b", {"b": "x"}, escape="`") == "a$b"
    assert expand_word("C:\\dir", {}, escape="`") == "C:\\dir"
    assert expand_word('"q`"x"', {}, escape="`") == 'q"x'


@pytest.mark.parametrize("word, message", [
    ("${UNSET:?need it}", 'failed to process "${UNSET:?need it}": UNSET: need it'),
    ("${UNSET?}", 'failed to process "${UNSET?}": UNSET: is not allowed to be unset'),
    ("${EMPTY:?}", 'failed to process "${EMPTY:?}": EMPTY: is not allowed to be empty'),
    ("${A", "failed to process \"${A\": syntax error: missing '}'"),
    ("${A:-x", "failed to process \"${A:-x\": syntax error: missing '}'"),
    ("${", "failed to process \"${\": syntax error: missing '}'"),
    ("${}", 'failed to process "${}": syntax error: bad substitution'),
    ("${:a}", 'failed to process "${:a}": syntax error: bad substitution'),
    ("${A:x}", 'failed to process "${A:x}": unsupported modifier (:x) in substitution'),
    ("${A!}", 'failed to process "${A!}": unsupported modifier (!) in substitution'),
    ("${A:#x}", 'failed to process "${A:#x}": unsupported modifier (:#) in substitution'),
    ('"open', 'failed to process "\\"open": unexpected end of statement while looking for '
              'matching double-quote'),
    ("'open", "failed to process \"'open\": unexpected end of statement while looking for "
              "matching single-quote"),
])
def test_errors(word: str, message: str) -> None:
    with pytest.raises(DockerfileParseError) as caught:
        expand_word(word, ENV)
    assert str(caught.value) == message
    assert isinstance(caught.value, BadRequest)


def test_raw_modes_keep_the_line() -> None:
    # The parser's mode for finding heredoc markers: nothing changes but the splitting.
    lex = Lexer(raw_quotes=True, raw_escapes=True, skip_unset=True)
    assert lex.process_words("RUN cat <<'EOF' $X ${Y:-z} a\\ b", {}) == [
        "RUN", "cat", "<<'EOF'", "$X", "${Y:-z}", "a\\ b"]


def test_go_quote() -> None:
    assert go_quote('a"b\\c\n') == '"a\\"b\\\\c\\n"'
    assert go_quote("\x01é") == '"\\x01é"'
