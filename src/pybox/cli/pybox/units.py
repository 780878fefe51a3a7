"""Values only the docker CLI parses and prints (its opts and Go's fmt).

``--memory-swap`` (``-1`` or a RAMInBytes size), ``--cpus`` (``1.5`` ->
1500000000 NanoCpus), the tables' sizes (3 significant digits), Go's ``%v`` of
a float.  The formats client and daemon share (sizes, durations, timestamps)
are pybox.formats'.  Errors are ValueError with docker's wording, which the
flag parser wraps as ``invalid argument ...``.
"""

from pybox.formats.sizes import human_size as _human_size
from pybox.formats.sizes import ram_in_bytes


def human_size(size: float) -> str:
    """The docker CLI's tables: go-units HumanSizeWithPrecision(size, 3) (``1.99MB``)."""
    return _human_size(size, 3)


def mem_swap_bytes(text: str) -> int:
    """--memory-swap: ``-1`` is 'unlimited' and passed as is."""
    return -1 if str(text) == "-1" else ram_in_bytes(text)


def nano_cpus(text: str) -> int:
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


def go_float(value: float) -> str:
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
