"""pybox.build.dockerfile: Dockerfiles as dockerd's classic builder parses them.

The error messages are the ones a private dockerd 20.10 (DOCKER_BUILDKIT=0 docker build)
answered for the same Dockerfiles; the splitting of arguments was checked against the
image configs and histories it produced (ONBUILD expressions, EXPOSE order, CMD forms)."""

import pytest

from pybox.build.dockerfile import (
    Dockerfile,
    Instruction,
    healthcheck,
    iter_all,
    parse,
    parse_heredoc_word,
    parse_instructions,
)
from pybox.errors import BadRequest, DockerfileParseError


def body(text: str) -> list[Instruction]:
    """The instructions of the only stage."""
    df = parse(text)
    assert len(df.stages) == 1
    return list(df.stages[0].instructions)


def one(text: str) -> Instruction:
    """The single instruction after FROM."""
    (ins,) = body("FROM busybox\n" + text)
    return ins


# -- stages, meta ARGs, directives ---------------------------------------------


def test_stages_and_meta_args() -> None:
    df = parse("ARG BASE=busybox\nARG V\nFROM ${BASE} AS Build\nRUN a\nFROM scratch\n"
               "FROM --platform=linux/arm64 build as final\nCOPY --from=build /a /b\n")
    assert [a.args for a in df.meta_args] == [["BASE=busybox"], ["V"]]
    assert [(s.index, s.name, s.base, s.platform, s.line) for s in df.stages] == [
        (0, "build", "${BASE}", None, 3), (1, None, "scratch", None, 5),
        (2, "final", "build", "linux/arm64", 6)]
    assert [i.keyword for i in df.stages[0].instructions] == ["RUN"]
    assert df.stages[1].instructions == ()
    assert df.stage("BUILD") is df.stages[0]
    assert df.stage("2") is df.stages[2]
    assert df.stage("nope") is None
    assert df.stages[2].original == "FROM --platform=linux/arm64 build as final"
    assert [i.keyword for i in iter_all(df)] == ["ARG", "ARG", "FROM", "RUN", "FROM", "FROM", "COPY"]
    assert df.escape == "\\" and df.syntax is None


@pytest.mark.parametrize("text, escape, syntax", [
    ("# escape=`\nFROM a\n", "`", None),
    ("#escape = `\nFROM a\n", "`", None),
    ("# ESCAPE=`\nFROM a\n", "`", None),
    ("# syntax=docker/dockerfile:1.4\n# escape=\\\nFROM a\n", "\\", "docker/dockerfile:1.4"),
    ("# syntax = docker/dockerfile:1  \nFROM a\n", "\\", "docker/dockerfile:1"),
    ("\n# escape=`\nFROM a\n", "\\", None),  # not at the top: a comment
    ("# a comment\n# escape=`\nFROM a\n", "\\", None),
    ("# unknown=1\n# escape=`\nFROM a\n", "\\", None),
    ("FROM a\n# escape=`\n", "\\", None),
    ("\ufeff# escape=`\nFROM a\n", "`", None),
])
def test_directives(text: str, escape: str, syntax: str | None) -> None:
    df = parse(text)
    assert (df.escape, df.syntax) == (escape, syntax)


def test_backtick_escape_continues_lines_and_leaves_backslashes() -> None:
    ins = body("# escape=`\nFROM a\nRUN dir C:\\ `\n  && echo done\nCOPY a\\b c\\\n")
    assert ins[0].args == ["dir C:\\   && echo done"]
    assert (ins[0].line, ins[0].end_line) == (3, 4)
    assert ins[1].args == ["a\\b", "c\\"]


# -- lines: continuations, comments, endings -----------------------------------


def test_continuations_comments_and_empty_lines() -> None:
    df = parse("FROM a\n# top comment\n  RUN echo a \\\n  # inside\n    b \\\n\n  c\n   \nCMD x\n")
    run, cmd = df.stages[0].instructions
    assert run.args == ["echo a     b   c"]
    assert (run.line, run.end_line) == (3, 7)
    assert run.original == "RUN echo a     b   c"
    assert (cmd.line, cmd.end_line) == (9, 9)
    assert df.warnings[0] == "[WARNING]: Empty continuation line found in:\n    RUN echo a     b   c"


