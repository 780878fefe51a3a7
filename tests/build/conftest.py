"""tests/build: the Dockerfile corpus built by the private pyboxd and by a
private Debian dockerd's classic builder, compared (tests/build/compare.py).

The fixtures are the shared ones: tests/support's pyboxd (one per session,
leak-checked) and tests/engine's ``dockerd`` (its busybox imported from the
same tarball as pyboxd's), made this directory's by importing them."""

from engine.conftest import dockerd  # noqa: F401
from support import fixtures

pyboxd = fixtures.pyboxd
names = fixtures.names
images_made = fixtures.images_made
