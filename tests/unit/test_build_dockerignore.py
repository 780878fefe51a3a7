"""pybox.build.dockerignore: what a .dockerignore leaves out of a build context.

Cases follow docker's .dockerignore documentation and moby's patternmatcher semantics;
the walk over a real tree was checked against what the docker CLI sent to a private
dockerd 20.10 (DOCKER_BUILDKIT=0, COPY . and a listing) for the same tree."""

import os
from pathlib import Path

import pytest

from pybox.build.dockerignore import PatternMatcher, excluded, go_clean, parse, trim_build_files, walk
from pybox.errors import BadRequest


@pytest.mark.parametrize("text, patterns", [
    ("a\nb\n", ["a", "b"]),
    ("# comment\n\n   \nx\n", ["x"]),
    (" # not a comment when indented\n", ["# not a comment when indented"]),
    ("./a/\n/b/c\n//d\na//b/../c\n", ["a", "b/c", "d", "a/c"]),
    ("!keep\n!  ./spaced \n", ["!keep", "!spaced"]),
    ("\ufeff*.md\r\n**/tmp\r\n", ["*.md", "**/tmp"]),
    ("/\n", ["/"]),
    ("!\n", ["!"]),
])
def test_parse(text: str, patterns: list[str]) -> None:
    assert parse(text) == patterns
    assert parse(text.encode()) == patterns


@pytest.mark.parametrize("path, cleaned", [
    ("", "."), (".", "."), ("a/", "a"), ("./a//b/", "a/b"), ("a/../..", ".."), ("/../a", "/a"),
    ("//a", "/a"), ("a/./b/../c", "a/c"),
])
def test_go_clean(path: str, cleaned: str) -> None:
    assert go_clean(path) == cleaned


# (patterns, path, is_dir, excluded)
CASES = [
    (["*.md"], "README.md", False, True),
    (["*.md"], "docs/README.md", False, False),  # * does not cross /
    (["*/*.md"], "docs/README.md", False, True),
    (["**/*.md"], "a/b/c.md", False, True),
    (["**/*.md"], "c.md", False, True),
    (["**/node_modules"], "node_modules", True, True),
    (["**/node_modules"], "a/b/node_modules/x/y", False, True),
    (["a/**/b"], "a/b", False, True),
    (["a/**/b"], "a/x/y/b", False, True),
    (["a/**"], "a/x", False, True),
    (["a/**"], "a", True, False),  # a/** leaves the directory itself
    (["docs"], "docs/deep/file", False, True),  # a parent matches
    (["docs"], "docsfile", False, False),
    (["doc?"], "docs", True, True),
    (["doc?"], "doc/s", False, False),
    (["br[a-c].txt"], "brb.txt", False, True),
    (["br[a-c].txt"], "brd.txt", False, False),
    (["br[^a].txt"], "brb.txt", False, True),
    (["br[^a].txt"], "bra.txt", False, False),
    (["file\\?.txt"], "file?.txt", False, True),
    (["file\\?.txt"], "filex.txt", False, False),
    (["a.b"], "axb", False, False),  # . is literal
    (["a+(b)"], "a+(b)", False, True),
    (["/abs"], "abs", False, True),
    (["./rel/"], "rel/x", False, True),
    (["*"], "anything", False, True),
    (["*", "!keep"], "keep", False, False),
    (["*", "!keep"], "other", False, True),
    (["*.log", "!important.log"], "important.log", False, False),
    (["!important.log", "*.log"], "important.log", False, True),  # the last match wins
    (["docs", "!docs/keep.md"], "docs/keep.md", False, False),
    (["docs", "!docs/keep.md"], "docs/other.md", False, True),
    (["docs", "!docs/keep.md"], "docs", True, True),  # walked into, but its entry left out
    (["docs", "!docs/sub"], "docs/sub/deep/f", False, False),
    (["docs", "!**/keep.md"], "docs/keep.md", False, True),  # the exception cannot reach in
    (["logs", "!logs/keep.log"], "logs/keep.log", False, False),
    (["target/**", "!target/keep/**"], "target/keep/k", False, False),
    (["target/**", "!target/keep/**"], "target/other/o", False, True),
    (["target/**", "!target/keep/**"], "target/keep", True, True),
    (["a", "!a/b", "a/b/c"], "a/b/c", False, True),
    (["a", "!a/b", "a/b/c"], "a/b/d", False, False),
    ([], "x", False, False),
]


