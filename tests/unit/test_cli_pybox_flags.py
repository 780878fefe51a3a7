"""The pybox CLI's flags follow pflag (the docker CLI's parser), with docker's
error wording and exit codes."""

import pytest

from pybox.cli.pybox.containers import _create_flagset
from pybox.cli.pybox.flags import FlagSet, HelpRequested
from pybox.errors import ClientError, FlagError

pytestmark = pytest.mark.unit


def run_flags(argv):
    return _create_flagset("pybox run", run=True).parse(argv)


def test_combined_shorthands_and_values():
    o = run_flags(["-dit", "-eA=1", "-e", "B=2", "-e=C=3", "--name=n", "-m", "64m",
                   "--rm", "busybox", "sh"])
    assert (o.detach, o.interactive, o.tty, o.rm) == (True, True, True, True)
    assert o.env == ["A=1", "B=2", "C=3"]
    assert o.name == "n" and o.memory == 64 << 20
    assert o.args == ["busybox", "sh"]


def test_run_stops_at_the_image():
    o = run_flags(["busybox", "ls", "-l", "--rm"])
    assert o.args == ["busybox", "ls", "-l", "--rm"] and o.rm is False


def test_bool_values_and_changed():
    o = run_flags(["--sig-proxy=false", "--init=false", "--entrypoint=", "img"])
    assert o.sig_proxy is False and o.init is False and o.entrypoint == ""
    assert o.given("init") and o.given("entrypoint") and not o.given("stop-timeout")


def test_other_commands_accept_flags_after_arguments():
    fs = FlagSet("pybox rm", "pybox rm [OPTIONS] CONTAINER [CONTAINER...]", min_args=1)
    fs.add("force", "f", "bool")
    o = fs.parse(["c1", "-f", "c2"])
    assert o.force and o.args == ["c1", "c2"]
    o = fs.parse(["--", "-f"])
    assert not o.force and o.args == ["-f"]


def test_errors_use_dockers_words_and_exit_125():
    with pytest.raises(FlagError) as e:
        run_flags(["--foo", "img"])
    assert str(e.value).startswith("unknown flag: --foo\n\nUsage:  pybox run [OPTIONS] IMAGE")
    assert e.value.exit_status == 125
    with pytest.raises(FlagError) as e:
        run_flags(["-m", "12x", "img"])
    assert str(e.value).startswith(
        'invalid argument "12x" for "-m, --memory" flag: invalid suffix: \'x\'\n')
    with pytest.raises(FlagError) as e:
        run_flags(["-Z", "img"])
    assert str(e.value).startswith("unknown shorthand flag: 'Z' in -Z")
    with pytest.raises(FlagError) as e:
        run_flags(["--name"])
    assert str(e.value).startswith("flag needs an argument: --name")
    with pytest.raises(FlagError) as e:
        run_flags(["-c", "x", "img"])
    assert 'strconv.ParseInt: parsing "x": invalid syntax' in str(e.value)


def test_argument_counts_exit_1():
    with pytest.raises(ClientError) as e:
        run_flags([])
    assert e.value.exit_status == 1
    assert str(e.value).startswith("pybox: 'pybox run' requires at least 1 argument\n")
    fs = FlagSet("pybox rename", "pybox rename CONTAINER NEW_NAME", exact_args=2)
    with pytest.raises(ClientError, match="requires exactly 2 arguments"):
        fs.parse(["a"])


def test_help():
    with pytest.raises(HelpRequested) as e:
        run_flags(["--help"])
    assert "Usage:  pybox run [OPTIONS] IMAGE [COMMAND] [ARG...]" in e.value.text
    assert "-m, --memory bytes" in e.value.text