def test_crlf_and_bom() -> None:
    ins = body("\ufeffFROM a\r\nRUN echo \\\r\n  x\r\nENV A=1\r\n")
    assert ins[0].args == ["echo   x"]
    assert ins[1].args == ["A", "1"]


def test_continuation_at_end_of_file() -> None:
    assert one("RUN echo \\").args == ["echo"]
    assert one("RUN echo \\\n").args == ["echo"]


def test_escape_before_the_escape_is_no_continuation() -> None:
    # buildkit's regexp wants a character other than the escape before the final one
    with pytest.raises(DockerfileParseError, match="line 3: unknown instruction: X"):
        parse("FROM a\nRUN echo \\\\\n  x\n")
    with pytest.raises(DockerfileParseError, match="line 3: unknown instruction: X"):
        parse("FROM a\nRUN echo \\\\\\\n  x\n")


# -- argument splitting per instruction ----------------------------------------


@pytest.mark.parametrize("line, args, json_form", [
    ("RUN echo  a   b ", ["echo  a   b"], False),
    ('RUN ["echo", "a b"]', ["echo", "a b"], True),
    ('RUN [ "echo" , "x" ]  ', ["echo", "x"], True),
    ('RUN ["bad json"', ['["bad json"'], False),
    ("RUN ['single']", ["['single']"], False),
    ("RUN []", [], True),
    ("RUN", [], False),
    ('CMD ["echo", "a b"]', ["echo", "a b"], True),
    ("CMD echo hi", ["echo hi"], False),
    ('ENTRYPOINT ["/bin/sh", "-c"] ', ["/bin/sh", "-c"], True),
    ('SHELL ["/bin/bash", "-ec"]', ["/bin/bash", "-ec"], True),
    ("COPY a b  c /d/", ["a", "b", "c", "/d/"], False),
    ('COPY ["a b", "/c d"]', ["a b", "/c d"], True),
    ('ADD ["src", "/dst"]', ["src", "/dst"], True),
    ("VOLUME /a /b", ["/a", "/b"], False),
    ('VOLUME ["/a", " /b "]', ["/a", "/b"], True),
    ("EXPOSE 9000 80/udp 8080", ["80/udp", "8080", "9000"], False),
    ("USER a b", ["a b"], False),
    ("WORKDIR /a b", ["/a b"], False),
    ("STOPSIGNAL SIGKILL", ["SIGKILL"], False),
    ("MAINTAINER me <me@example.com>", ["me <me@example.com>"], False),
    ("ARG a b=1 c='x y'", ["a", "b=1", "c='x y'"], False),
    ("ARG empty=", ["empty="], False),
    ("HEALTHCHECK NONE", ["NONE"], False),
    ("HEALTHCHECK cmd curl -f x", ["CMD", "curl -f x"], False),
    ('HEALTHCHECK CMD ["true", "x"]', ["CMD", "true", "x"], True),
])
def test_arguments(line: str, args: list[str], json_form: bool) -> None:
    ins = one(line)
    assert (ins.args, ins.json_form) == (args, json_form)
    assert ins.original == line


@pytest.mark.parametrize("line, pairs", [
    ("ENV A=1", [("A", "1")]),
    ('ENV A=1 B="two words" C=\'x\' D=a\\ b E=', [("A", "1"), ("B", '"two words"'), ("C", "'x'"),
                                                  ("D", "a\\ b"), ("E", "")]),
    ("ENV OLD value  with   spaces", [("OLD", "value  with   spaces")]),
    ('ENV OLD "quoted" x', [("OLD", '"quoted" x')]),
    ('LABEL a=b "c d"=e', [("a", "b"), ('"c d"', "e")]),
    ("LABEL version 1.0", [("version", "1.0")]),
    ("ENV A=x=y", [("A", "x=y")]),
])
def test_key_values(line: str, pairs: list[tuple[str, str]]) -> None:
    assert one(line).key_values() == pairs


def test_keyword_case_and_flags() -> None:
    ins = one("copy --from=build --chown=1:2 --chmod=0644 --link --exclude=*.md --exclude=x a /b")
    assert ins.keyword == "COPY"
    assert ins.flags == [("from", "build"), ("chown", "1:2"), ("chmod", "0644"), ("link", None),
                         ("exclude", "*.md"), ("exclude", "x")]
    assert ins.flag("from") == "build"
    assert ins.flag("platform") is None
    assert ins.flag_bool("link") and not ins.flag_bool("parents")
    assert ins.flag_values("exclude") == ["*.md", "x"]
    assert ins.args == ["a", "/b"]


