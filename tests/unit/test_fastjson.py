"""fastjson must agree with the json module on everything the runtime reads/writes."""

import json

import pytest

from pybox.formats import fastjson

pytestmark = pytest.mark.unit

SAMPLES = [
    {"a": [1, 2.5, "x\u00e9\"\n", True, None, {}], "b": {"c": []}, "n": -3},
    [],
    {},
    "plain",
    0,
    {"nested": {"deep": [[1], [2, [3]]]}, "unicode": "\u65e5\u672c", "esc": "\t\\"},
]


@pytest.mark.parametrize("obj", SAMPLES)
def test_roundtrip_and_layout_match_json(obj):
    assert fastjson.loads(fastjson.dumps(obj)) == obj
    assert fastjson.dumps(obj) == json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    assert fastjson.dumps(obj, indent=2) == json.dumps(obj, indent=2, ensure_ascii=False)


@pytest.mark.parametrize("text", ["{", "[1,]", "1 2", "", "nul", '{"a" 1}'])
def test_invalid_json_raises_valueerror(text):
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_bytes_and_bom():
    assert fastjson.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert fastjson.loads(b'  [1]\n') == [1]


def test_unserialisable():
    with pytest.raises(TypeError):
        fastjson.dumps({"a": object()})
    with pytest.raises(ValueError):
        fastjson.dumps(float("nan"))
