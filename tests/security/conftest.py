"""tests/security: the attacks of issue 13 -- on the API, on the HTTP layer,
on the daemon -- as tests against the private pyboxd of tests/support (its
fixtures, imported: one daemon per test session, leak checks at the end)."""

from support import fixtures
from support.pyboxd import Pyboxd  # noqa: F401
from support.unixhttp import api  # noqa: F401

# the shared fixtures, made this directory's (pytest collects a conftest's names)
pyboxd = fixtures.pyboxd
names = fixtures.names
images_made = fixtures.images_made
dockerpy = fixtures.dockerpy
no_traceback = fixtures.no_traceback