@pytest.mark.parametrize("line, flags", [
    ("ADD --chown=u --keep-git-dir=true --checksum=sha256:ab --link=false a b",
     [("chown", "u"), ("keep-git-dir", "true"), ("checksum", "sha256:ab"), ("link", "false")]),
    ('COPY --chown="a b" x y', [("chown", "a b")]),
    ("COPY --parents a b", [("parents", None)]),
    ("RUN --mount=type=cache,target=/root/.cache --network=none --security=sandbox make",
     [("mount", "type=cache,target=/root/.cache"), ("network", "none"), ("security", "sandbox")]),
    ("RUN --mount=type=secret,id=x,required --mount=type=tmpfs,target=/t true",
     [("mount", "type=secret,id=x,required"), ("mount", "type=tmpfs,target=/t")]),
    ("HEALTHCHECK --interval=30s --timeout=3s --start-period=1m --retries=3 CMD true",
     [("interval", "30s"), ("timeout", "3s"), ("start-period", "1m"), ("retries", "3")]),
    ("RUN -- --not-a-flag", []),
    ("COPY -x a /b", []),  # one dash: an argument
])
def test_flags(line: str, flags: list[tuple[str, str | None]]) -> None:
    assert one(line).flags == flags


@pytest.mark.parametrize("line, config", [
    ("HEALTHCHECK NONE", {"Test": ["NONE"]}),
    ("HEALTHCHECK CMD curl -f http://x/ || exit 1", {"Test": ["CMD-SHELL", "curl -f http://x/ || exit 1"]}),
    ('HEALTHCHECK --interval=2s --timeout=3s --start-period=4s --retries=5 CMD ["true", "x"]',
     {"Test": ["CMD", "true", "x"], "Interval": 2_000_000_000, "Timeout": 3_000_000_000,
      "StartPeriod": 4_000_000_000, "Retries": 5}),  # as dockerd 20.10's image config
    ("HEALTHCHECK --start-interval=1m30s --start-period= CMD true",
     {"Test": ["CMD-SHELL", "true"], "StartInterval": 90_000_000_000}),
])
def test_healthcheck_config(line: str, config: dict[str, object]) -> None:
    assert healthcheck(one(line)) == config


def test_arg_pairs() -> None:
    assert one("ARG a b=1 c= d='x y'").arg_pairs() == [("a", None), ("b", "1"), ("c", ""), ("d", "'x y'")]


def test_flags_ignored_where_buildkit_ignores_them() -> None:
    assert one("ARG --foo x").args == ["x"]
    assert one("STOPSIGNAL --foo SIGTERM").args == ["SIGTERM"]
    assert one("HEALTHCHECK --foo=1 NONE").args == ["NONE"]


def test_onbuild_expression() -> None:
    ins = one('ONBUILD RUN echo   "on build" \\\n  # c\n  more')
    assert ins.args == ['RUN echo   "on build"   more']
    assert one("onbuild  ADD . /app").args == ["ADD . /app"]
    assert one("ONBUILD FOO x").args == ["FOO x"]  # checked only when triggered


# -- heredocs ------------------------------------------------------------------


def test_heredoc_run() -> None:
    ins = one("RUN <<EOF\necho $HOME\n  indented\nEOF\n")
    assert ins.args == ["<<EOF"]
    (doc,) = ins.heredocs
    assert (doc.name, doc.content, doc.expand, doc.chomp) == ("EOF", "echo $HOME\n  indented\n", True, False)
    assert (ins.line, ins.end_line) == (2, 5)


def test_heredocs_several_quoted_and_chomped() -> None:
    ins = one("RUN <<-\"A\" cat > /x && 3<<'B' cat\n\tone $X\n\t\tA-not\n\tA\nb\nB\n")
    a, b = ins.heredocs
    assert (a.name, a.expand, a.chomp, a.fd) == ("A", False, True, 0)
    assert a.content == "\tone $X\n\t\tA-not\n"
    assert a.chomped() == "one $X\nA-not\n"
    assert (b.name, b.expand, b.chomp, b.fd, b.content) == ("B", False, False, 3, "b\n")
    assert ins.heredoc("<<-\"A\"") is a


