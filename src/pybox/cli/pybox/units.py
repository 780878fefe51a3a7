"""Values as the docker CLI parses and prints them (go-units, Go's time and fmt).

Parsing: sizes (``64m`` = 67108864: binary multiples, docker's RAMInBytes),
durations (Go's ``1m30s``), CPUs (``1.5`` -> 1500000000 NanoCpus), timestamps for
``--since``/``--until``.  Printing: ``1.99MB`` (decimal multiples, 3 significant
digits), ``About a minute``, Go's ``%v`` of a float.  Errors are ValueError with
docker's wording, which the flag parser wraps as ``invalid argument ...``.
"""

from datetime import UTC

from pybox.engine.timefmt import human_duration  # noqa: F401 (one copy, the engine's)

_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def ram_in_bytes(text):
    """go-units RAMInBytes: ``512``, ``64m``, ``1.5g``, ``10KiB``, ``2 MB``."""
    text = str(text)
    sep = max(text.rfind(c) for c in "0123456789. ")
    if sep < 0:
        raise ValueError(f"invalid size: '{text}'")
    if text[sep] == " ":
        num, suffix = text[:sep], text[sep + 1:]
    else:
        num, suffix = text[:sep + 1], text[sep + 1:]
    try:
        size = float(num)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{num}": invalid syntax') from None
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    low = suffix.lower()
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{low}'")
    if low[0] == "b":
        if len(low) > 1:
            raise ValueError(f"invalid suffix: '{low}'")
        return int(size)
    if low[0] not in _BINARY:
        raise ValueError(f"invalid suffix: '{low}'")
    if (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
        raise ValueError(f"invalid suffix: '{low}'")
    return int(size * _BINARY[low[0]])


def mem_swap_bytes(text):
    """--memory-swap: ``-1`` is 'unlimited' and passed as is."""
    return -1 if str(text) == "-1" else ram_in_bytes(text)


def nano_cpus(text):
    """``--cpus 1.5`` -> 1500000000; more than 9 decimals is 'too precise'."""
    text = str(text).strip()
    negative = text.startswith("-")
    body = text[1:] if negative else text
    whole, _, frac = body.partition(".")
    if not (whole or frac) or not (whole or "0").isdigit() or (frac and not frac.isdigit()):
        raise ValueError(f"failed to parse {text} as a rational number")
    frac = frac.rstrip("0")
    if len(frac) > 9:
        raise ValueError("value is too precise")
    value = int(whole or "0") * 10**9 + int((frac or "0").ljust(9, "0"))
    return -value if negative else value


_DURATION_UNITS = {"ns": 1, "us": 1000, "µs": 1000, "μs": 1000, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}


def go_duration(text):
    """Go's time.ParseDuration -> nanoseconds: ``1h2m3.5s``, ``100ms``, ``0``."""
    s = str(text)
    orig = s
    if s in ("0", "+0", "-0"):
        return 0
    negative = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    if not s:
        raise ValueError(f'time: invalid duration "{orig}"')
    total = 0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        if i == 0:
            raise ValueError(f'time: invalid duration "{orig}"')
        number = s[:i]
        s = s[i:]
        j = 0
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        unit = s[:j]
        s = s[j:]
        if not unit:
            raise ValueError(f'time: missing unit in duration "{orig}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{orig}"')
        whole, _, frac = number.partition(".")
        if (whole and not whole.isdigit()) or (frac and not frac.isdigit()) or number == ".":
            raise ValueError(f'time: invalid duration "{orig}"')
        scale = _DURATION_UNITS[unit]
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
    return -total if negative else total


def _go_g(value, precision) -> str:
    """fmt's %.<precision>g (Python's %g matches it for these magnitudes)."""
    return "%.*g" % (precision, value)


def human_size(size, precision: int=3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, ``1.99MB``, ``0B``."""
    size = float(size)
    i = 0
    while size >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        i += 1
    return f"{_go_g(size, precision)}{_DECIMAL_UNITS[i]}"


def bytes_size(size) -> str:
    """go-units BytesSize: binary units, ``1.5GiB`` (used by ``info``)."""
    size = float(size)
    i = 0
    while size >= 1024.0 and i < len(_BINARY_UNITS) - 1:
        size /= 1024.0
        i += 1
    return f"{_go_g(size, 4)}{_BINARY_UNITS[i]}"


def go_float(value):
    """Go's ``%v`` of a float64: strconv's shortest ``%g``, so an exponent from
    1e+06 up and below 1e-04 (``67108864.0`` prints ``6.7108864e+07``)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    text = repr(float(value))
    mantissa, _, exp = text.partition("e")
    if exp:
        exponent = int(exp)
        digits = mantissa.replace(".", "").replace("-", "").lstrip("0") or "0"
        point = mantissa.lstrip("-").find(".")
        exponent += (point if point >= 0 else len(mantissa.lstrip("-"))) - 1
    else:
        sign_less = mantissa.lstrip("-")
        whole, _, frac = sign_less.partition(".")
        frac = frac.rstrip("0")
        if whole.strip("0"):
            exponent = len(whole.lstrip("0")) - 1
            digits = (whole.lstrip("0") + frac).rstrip("0") or "0"
        else:
            stripped = frac.lstrip("0")
            exponent = -(len(frac) - len(stripped)) - 1
            digits = stripped.rstrip("0")
    negative = value < 0
    if exponent < -4 or exponent >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        out = f"{mant}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    else:
        if exponent >= 0:
            if len(digits) <= exponent + 1:
                out = digits + "0" * (exponent + 1 - len(digits))
            else:
                out = digits[:exponent + 1] + "." + digits[exponent + 1:]
        else:
            out = "0." + "0" * (-exponent - 1) + digits
    return "-" + out if negative else out


def timestamp_param(value, now=None):
    """docker's GetTimestamp for --since/--until: a Go duration (relative to now),
    a unix time (``1700000000`` or ``1700000000.5``) passed as is, or an RFC 3339
    date/time -> ``seconds.nanoseconds``."""
    import time
    now = time.time() if now is None else now
    text = str(value)
    try:
        ns = go_duration(text)
    except ValueError:
        ns = None
    if ns is not None and text not in ("0",):
        t = now - ns / 1e9
        seconds = int(t)
        return f"{seconds}.{int(round((t - seconds) * 1e9)):09d}"
    whole, _, frac = text.partition(".")
    if whole.isdigit() and (not frac or frac.isdigit()):
        return text
    from datetime import datetime
    candidate = text.replace("Z", "+00:00")
    for fmt in (None, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            parsed = (datetime.fromisoformat(candidate) if fmt is None
                      else datetime.strptime(candidate, fmt))
            break
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValueError(f"failed to parse value as time or duration: \"{text}\"")
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    t = parsed.astimezone(UTC).timestamp()
    seconds = int(t)
    return f"{seconds}.{int(round((t - seconds) * 1e9)):09d}"


def parse_rfc3339(text):
    """RFC 3339 (nanoseconds, ``Z``) -> unix seconds as a float; 0 for Go's zero
    time (``0001-01-01T00:00:00Z``)."""
    if not text or text.startswith("0001-01-01"):
        return 0.0
    from datetime import datetime
    main, _, frac_zone = text.partition(".")
    frac = ""
    zone = ""
    if frac_zone:
        k = 0
        while k < len(frac_zone) and frac_zone[k].isdigit():
            k += 1
        frac, zone = frac_zone[:k], frac_zone[k:]
    else:
        for sep in ("Z", "+", "-"):
            idx = main.find(sep, 11)
            if idx >= 0:
                main, zone = main[:idx], main[idx:]
                break
    zone = "+00:00" if zone in ("Z", "") else zone
    base = datetime.fromisoformat(main + zone).timestamp()
    return base + (int(frac) / 10 ** len(frac) if frac else 0.0)
