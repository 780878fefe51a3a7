"""JSON for the runtime's start-up path, on the C accelerator alone.

``import json`` pulls in ``re``, ``enum``, ``functools`` and ``collections``:
about 5 ms and 1.3 MiB before the runtime does anything, on a path callers run
for every container (runc's whole ``run`` takes 31 ms here).  The parsing and
encoding in ``json`` are done by ``_json`` anyway; the Python layer only supplies
a settings object and whitespace handling.  This module does that and nothing
else, so decoding and compact encoding have json's exact semantics.  Pretty
printing (``dumps(obj, indent=2)``, used for ``state`` output as runc prints it)
is a small recursive writer on top of the same string encoder.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing costs start-up time; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

_WS = " \t\n\r"


class JSONDecodeError(ValueError):
    def __init__(self, msg: str, pos: int) -> None:
        super().__init__(msg if "(char " in msg else f"{msg} (char {pos})")
        self.pos = pos


class _DecodeContext:
    """The attributes _json.make_scanner reads (json.decoder.JSONDecoder's)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    def __init__(self) -> None:
        self.memo: dict[str, str] = {}
        self.parse_constant = {
            "-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan"),
        }.__getitem__


_scanner = _json.make_scanner(_DecodeContext())  # type: ignore[arg-type]  # duck-typed: reads the attributes


def loads(text: str | bytes | bytearray) -> Any:
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
    n = len(text)
    i = 0
    while i < n and text[i] in _WS:
        i += 1
    try:
        obj, end = _scanner(text, i)
    except StopIteration as e:
        raise JSONDecodeError("expecting a value", e.value) from None
    except ValueError as e:  # _json raises json.JSONDecodeError only if json is loaded
        raise JSONDecodeError(str(e), getattr(e, "pos", i)) from None
    while end < n and text[end] in _WS:
        end += 1
    if end != n:
        raise JSONDecodeError("extra data", end)
    return obj


def load_file(path: str) -> Any:
    with open(path, "rb") as f:
        return loads(f.read())


_encode_str = _json.encode_basestring  # keeps UTF-8 as is, like Go's encoder
def _float_repr(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"out of range float value {value!r} is not JSON compliant")
    return float.__repr__(value)


def _encode(obj: object, indent: int | None, level: int, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(_encode_str(obj))
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(_float_repr(obj))
    elif isinstance(obj, dict):
        if not obj:
            out.append("{}")
            return
        if indent is None:
            out.append("{")
            first = True
            for k, v in obj.items():
                if not first:
                    out.append(",")
                first = False
                out.append(_encode_str(str(k)))
                out.append(":")
                _encode(v, None, 0, out)
            out.append("}")
        else:
            pad = "\n" + " " * (indent * (level + 1))
            out.append("{")
            first = True
            for k, v in obj.items():
                out.append(pad if first else "," + pad)
                first = False
                out.append(_encode_str(str(k)))
                out.append(": ")
                _encode(v, indent, level + 1, out)
            out.append("\n" + " " * (indent * level) + "}")
    elif isinstance(obj, (list, tuple)):
        if not obj:
            out.append("[]")
            return
        if indent is None:
            out.append("[")
            for i, v in enumerate(obj):
                if i:
                    out.append(",")
                _encode(v, None, 0, out)
            out.append("]")
        else:
            pad = "\n" + " " * (indent * (level + 1))
            out.append("[")
            for i, v in enumerate(obj):
                out.append(pad if i == 0 else "," + pad)
                _encode(v, indent, level + 1, out)
            out.append("\n" + " " * (indent * level) + "]")
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def dumps(obj: object, indent: int | None = None) -> str:
    """Serialise dicts, lists, strings, numbers, booleans and None.  ``indent``
    gives Go's json.MarshalIndent layout ("key": value, one item a line)."""
    out: list[str] = []
    _encode(obj, indent, 0, out)
    return "".join(out)