@pytest.mark.parametrize("patterns, path, is_dir, want", CASES)
def test_excluded(patterns: list[str], path: str, is_dir: bool, want: bool) -> None:
    pm = PatternMatcher(parse("\n".join(patterns)))
    assert excluded(pm, path, is_dir) is want
    assert PatternMatcher(parse("\n".join(patterns))).excluded(path, is_dir) is want  # no state needed


def test_leading_slash_is_dropped_by_parse_only() -> None:
    assert not PatternMatcher(["/abs"]).excluded("abs", False)  # as patternmatcher.New


def test_prune() -> None:
    pm = PatternMatcher(["docs", "!docs/keep", "build"])
    assert pm.prune("build") and pm.prune("build/sub")
    assert not pm.prune("docs")
    assert not pm.prune("src")


@pytest.mark.parametrize("patterns, path, want", [
    (["Dockerfile"], "Dockerfile", True),
    (["*", "!Dockerfile"], "Dockerfile", False),
    (["sub"], "sub/Dockerfile", True),
    ([".dockerignore"], ".dockerignore", True),
    (["*"], ".", False),
])
def test_matches(patterns: list[str], path: str, want: bool) -> None:
    assert PatternMatcher(patterns).matches(path) is want


@pytest.mark.parametrize("pattern, message", [
    ("[", "syntax error in pattern"),
    ("a[b", "syntax error in pattern"),
    ("[]a]", "syntax error in pattern"),
    ("[a-]", "syntax error in pattern"),
    ("x\\", "syntax error in pattern"),
    ("!", 'illegal exclusion pattern: "!"'),
])
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        PatternMatcher([pattern])
    assert str(caught.value) == message


def test_trim_build_files() -> None:
    assert trim_build_files(["*"], "Dockerfile") == ["*", "!.dockerignore", "!Dockerfile"]
    assert trim_build_files(["*.md"], "Dockerfile") == ["*.md"]
    assert trim_build_files(["*"], "Dockerfile", dockerfile_from_stdin=True) == ["*", "!.dockerignore"]
    assert trim_build_files(["sub"], "sub/Dockerfile.dev") == ["sub", "!sub/Dockerfile.dev"]


def test_walk(tmp_path: Path) -> None:
    files = ["docs/a.md", "docs/keep.md", "docs/sub/b.md", "target/keep/k", "target/other/o", "target/t",
             "a/node_modules/deep/z", "node_modules/n", "src/main.c", "src/x/y/f.go", "src/x/skip.tmp",
             "build/out/bin", "logs/app.log", "logs/keep.log", "x.log", "important.log", "README.md",
             ".hidden", "Dockerfile"]
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    os.symlink("src", tmp_path / "link")
    text = ("docs\n!docs/keep.md\n*.log\n!important.log\n**/node_modules\ntarget/**\n!target/keep/**\n"
            "/build/\nsrc/**/*.tmp\nlogs\n!logs/keep.log\n.hidden\nDockerfile\n")
    (tmp_path / ".dockerignore").write_text(text)
    pm = PatternMatcher(trim_build_files(parse(text), "Dockerfile"))
    sent = list(walk(str(tmp_path), pm))
    assert sent == [
        (".dockerignore", False), ("Dockerfile", False), ("README.md", False), ("a", True),
        ("docs/keep.md", False), ("important.log", False), ("link", False), ("logs/keep.log", False),
        ("src", True), ("src/main.c", False), ("src/x", True), ("src/x/y", True), ("src/x/y/f.go", False),
        ("target", True), ("target/keep/k", False)]
    # the daemon then drops the Dockerfile, which the patterns match
    assert PatternMatcher(parse(text)).matches("Dockerfile")
