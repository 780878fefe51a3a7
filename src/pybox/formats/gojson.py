"""JSON as Go's encoding/json reads it into typed Go values, in Go's words.

dockerd reads request bodies with a json.Decoder (httputils.ReadJSON: one
value, "unexpected EOF" for a cut one, then Decoder.More) and files such as a
plugin's config.json with json.Unmarshal (the whole text one value, "unexpected
end of JSON input"); both decode into Go structs, and a client sees Go's words
when that fails: "invalid character 'x' looking for beginning of value",
"json: cannot unmarshal string into Go struct field HostConfig.HostConfig.
Privileged of type bool".  The API's request bodies (pybox.api.schema) and the
engine's plugin configs (pybox.engine.plugins) both need that, and they sit on
different floors (engine cannot import api), so the one implementation lives
here:

* the scanner: Python's JSON errors turned into the words of Go's scanner, in
  the Decoder's flavour (``read_value``) or Unmarshal's (``unmarshal``); numbers
  keep their text (``GoFloat``: Go quotes "number 1.5" as written);
* the typed decoding: Go types described once (``Bool``, ``Int``, ``Str``,
  ``Slice``, ``Map``, ``Ptr``, ``Struct``...) and decoded as Go's decodeState
  does: field names matched case-insensitively, unknown fields ignored, null a
  no-op except for nil-able types, the first UnmarshalTypeError kept while the
  decode goes on, an error from a type's own UnmarshalJSON (``Fatal``) ending it,
  a struct met twice under case variants of its name decoded into the same value.
  A type with its own UnmarshalJSON (strslice.StrSlice, PluginInterfaceType) is a
  ``GoType`` subclass next to its caller.

Bad input is ``GoJSONError`` (a ValueError) carrying Go's words; callers turn it
into their own error (a 400 with "invalid JSON: ...", "failed to parse config:
..."). Only the daemon imports this module, so it may load ``json`` and ``re``.
"""

from __future__ import annotations

import json
import re
from typing import Any

