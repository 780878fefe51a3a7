"""pybox.formats: each of docker's value formats accepts and refuses what
docker's own parser does (go-units, Go's time and strconv, moby's timetypes)."""

import os
import subprocess
import sys
import time

import pytest

from pybox.formats import durations, registryauth, sizes, times

pytestmark = pytest.mark.unit


# -- sizes -------------------------------------------------------------------------
@pytest.mark.parametrize("text,value", [
    ("0", 0), ("100", 100), ("1b", 1), ("1B", 1), ("64m", 64 << 20), ("64M", 64 << 20),
    ("1.5g", 1610612736), ("10KiB", 10240), ("10kib", 10240), ("2 MB", 2 << 20),
    ("2mb", 2 << 20), ("1t", 1 << 40), ("1p", 1 << 50), ("1e3", 1000), ("1.", 1),
    (".5k", 512), ("32 ", 32),
])
def test_ram_in_bytes_accepts(text, value):
    assert sizes.ram_in_bytes(text) == value


@pytest.mark.parametrize("text,message", [
    ("", "invalid size: ''"), ("abc", "invalid size: 'abc'"), ("-1", "invalid size: '-1'"),
    ("-5m", "invalid size: '-5m'"), ("12x", "invalid suffix: 'x'"), ("1kx", "invalid suffix: 'kx'"),
    ("1bb", "invalid suffix: 'bb'"), ("1kbb", "invalid suffix: 'kbb'"),
    ("1KiBB", "invalid suffix: 'KiBB'"),  # too long: go-units prints it before lower-casing
    ("1mi", "invalid suffix: 'mi'"), ("1e", "invalid suffix: 'e'"),
    ("1.5.5", 'strconv.ParseFloat: parsing "1.5.5": invalid syntax'),
    ("1_000", 'strconv.ParseFloat: parsing "1_000": invalid syntax'),
    ("  1k", 'strconv.ParseFloat: parsing "  1": invalid syntax'),
    ("1e400", 'strconv.ParseFloat: parsing "1e400": value out of range'),
])
def test_ram_in_bytes_refuses(text, message):
    with pytest.raises(ValueError) as err:
        sizes.ram_in_bytes(text)
    assert str(err.value) == message


def test_from_human_size_is_decimal():
    assert sizes.from_human_size("64m") == 64_000_000
    assert sizes.from_human_size("1.5KB") == 1500 and sizes.from_human_size("1kib") == 1000
    assert sizes.from_human_size("32") == 32
    with pytest.raises(ValueError, match="invalid suffix: 'x'"):
        sizes.from_human_size("1x")


@pytest.mark.parametrize("size,precision,text", [
    (0, 4, "0B"), (999, 4, "999B"), (1000, 4, "1kB"), (1234567, 4, "1.235MB"),
    (1985512, 3, "1.99MB"), (123456789, 3, "123MB"), (5 * 10**9, 3, "5GB"), (10**25, 4, "10YB"),
])
def test_human_size(size, precision, text):
    assert sizes.human_size(size, precision) == text


@pytest.mark.parametrize("size,text", [(0, "0B"), (1023, "1023B"), (1024, "1KiB"),
                                       (1536 << 20, "1.5GiB"), (123456789, "117.7MiB")])
def test_bytes_size(size, text):
    assert sizes.bytes_size(size) == text


# -- durations ---------------------------------------------------------------------
@pytest.mark.parametrize("text,ns", [
    ("0", 0), ("-0", 0), ("1m30s", 90 * 10**9), ("100ms", 10**8), ("1.5h", 5400 * 10**9),
    ("-2s", -2 * 10**9), ("+5s", 5 * 10**9), ("1h2m3.5s", 3723500 * 10**6), ("10us", 10**4),
    ("10µs", 10**4), ("3ns", 3), (".5s", 5 * 10**8), ("1.s", 10**9),
])
def test_go_duration_accepts(text, ns):
    assert durations.go_duration(text) == ns


@pytest.mark.parametrize("text,message", [
    ("5", 'time: missing unit in duration "5"'), ("", 'time: invalid duration ""'),
    ("-", 'time: invalid duration "-"'), ("s", 'time: invalid duration "s"'),
    ("1x", 'time: unknown unit "x" in duration "1x"'), ("1.2.3s", 'time: invalid duration "1.2.3s"'),
    (".s", 'time: invalid duration ".s"'), ("1 s", 'time: unknown unit " s" in duration "1 s"'),
    ("10000000000h", 'time: invalid duration "10000000000h"'),
])
def test_go_duration_refuses(text, message):
    with pytest.raises(ValueError) as err:
        durations.go_duration(text)
    assert str(err.value) == message


@pytest.mark.parametrize("seconds,text", [
    (0.5, "Less than a second"), (1, "1 second"), (7, "7 seconds"), (75, "About a minute"),
    (600, "10 minutes"), (3600, "About an hour"), (3600 * 30, "30 hours"),
    (86400 * 3, "3 days"), (86400 * 20, "2 weeks"), (86400 * 90, "3 months"),
    (86400 * 800, "2 years"),
])
def test_human_duration(seconds, text):
    assert durations.human_duration(seconds) == text


# -- timestamps --------------------------------------------------------------------
def test_rfc3339_writers():
    ns = 1704164645 * 10**9 + 120_000_000
    assert times.rfc3339_nano(ns) == "2024-01-02T03:04:05.12Z"
    assert times.rfc3339_nano(1704164645 * 10**9) == "2024-01-02T03:04:05Z"
    assert times.rfc3339_nano_fixed(ns) == "2024-01-02T03:04:05.120000000Z"
    assert times.rfc3339_nano_fixed(1704164645 * 10**9) == "2024-01-02T03:04:05.000000000Z"
    now = times.rfc3339_nano()
    assert now.endswith("Z") and now[4] == "-" and now[10] == "T"