def test_heredoc_partly_quoted_delimiter_does_not_expand() -> None:
    (doc,) = one('RUN <<E"O"F\nx\nEOF\n').heredocs
    assert (doc.name, doc.expand) == ("EOF", False)


def test_heredoc_copy_and_space_after_marker() -> None:
    ins = one("COPY << EOF /file\nline 1\nline 2\nEOF\n")
    assert ins.args == ["<<", "EOF", "/file"]
    assert ins.heredocs[0].content == "line 1\nline 2\n"
    ins = one("COPY <<one <<two /dir/\n1\none\n2\ntwo\n")
    assert [(d.name, d.content) for d in ins.heredocs] == [("one", "1\n"), ("two", "2\n")]
    assert ins.heredoc("<<two") is ins.heredocs[1]


def test_no_heredoc_where_buildkit_sees_none() -> None:
    assert one('RUN ["cat", "<<EOF"]').heredocs == ()  # exec form
    assert one('RUN echo "<<EOF"').heredocs == ()  # quoted
    assert one("RUN echo a<<EOF").heredocs == ()  # not a word of its own
    ins = body("FROM a\nENV A=<<EOF\nRUN x\n")  # ENV has no heredocs
    assert [i.keyword for i in ins] == ["ENV", "RUN"]


def test_onbuild_heredoc() -> None:
    ins = one("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert ins.args == ["RUN <<EOF\necho hi\nEOF"]
    assert ins.heredocs[0].content == "echo hi\n"


@pytest.mark.parametrize("word, name", [
    ("<<EOF", "EOF"), ("<<-EOF", "EOF"), ("<<'EOF'", "EOF"), ('2<<"E F"', "E F"),
    ("<EOF", None), ("<<", None), ("a<<EOF", None), ("<<a b", None), ("<<<EOF", None),
])
def test_parse_heredoc_word(word: str, name: str | None) -> None:
    doc = parse_heredoc_word(word)
    assert (doc.name if doc else None) == name


# -- errors, as dockerd 20.10 words them ---------------------------------------


@pytest.mark.parametrize("text, message", [
    ("FROM busybox\nFORM x\n", "dockerfile parse error line 2: unknown instruction: FORM"),
    ("FROM busybox\nform x\n", "dockerfile parse error line 2: unknown instruction: FORM"),
    ("FROM busybox\nRUN <<EOF\necho hi\n", "failed to parse Dockerfile: unterminated heredoc"),
    ("RUN true\n", "no build stage in current context"),
    ("ARG x\nRUN true\n", "no build stage in current context"),
    ("ENV A\n", "failed to parse Dockerfile: ENV must have two arguments"),
    ("FROM busybox\nLABEL a\n", "failed to parse Dockerfile: LABEL must have two arguments"),
    ("FROM busybox\nLABEL a=b c\n",
     "failed to parse Dockerfile: Syntax error - can't find = in \"c\". Must be of the form: name=value"),
    ("FROM busybox\nENV =x\n", "dockerfile parse error line 2: ENV names can not be blank"),
    ("FROM busybox\nLABEL =x\n", "dockerfile parse error line 2: LABEL names can not be blank"),
    ("FROM busybox\nRUN --foo true\n", "dockerfile parse error line 2: Unknown flag: foo"),
    ("FROM busybox\nCOPY --bar=1 a b\n", "dockerfile parse error line 2: Unknown flag: bar"),
    ("FROM busybox\nENV --x=1 A=b\n", "dockerfile parse error line 2: Unknown flag: x"),
    ("FROM --foo=x busybox\n", "dockerfile parse error line 1: Unknown flag: foo"),
    ("FROM busybox\nCOPY --chown a /b\n", "dockerfile parse error line 2: Missing a value on flag: chown"),
    ("FROM busybox\nCOPY --from a /b\n", "dockerfile parse error line 2: Missing a value on flag: from"),
    ("FROM busybox\nCOPY --link= a /b\n", "dockerfile parse error line 2: Missing a value on flag: link"),
    ("FROM busybox\nCOPY --link=maybe a /b\n",
     "dockerfile parse error line 2: Expecting boolean value for flag link, not: maybe"),
    ("FROM busybox\nCOPY --chown=1 --chown=2 a /b\n",
     "dockerfile parse error line 2: Duplicate flag specified: chown"),
    ("FROM busybox\nRUN --network=bogus true\n",
     'dockerfile parse error line 2: invalid network mode "bogus"'),
    ("FROM busybox\nRUN --mount=foo true\n",
     "dockerfile parse error line 2: invalid field 'foo' must be a key=value pair"),
    ("FROM busybox\nRUN --mount=type=bind,foo=1 true\n",
     "dockerfile parse error line 2: unexpected key 'foo' in 'foo=1'"),
    ("# escape=x\nFROM busybox\n",
     "failed to parse Dockerfile: invalid escape token 'x' does not match ` or \\"),
    ("# escape=`\n# escape=`\nFROM busybox\n",
     "failed to parse Dockerfile: only one escape parser directive can be used"),
    ("# syntax=docker/dockerfile:1\n# Syntax=x\nFROM busybox\n",
     "failed to parse Dockerfile: only one syntax parser directive can be used"),
    ("", "the Dockerfile (Dockerfile) cannot be empty"),
    ("# just a comment\n", "failed to parse Dockerfile: file with no instructions"),
    ("\n  \n", "failed to parse Dockerfile: file with no instructions"),
    ("FROM busybox\nSHELL /bin/sh -c\n",
     "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nSHELL []\n", "dockerfile parse error line 2: SHELL requires at least one argument"),
    ("FROM busybox as 1x\n", "dockerfile parse error line 1: invalid name for build stage: \"1x\", "
                             "name can't start with a number or contain symbols"),
    ("FROM busybox a b\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
    ("FROM\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
    ("FROM --platform linux/amd64 busybox\n",
     "dockerfile parse error line 1: FROM requires either one or three arguments"),
    ("FROM busybox\nONBUILD FROM x\n",
     "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nONBUILD MAINTAINER x\n",
     "dockerfile parse error line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("FROM busybox\nONBUILD ONBUILD RUN x\n",
     "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    ("FROM busybox\nONBUILD\n", "dockerfile parse error line 2: ONBUILD requires at least one argument"),
    ("FROM busybox\nONBUILD ENV A\n", "failed to parse Dockerfile: ENV must have two arguments"),
    ("FROM busybox\nHEALTHCHECK FOO x\n",
     'dockerfile parse error line 2: Unknown type "FOO" in HEALTHCHECK (try CMD)'),
    ("FROM busybox\nHEALTHCHECK --interval=1 CMD x\n",
     'dockerfile parse error line 2: time: missing unit in duration "1"'),
    ("FROM busybox\nHEALTHCHECK --interval=1ns CMD true\n",
     'dockerfile parse error line 2: Interval "interval" cannot be less than 1ms'),
    ("FROM busybox\nHEALTHCHECK --timeout=0 CMD true\n",
     'dockerfile parse error line 2: Interval "timeout" cannot be less than 1ms'),
    ("FROM busybox\nHEALTHCHECK --retries=0 CMD true\n",
     "dockerfile parse error line 2: --retries must be at least 1 (not 0)"),
    ("FROM busybox\nHEALTHCHECK --retries=x CMD true\n",
     'dockerfile parse error line 2: strconv.ParseInt: parsing "x": invalid syntax'),
    ("FROM busybox\nHEALTHCHECK NONE x\n",
     "dockerfile parse error line 2: HEALTHCHECK NONE takes no arguments"),
    ("FROM busybox\nHEALTHCHECK CMD\n",
     "dockerfile parse error line 2: Missing command after HEALTHCHECK CMD"),
    ("FROM busybox\nHEALTHCHECK\n",
     "dockerfile parse error line 2: HEALTHCHECK requires at least one argument"),
    ("FROM busybox\nCOPY a\n", "dockerfile parse error line 2: COPY requires at least two arguments, "
                               "but only one was provided. Destination could not be determined"),
    ("FROM busybox\nADD\n", "dockerfile parse error line 2: ADD requires at least two arguments, "
                            "but only one was provided. Destination could not be determined"),
    ("FROM busybox\nCOPY a <<EOF\nx\nEOF\n",
     "dockerfile parse error line 2: COPY cannot accept a heredoc as a destination"),
    ("FROM busybox\nRUN [\"a\", 1]\n",
     "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only"),
    ("FROM busybox\nUSER\n", "dockerfile parse error line 2: USER requires exactly one argument"),
    ("FROM busybox\nWORKDIR\n", "dockerfile parse error line 2: WORKDIR requires exactly one argument"),
    ("FROM busybox\nEXPOSE\n", "dockerfile parse error line 2: EXPOSE requires at least one argument"),
    ("FROM busybox\nVOLUME\n", "dockerfile parse error line 2: VOLUME requires at least one argument"),
    ("FROM busybox\nVOLUME [\"\"]\n",
     "dockerfile parse error line 2: VOLUME specified can not be an empty string"),
    ("FROM busybox\nSTOPSIGNAL\n", "dockerfile parse error line 2: STOPSIGNAL requires exactly one argument"),
    ("FROM busybox\nARG\n", "dockerfile parse error line 2: ARG requires at least one argument"),
    ("FROM busybox\nARG =x\n", "dockerfile parse error line 2: ARG names can not be blank"),
    ("FROM busybox\nMAINTAINER\n", "dockerfile parse error line 2: MAINTAINER requires exactly one argument"),
    ("\n# escape=`\nFROM busybox\nRUN echo `\n  hi\n",
     "dockerfile parse error line 5: unknown instruction: HI"),
    ("FROM a\nRUN x \\\n  y\nBAD\n", "dockerfile parse error line 4: unknown instruction: BAD"),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileParseError) as caught:
        parse(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, BadRequest)


@pytest.mark.parametrize("mount, message", [
    ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
    ("type=bind,mode=0755", 'mode not allowed for "bind" type mounts'),
    ("type=bind,sharing=shared", "invalid cache sharing set for bind mount"),
    ("type=secret", "invalid secret mount. one of source, target required"),
    ("type=secret,src=a,id=b", "both source and id can't be set"),
    ("type=secret,from=x,id=a", "secret mount should not have a from"),
    ("type=nope", 'unsupported mount type "nope"'),
    ("ro=maybe", "invalid value for ro: maybe"),
    ("mode=9", "invalid value 9 for mode"),
    ("type=cache,uid=x", "invalid value x for uid"),
    ("type=cache,sharing=odd", 'unsupported sharing value "odd"'),
    ("type=cache,target=/x,sharing=locked,mode=0700,uid=1,gid=2", None),
    ("type=secret,id=tok,required", None),
    ("type=ssh,required=true", None),
    ("type=tmpfs,target=/t,rw", None),
])
def test_run_mount_validation(mount: str, message: str | None) -> None:
    text = f"FROM busybox\nRUN --mount={mount} true\n"
    if message is None:
        assert one(f"RUN --mount={mount} true").flag_values("mount") == [mount]
        return
    with pytest.raises(DockerfileParseError) as caught:
        parse(text)
    assert str(caught.value) == "dockerfile parse error line 2: " + message


def test_error_names_the_dockerfile() -> None:
    with pytest.raises(DockerfileParseError, match=r"^failed to parse sub/Dockerfile.dev: file with"):
        parse("# x\n", name="sub/Dockerfile.dev")
    with pytest.raises(DockerfileParseError, match=r"^the Dockerfile \(x\.df\) cannot be empty$"):
        parse(b"", name="x.df")


def test_overlong_line() -> None:
    with pytest.raises(DockerfileParseError, match="dockerfile line greater than max allowed size of 65535"):
        parse("FROM a\nRUN " + "x" * 70000 + "\n")


@pytest.mark.parametrize("text", [
    "FROM busybox\nWORKDIR a b\n",
    "FROM busybox\nUSER a b\n",
    "FROM busybox\nMAINTAINER a b\n",
    "FROM busybox\nCMD\n",
    "FROM busybox\nRUN\n",
    "FROM busybox\nCOPY a a\\\n",
    "FROM busybox\nADD --chmod=755 a /b\n",  # refused later, by the classic builder
    "FROM busybox\nRUN --mount=type=cache,target=/x true\n",
    "FROM busybox\nHEALTHCHECK --start-interval=2s CMD true\n",
])
def test_accepted(text: str) -> None:
    assert isinstance(parse(text), Dockerfile)


def test_bytes_input_and_parse_instructions() -> None:
    ins = parse_instructions(b"RUN echo hi\nENV A=1\n")
    assert [(i.keyword, i.args) for i in ins] == [("RUN", ["echo hi"]), ("ENV", ["A", "1"])]
    with pytest.raises(DockerfileParseError, match="unknown instruction: NOPE"):
        parse_instructions("NOPE x\n")
