"""Numbers the docker CLI parses and prints (--cpus, table sizes, Go's %v); the
formats client and daemon share are tests/unit/test_formats.py's."""

import pytest

from pybox.cli.pybox.formatting import ellipsis, indent_raw_json, tabwrite
from pybox.cli.pybox.units import go_float, human_size, mem_swap_bytes, nano_cpus

pytestmark = pytest.mark.unit


def test_cpus_and_memory_swap():
    assert nano_cpus("1.5") == 1500000000 and nano_cpus(".25") == 250000000
    with pytest.raises(ValueError, match="too precise"):
        nano_cpus("0.0000000001")
    assert mem_swap_bytes("-1") == -1 and mem_swap_bytes("1g") == 1 << 30


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