def in_zone(zone, code):
    """Run ``code`` (printing its result) under TZ=zone: local-time formats."""
    env = dict(os.environ, TZ=zone, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", "from pybox.formats import times\n" + code],
                          env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_local_time_writers():
    assert in_zone("UTC", "print(times.rfc3339_local(1704164645))") == "2024-01-02T03:04:05Z"
    assert in_zone("Europe/Paris", "print(times.rfc3339_local(1704164645))") == \
        "2024-01-02T04:04:05+01:00"
    assert in_zone("UTC", "print(times.rfc3339_nano_fixed(1704164645 * 10**9 + 5, local=True))") \
        == "2024-01-02T03:04:05.000000005Z"
    assert in_zone("Europe/Paris", "print(times.go_time_string(1704164645))") == \
        "2024-01-02 04:04:05 +0100 CET"


@pytest.mark.parametrize("text,seconds", [
    ("", 0.0), (None, 0.0), ("0001-01-01T00:00:00Z", 0.0),
    ("2024-01-02T03:04:05Z", 1704164645.0), ("2024-01-02T03:04:05z", 1704164645.0),
    ("2024-01-02T03:04:05.5+01:00", 1704164645 - 3600 + 0.5),
    ("2024-01-02T03:04:05-0130", 1704164645 + 5400), ("2024-01-02T03:04:05", 1704164645.0),
    ("2024-02-29T00:00:00Z", 1709164800.0), ("1969-12-31T23:59:59Z", -1.0),
    ("2024-01-02T03:04:05.123456789123Z", 1704164645.123456789),
])
def test_parse_rfc3339_accepts(text, seconds):
    assert times.parse_rfc3339(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("text", ["garbage", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z",
                                  "2024-01-02T24:00:00Z", "2024-01-02T03:04:05.Z",
                                  "2024-01-02T03:04:05Zjunk", "2024/01/02T03:04:05Z",
                                  "2024-01-02T03:04:05+1"])
def test_parse_rfc3339_refuses(text):
    with pytest.raises(ValueError):
        times.parse_rfc3339(text)


def test_get_timestamp_the_clients_since_and_until():
    now = 1_000_000_000.0
    assert times.get_timestamp("10m", now) == "999999400.000000000"
    assert times.get_timestamp("1h30m", now) == "999994600.000000000"
    assert times.get_timestamp("1700000000", now) == "1700000000"
    assert times.get_timestamp("1700000000.5", now) == "1700000000.5"
    assert times.get_timestamp("2024-01-02T03:04:05Z", now) == "1704164645.000000000"
    assert times.get_timestamp("2024-01-02T03:04:05.25+01:00", now) == "1704161045.250000000"
    assert in_zone("UTC", "print(times.get_timestamp('2024-01-02'))") == "1704153600.000000000"
    assert in_zone("Europe/Paris", "print(times.get_timestamp('2024-01-02T03:04'))") == \
        "1704161040.000000000"
    for bad in ("bad", "1.2.3", "2024-01-02T03"):
        with pytest.raises(ValueError, match=f'failed to parse value as time or duration: "{bad}"'):
            times.get_timestamp(bad, now)


def test_parse_timestamp_the_daemons_since_and_until():
    now = 1_000_000_000.0
    assert times.parse_timestamp(None) == 0.0 and times.parse_timestamp("0") == 0.0
    assert times.parse_timestamp("1700000000.5") == 1700000000.5
    assert times.parse_timestamp("2024-01-02T03:04:05Z") == 1704164645.0
    assert times.parse_timestamp("10m", now) == now - 600
    assert times.parse_timestamp("1h30m", now) == now - 5400
    assert abs(times.parse_timestamp("1s") - (time.time() - 1)) < 60
    for bad in ("inf", "nan", "1e400", "9223372036854775808", "2024-13-01T00:00:00Z", "junk"):
        with pytest.raises(ValueError, match="failed to parse value as time or duration"):
            times.parse_timestamp(bad, now)


# -- registry credentials ----------------------------------------------------------
def test_registry_names_and_header():
    for hub in ("", "docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"):
        assert registryauth.registry_domain(hub) == "docker.io"
        assert registryauth.config_key(registryauth.registry_domain(hub)) == \
            "https://index.docker.io/v1/"
    assert registryauth.registry_domain("http://Host:5000/v2/") == "host:5000"
    assert registryauth.host_of("https://host:5000/v1/") == "host:5000"
    assert registryauth.encode_registry_auth(registryauth.ANONYMOUS) == "e30="
    assert registryauth.encode_registry_auth(registryauth.Credentials("u", "p"), "h:1") == \
        "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InAiLCJzZXJ2ZXJhZGRyZXNzIjoiaDoxIn0="
    assert not registryauth.ANONYMOUS and registryauth.Credentials(identity_token="t")


# -- the floor stays a floor -------------------------------------------------------
@pytest.mark.parametrize("module", ["sizes", "durations", "times", "fastjson", "registryauth"])
def test_formats_import_only_the_standard_library(module):
    code = (f"import sys; import pybox.formats.{module}; "
            "print(sorted(m for m in sys.modules if m.startswith('pybox') "
            "and not m.startswith('pybox.formats') and m != 'pybox'))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
