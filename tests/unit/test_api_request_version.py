"""Request.api_at_least: the one reading of a request's /vX.Y prefix that
handlers use to answer as dockerd answers that API version."""

import pytest

from pybox.api.server import Request

pytestmark = pytest.mark.unit


def request(version):
    req = Request.__new__(Request)  # only the parsed version matters here
    req.version = version
    return req


@pytest.mark.parametrize("version, wanted, at_least", [
    (None, (1, 44), True),     # no prefix: ours, the newest
    ("1.44", (1, 44), True),
    ("1.43", (1, 44), False),
    ("1.41", (1, 41), True),
    ("1.40", (1, 41), False),
    ("1.9", (1, 28), False),   # numbers, not text: 1.9 is older than 1.28
    ("1.28", (1, 9), True),
    ("2", (1, 44), True),
    ("1e3", (1, 44), True),    # not X.Y numbers (the router refuses these first)
])
def test_api_at_least(version, wanted, at_least):
    assert request(version).api_at_least(wanted) is at_least
