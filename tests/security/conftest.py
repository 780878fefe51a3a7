"""tests/security: the attacks of issue 13 -- on the API, on the HTTP layer,
on the daemon -- as tests against the private pyboxd of tests/engine (its
fixtures, imported: one daemon per test session, leak checks at the end)."""

import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from engine.conftest import (  # noqa: E402,F401 - the shared fixtures, not copies
    Pyboxd,
    api,
    dockerpy,
    images_made,
    names,
    pyboxd,
)
