"""Sizes, durations and numbers parsed and printed as docker does."""

import pytest

from pybox.cli.pybox.formatting import ellipsis, indent_raw_json, tabwrite
from pybox.cli.pybox.units import go_duration, go_float, human_duration, human_size, nano_cpus, ram_in_bytes

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,value", [("64m", 67108864), ("1.5g", 1610612736),
                                        ("10KiB", 10240), ("2 MB", 2097152), ("100", 100),
                                        ("1b", 1), ("0", 0)])
def test_ram_in_bytes(text, value):
    assert ram_in_bytes(text) == value


@pytest.mark.parametrize("text,message", [("12x", "invalid suffix: 'x'"),
                                          ("abc", "invalid size: 'abc'"),
                                          ("1kx", "invalid suffix: 'kx'")])
def test_ram_in_bytes_errors(text, message):
    with pytest.raises(ValueError, match=message):
        ram_in_bytes(text)


def test_cpus_and_durations():
    assert nano_cpus("1.5") == 1500000000 and nano_cpus(".25") == 250000000
    with pytest.raises(ValueError, match="too precise"):
        nano_cpus("0.0000000001")
    assert go_duration("1m30s") == 90 * 10**9 and go_duration("100ms") == 10**8
    assert go_duration("1.5h") == 5400 * 10**9 and go_duration("0") == 0
    with pytest.raises(ValueError, match="missing unit"):
        go_duration("5")


@pytest.mark.parametrize("seconds,text", [(0.5, "Less than a second"), (1, "1 second"),
                                          (7, "7 seconds"), (75, "About a minute"),
                                          (600, "10 minutes"), (3600, "About an hour"),
                                          (3600 * 30, "30 hours"), (86400 * 3, "3 days"),
                                          (86400 * 20, "2 weeks"), (86400 * 90, "3 months"),
                                          (86400 * 800, "2 years")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("size,text", [(0, "0B"), (999, "999B"), (1000, "1kB"),
                                       (1985512, "1.99MB"), (123456789, "123MB"),
                                       (5 * 10**9, "5GB")])
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize("value,text", [(1.0, "1"), (1e6, "1e+06"), (67108864.0, "6.7108864e+07"),
                                        (123456.0, "123456"), (0.0001, "0.0001"),
                                        (1e-05, "1e-05"), (-2.25, "-2.25")])
def test_go_float(value, text):
    assert go_float(value) == text


def test_tabwriter_and_ellipsis():
    assert tabwrite(["A\tBB\tC", "long-cell-here\tx\ty"]) == \
        ["A" + " " * 16 + "BB        C", "long-cell-here   x         y"]
    assert ellipsis("0123456789", 5) == "0123…" and ellipsis("abc", 5) == "abc"


def test_indent_raw_json_keeps_the_daemons_text():
    raw = '{"a":[],"b":{},"c":[1,{"d":"x\\u003cy\\"z"}],"e":null}'
    assert indent_raw_json(raw) == (
        '{\n    "a": [],\n    "b": {},\n    "c": [\n        1,\n        {\n'
        '            "d": "x\\u003cy\\"z"\n        }\n    ],\n    "e": null\n}')
