"""The /proc view's off switches: ``pybox run --proc-view=false`` sends the label,
the engine honours it (and any docker client's -l), the daemon's option."""

import pytest

from pybox.cli.pybox.container_opts import build_create_body
from pybox.cli.pybox.containers import _create_flagset
from pybox.cli.pyboxd import parse_args
from pybox.engine.procview import wanted
from pybox.procview import LABEL

pytestmark = pytest.mark.unit


def labels(*argv):
    opts = _create_flagset("pybox run", run=True).parse(list(argv) + ["busybox"])
    return build_create_body(opts, "1.44", environ={})[1]["Labels"]


def test_the_default_body_carries_no_label():
    assert labels() == {}
    assert labels("--proc-view") == {}
    assert labels("--proc-view=true") == {}


def test_proc_view_false_is_sent_as_the_label():
    assert labels("--proc-view=false") == {LABEL: "false"}
    assert labels("--proc-view=0", "-l", "a=b") == {"a": "b", LABEL: "false"}


@pytest.mark.parametrize("value, on", [(None, True), ("true", True), ("false", False),
                                       ("0", False), ("off", False), ("False", False),
                                       ("yes", True)])
def test_the_engine_reads_the_label(value, on):
    record = {"Config": {"Labels": {} if value is None else {LABEL: value}}}
    assert wanted(record) is on
    assert wanted({"Config": {"Labels": None}}) is True


def test_daemon_option():
    assert parse_args([]).proc_view is True
    assert parse_args(["--no-proc-view"]).proc_view is False
