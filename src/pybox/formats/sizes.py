"""Byte counts as docker parses and prints them (github.com/docker/go-units).

Two parsing rules, both docker's, told apart by name (not two copies of one):

* ``ram_in_bytes``: RAMInBytes, binary multiples (``64m`` = 64 MiB = 67108864);
  what ``--memory``, ``--shm-size``, log-opt ``max-size`` and runc's ``update``
  take.
* ``from_human_size``: FromHumanSize, decimal multiples (``64m`` = 64000000).

And two printers: ``human_size`` (HumanSizeWithPrecision: ``1.99MB``, decimal)
and ``bytes_size`` (BytesSize: ``1.5GiB``, binary).
"""

_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
_DIGITS = "0123456789"


def go_parse_float(text: str) -> float:
    """strconv.ParseFloat for decimal numbers (``12``, ``1.5``, ``.5``, ``1e3``,
    ``-2``); anything else -- Python-only forms such as ``1_000``, `` 1`` or
    ``inf`` included -- is strconv's ``invalid syntax``."""
    body = text[1:] if text[:1] in "+-" else text
    mantissa, e, exponent = body.lower().partition("e")
    whole, _, frac = mantissa.partition(".")
    ok = bool(whole or frac) and all(c in _DIGITS for c in whole + frac)
    if e:
        digits = exponent[1:] if exponent[:1] in "+-" else exponent
        ok = ok and bool(digits) and all(c in _DIGITS for c in digits)
    if not ok:
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": invalid syntax')
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f'strconv.ParseFloat: parsing "{text}": value out of range')
    return value


def _parse_size(text: str, multiples: dict[str, int]) -> int:
    """go-units parseSize: a number, an optional space, an optional suffix
    (``k``, ``kb``, ``kib`` ... case-insensitive; ``b`` alone is bytes)."""
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep < 0:
        raise ValueError(f"invalid size: '{text}'")
    if text[sep] == " ":
        number, suffix = text[:sep], text[sep + 1:]
    else:
        number, suffix = text[:sep + 1], text[sep + 1:]
    size = go_parse_float(number)
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    low = suffix.lower()
    if low[0] == "b":
        if len(low) > 1:
            raise ValueError(f"invalid suffix: '{low}'")
        return int(size)
    if low[0] not in multiples or (len(low) == 2 and low[1] != "b") \
            or (len(low) == 3 and low[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{low}'")
    return int(size * multiples[low[0]])


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: ``512``, ``64m``, ``1.5g``, ``10KiB``, ``2 MB`` with
    binary multiples (``1k`` = 1024).  ValueError with go-units' words."""
    return _parse_size(text, _BINARY)


def from_human_size(text: str) -> int:
    """go-units FromHumanSize: the same syntax with decimal multiples (``1k`` = 1000)."""
    return _parse_size(text, _DECIMAL)


def _go_g(value: float, precision: int) -> str:
    """fmt's %.<precision>g (Python's %g matches it for these magnitudes)."""
    return "%.*g" % (precision, value)  # noqa: UP031 -- %g with a star precision has no f-string form


def human_size(size: float, precision: int = 4) -> str:
    """go-units HumanSizeWithPrecision: decimal units, ``1.99MB``, ``0B``;
    ``precision`` significant digits (HumanSize's 4 by default; the docker CLI's
    tables use 3)."""
    value = float(size)
    i = 0
    while value >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        value /= 1000.0
        i += 1
    return f"{_go_g(value, precision)}{_DECIMAL_UNITS[i]}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, four significant digits, ``1.5GiB``."""
    value = float(size)
    i = 0
    while value >= 1024.0 and i < len(_BINARY_UNITS) - 1:
        value /= 1024.0
        i += 1
    return f"{_go_g(value, 4)}{_BINARY_UNITS[i]}"