OMIT = object()  # a field whose JSON value leaves the Go field untouched
_SURROGATE = re.compile("[\ud800-\udfff]")
_WS = " \t\r\n"
INT_RANGES = {
    "int": (-(1 << 63), (1 << 63) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
    "int32": (-(1 << 31), (1 << 31) - 1), "int16": (-(1 << 15), (1 << 15) - 1),
    "uint": (0, (1 << 64) - 1), "uint64": (0, (1 << 64) - 1), "uint32": (0, (1 << 32) - 1),
    "uint16": (0, (1 << 16) - 1), "uint8": (0, 255),
}


class GoJSONError(ValueError):
    """JSON that Go's encoding/json refuses; the message is Go's."""


class Empty(GoJSONError):
    """No JSON value at all where a json.Decoder reads one (Go's io.EOF)."""

    def __init__(self, message: str = "EOF") -> None:
        super().__init__(message)


class Fatal(Exception):
    """An error from a type with its own UnmarshalJSON: Go stops there, and
    this error wins over a type error saved before it."""


# -- numbers and strings ------------------------------------------------------------------
class GoFloat(float):
    """A JSON number written with a fraction or an exponent; keeps its text,
    which Go quotes when the number does not fit an integer field."""

    text: str

    def __new__(cls, text: str) -> GoFloat:
        try:
            obj = super().__new__(cls, text)
        except OverflowError:  # pragma: no cover - float("1e999") is inf, not an error
            obj = super().__new__(cls, "inf")
        obj.text = text
        return obj


def parse_int(text: str) -> int | GoFloat:
    # past Python's int conversion limit: no Go integer holds it either
    return int(text) if len(text) < 4000 else GoFloat(text)


def number_text(v: Any) -> str:
    """A decoded number as the JSON text wrote it (Go's "number 1.50")."""
    return v.text if isinstance(v, GoFloat) else str(v)


def kind_of(v: Any) -> str:
    """Go's name for a JSON value's kind in an UnmarshalTypeError."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def clean_str(s: str) -> str:
    """Go replaces invalid UTF-16 surrogates in JSON strings with U+FFFD;
    Python keeps them, and they fail later when written as UTF-8."""
    return _SURROGATE.sub("\ufffd", s) if _SURROGATE.search(s) else s


def plain(v: Any) -> Any:
    """A JSON value for an interface{} field: plain Python types only."""
    if isinstance(v, str):
        return clean_str(v)
    if isinstance(v, GoFloat):
        return float(v)
    if isinstance(v, list):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {clean_str(k): plain(x) for k, x in v.items()}
    return v


# -- the scanner's words --------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_float=GoFloat, parse_int=parse_int,
                            parse_constant=_reject_constant)


def quote_char(c: str) -> str:
    """Go's quoteChar for scanner errors: 'x', '\\n', '\\x01'."""
    if c == "'":
        return "'\\''"
    if c == '"':
        return "'\"'"
    return "'" + json.dumps(c)[1:-1].replace("\\u00", "\\x") + "'" if not c.isprintable() \
        else f"'{c}'"


def innermost(text: str, pos: int) -> str:
    """'{' or '[': the container open at ``pos`` (for Go's "after ..." words)."""
    stack = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def syntax_error(text: str, err: json.JSONDecodeError, *, stream: bool) -> str:
    """Python's JSON error -> the words of Go's scanner.  ``stream``: a
    json.Decoder's, which calls a cut document "unexpected EOF" (Unmarshal:
    "unexpected end of JSON input")."""
    pos, msg = err.pos, err.msg
    if (pos >= len(text) and msg != "Extra data") or msg.startswith("Unterminated string"):
        return "unexpected EOF" if stream else "unexpected end of JSON input"
    c = text[pos]
    if msg == "Extra data":
        return f"invalid character {quote_char(c)} after top-level value"
    if msg.startswith("Expecting value"):
        return f"invalid character {quote_char(c)} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {quote_char(c)} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {quote_char(c)} after object key"
    if msg.startswith("Expecting ','"):
        what = "object key:value pair" if innermost(text, pos) == "{" else "array element"
        return f"invalid character {quote_char(c)} after {what}"
    if msg.startswith("Invalid control character"):
        return f"invalid character {quote_char(c)} in string literal"
    if msg.startswith("Invalid \\u"):
        bad = next((ch for ch in text[pos + 2:pos + 6] if ch not in "0123456789abcdefABCDEF"),
                   c)
        return f"invalid character {quote_char(bad)} in \\u hexadecimal character escape"
    if msg.startswith("Invalid \\escape"):
        nxt = text[pos + 1] if pos + 1 < len(text) else c
        return f"invalid character {quote_char(nxt)} in string escape code"
    return f"invalid character {quote_char(c)} looking for beginning of value"


def _text(data: bytes | bytearray | str) -> str:
    return data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def _scan(text: str, start: int, stream: bool) -> tuple[Any, int]:
    """One JSON value at ``start``: (value, end) or GoJSONError in Go's words."""
    try:
        return _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise GoJSONError(syntax_error(text, e, stream=stream)) from None
    except ValueError as e:  # NaN, Infinity: not JSON for Go
        if str(e).startswith("-"):
            raise GoJSONError("invalid character 'I' in numeric literal") from None
        raise GoJSONError(f"invalid character {quote_char(str(e)[:1] or '?')} "
                          "looking for beginning of value") from None
    except RecursionError:
        raise GoJSONError("exceeded max depth") from None


def read_value(data: bytes | bytearray | str) -> tuple[Any, bool]:
    """One JSON value as Go's json.Decoder.Decode reads it from a stream, and
    Decoder.More() after it (content other than ']' or '}' follows).  Raises
    Empty for text that is empty or all white space, GoJSONError otherwise."""
    text = _text(data)
    i = _skip_ws(text, 0)
    if i == len(text):
        raise Empty()
    value, end = _scan(text, i, stream=True)
    rest = _skip_ws(text, end)
    if rest == len(text):
        return value, False
    if not isinstance(value, (dict, list)) and rest == end:
        # a number or literal runs into the next character: the scanner's error
        raise GoJSONError(f"invalid character {quote_char(text[rest])} after top-level value")
    return value, text[rest] not in "]}"


def unmarshal(data: bytes | bytearray | str) -> Any:
    """The JSON text as Go's json.Unmarshal checks it: exactly one value,
    white space around it; GoJSONError in Go's words otherwise."""
    text = _text(data)
    i = _skip_ws(text, 0)
    if i == len(text):
        raise GoJSONError("unexpected end of JSON input")
    value, end = _scan(text, i, stream=False)
    rest = _skip_ws(text, end)
    if rest < len(text):
        raise GoJSONError(f"invalid character {quote_char(text[rest])} after top-level value")
    return value


# -- typed decoding -------------------------------------------------------------------------
class DecodeState:
    """Go's decodeState error bookkeeping: the first type error is kept and
    decoding goes on; the struct and field path say where it happened."""

    def __init__(self, render: bool = False) -> None:
        self.saved: str | None = None
        self.struct: str | None = None
        self.stack: list[str] = []
        # rendering a stored record (see render): exact names, unknown fields
        # kept, a value of the wrong type dropped instead of refused
        self.render = render

    def message(self, kind: str, go: str) -> str:
        if self.struct is not None or self.stack:
            where = f"{self.struct or ''}.{'.'.join(self.stack)}"
            return f"json: cannot unmarshal {kind} into Go struct field {where} of type {go}"
        return f"json: cannot unmarshal {kind} into Go value of type {go}"

    def save(self, kind: str, go: str) -> None:
        if self.saved is None:
            self.saved = self.message(kind, go)


class GoType:
    """One Go type: ``go`` is its reflect.Type.String(); ``nullable`` when JSON
    null sets it to nil (pointers, slices, maps, interfaces)."""

    go = "?"
    nullable = False

    def decode(self, v: Any, st: DecodeState) -> Any:
        raise NotImplementedError

    def null(self) -> Any:
        return None if self.nullable else OMIT


class Bool(GoType):
    go = "bool"

    def decode(self, v: Any, st: DecodeState) -> Any:
        if isinstance(v, bool):
            return v
        st.save(kind_of(v), self.go)
        return OMIT


class Int(GoType):
    def __init__(self, go: str = "int64", base: str | None = None) -> None:
        self.go = go
        self.lo, self.hi = INT_RANGES[base or go]

    def decode(self, v: Any, st: DecodeState) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            st.save(kind_of(v), self.go)
            return OMIT
        if isinstance(v, float) or not self.lo <= v <= self.hi:
            st.save("number " + number_text(v), self.go)
            return OMIT
        return v


class Str(GoType):
    def __init__(self, go: str = "string") -> None:
        self.go = go

    def decode(self, v: Any, st: DecodeState) -> Any:
        if isinstance(v, str):
            return clean_str(v)
        st.save(kind_of(v), self.go)
        return OMIT


class AnyValue(GoType):
    go = "interface {}"
    nullable = True

    def decode(self, v: Any, st: DecodeState) -> Any:
        return plain(v)


class Slice(GoType):
    nullable = True

    def __init__(self, elem: GoType, go: str | None = None) -> None:
        self.elem = elem
        self.go = go or "[]" + elem.go

    def decode(self, v: Any, st: DecodeState) -> Any:
        if not isinstance(v, list):
            st.save(kind_of(v), self.go)
            return OMIT
        out = []
        for item in v:
            value = self.elem.null() if item is None else self.elem.decode(item, st)
            out.append(zero(self.elem) if value is OMIT else value)
        return out


class Array(GoType):
    """A Go array ([2]uint): extra elements are dropped, missing ones zero."""

    def __init__(self, elem: GoType, n: int) -> None:
        self.elem, self.n = elem, n
        self.go = f"[{n}]{elem.go}"

    def decode(self, v: Any, st: DecodeState) -> Any:
        if not isinstance(v, list):
            st.save(kind_of(v), self.go)
            return OMIT
        out = []
        for item in v[:self.n]:
            value = OMIT if item is None else self.elem.decode(item, st)
            out.append(zero(self.elem) if value is OMIT else value)
        return out + [zero(self.elem)] * (self.n - len(out))


class Ptr(GoType):
    """*T: null is nil; errors name T (Go reports the pointed-to type)."""

    nullable = True

    def __init__(self, elem: GoType) -> None:
        self.elem = elem
        self.go = elem.go

    def decode(self, v: Any, st: DecodeState) -> Any:
        return self.elem.decode(v, st)


class Map(GoType):
    nullable = True

    def __init__(self, elem: GoType, go: str | None = None) -> None:
        self.elem = elem
        self.go = go or "map[string]" + elem.go

    def decode(self, v: Any, st: DecodeState) -> Any:
        if not isinstance(v, dict):
            st.save(kind_of(v), self.go)
            return OMIT
        out = {}
        for key, item in v.items():
            value = self.elem.null() if item is None else self.elem.decode(item, st)
            out[clean_str(key)] = zero(self.elem) if value is OMIT else value
        return out


class EmptyStruct(GoType):
    go = "struct {}"

    def decode(self, v: Any, st: DecodeState) -> Any:
        if isinstance(v, dict):
            return {}
        st.save(kind_of(v), self.go)
        return OMIT


class Struct(GoType):
    """A Go struct.  ``name``: its type name in error paths; ``fields``: (json
    name, type) pairs, or ("*", Struct) for an embedded struct, whose fields
    are promoted (and named with the embedded struct's type name in error
    paths, as Go 1.24 does)."""

    def __init__(self, name: str, go: str, fields: list[tuple[str, GoType]]) -> None:
        self.name, self.go = name, go
        self.fields: dict[str, tuple[GoType, list[str]]] = {}
        for json_name, typ in fields:
            if json_name == "*":
                assert isinstance(typ, Struct)
                for inner, (t, path) in typ.fields.items():
                    self.fields.setdefault(inner, (t, [typ.name] + path))
            else:
                self.fields[json_name] = (typ, [])
        self.folded: dict[str, str] = {}
        for json_name in self.fields:
            self.folded.setdefault(_fold(json_name), json_name)

    def field(self, key: str) -> str | None:
        if key in self.fields:
            return key
        return self.folded.get(_fold(key))

    def decode(self, v: Any, st: DecodeState) -> Any:
        if not isinstance(v, dict):
            st.save(kind_of(v), self.go)
            return OMIT
        out: dict[str, Any] = {}
        for key, item in v.items():
            name = (key if key in self.fields else None) if st.render else self.field(key)
            if name is None:
                if st.render and self.field(key) is None:
                    # (a case variant of a known field would reach it in Go's decoder)
                    out[key] = plain(item)
                continue  # Go ignores unknown fields
            typ, path = self.fields[name]
            saved_struct, depth = st.struct, len(st.stack)
            st.struct = self.name
            st.stack.extend(path)
            st.stack.append(name)
            try:
                value = typ.null() if item is None else typ.decode(item, st)
            except Fatal:
                if not st.render:
                    raise
                value = OMIT
            st.struct = saved_struct
            del st.stack[depth:]
            if value is not OMIT:
                out[name] = _merge(out[name], value, typ) if name in out else value
        return out


def _struct_of(t: GoType) -> Struct | None:
    inner = t.elem if isinstance(t, Ptr) else t
    return inner if isinstance(inner, Struct) else None


def _merge(old: Any, new: Any, t: GoType) -> Any:
    """A struct field met again (under another case of its name): Go decodes
    the second object into the struct the first one filled."""
    struct = _struct_of(t)
    if struct is None or not isinstance(old, dict) or not isinstance(new, dict):
        return new
    out = dict(old)
    for key, value in new.items():
        sub = struct.fields.get(key)
        out[key] = _merge(out[key], value, sub[0]) if sub is not None and key in out else value
    return out


_FOLD_NON_ASCII = {"\u017f": "S", "\u212a": "K"}


def _fold(name: str) -> str:
    """Go's foldName as far as ASCII field names can tell: ASCII letters
    upper-cased, and the two non-ASCII runes whose fold set holds an ASCII
    letter (the long s, the Kelvin sign) taken as that letter."""
    if name.isascii():
        return name.upper()
    return "".join(c.upper() if c.isascii() else _FOLD_NON_ASCII.get(c, c) for c in name)


def zero(t: GoType) -> Any:
    """Go's zero value of ``t`` (a struct's as {}: its fields left out)."""
    if isinstance(t, Bool):
        return False
    if isinstance(t, Int):
        return 0
    if isinstance(t, Str):
        return ""
    if isinstance(t, Array):
        return [zero(t.elem)] * t.n
    if isinstance(t, (Struct, EmptyStruct)):
        return {}
    return None


def complete(value: Any, t: GoType) -> Any:
    """A decoded value with every struct field present, the missing ones at
    their zero value: the Go value as json.Marshal shows it (no omitempty)."""
    if isinstance(t, Ptr):
        return None if value is None else complete(value, t.elem)
    if isinstance(t, Struct):
        have = value if isinstance(value, dict) else {}
        return {name: complete(have[name] if name in have else zero(sub), sub)
                for name, (sub, _) in t.fields.items()}
    if isinstance(t, (Slice, Array)) and isinstance(value, list):
        return [complete(item, t.elem) for item in value]
    if isinstance(t, Map) and isinstance(value, dict):
        return {key: complete(item, t.elem) for key, item in value.items()}
    return value


def decode(value: Any, t: GoType) -> Any:
    """A parsed JSON value decoded into ``t`` as Go's Unmarshal decodes it:
    OMIT when it leaves the value untouched, GoJSONError("json: cannot
    unmarshal ...") for the first type error, or a Fatal error's words."""
    st = DecodeState()
    try:
        out = t.null() if value is None else t.decode(value, st)
    except Fatal as e:
        raise GoJSONError(str(e)) from None
    if st.saved is not None:
        raise GoJSONError(st.saved)
    return out


def render(value: Any, t: GoType) -> Any:
    """A stored value as a Go client can decode it into ``t``: every field the
    Go type declares holds a value of its type, or is left out (a list or map
    entry of the wrong type becomes its zero value); other fields pass as
    they are.  Never raises: what does not fit at all is {}."""
    st = DecodeState(render=True)
    try:
        out = t.decode(value, st)
    except Fatal:
        return {}
    return {} if out is OMIT else out
