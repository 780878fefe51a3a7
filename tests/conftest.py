"""Shared test configuration: markers by what a test needs, and skips with a
clear reason where the machine cannot provide it."""

import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
SRC = os.path.join(ROOT, "src")
# tests/ itself: the shared helpers (``import support``) and the directories that
# import each other's (``from engine.conftest import ...``), whatever pytest's
# --import-mode (prepend puts tests/ here too: it has no __init__.py)
for path in (SRC, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)


def pytest_collection_modifyitems(config, items):
    is_root = os.geteuid() == 0
    skip_root = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for item in items:
        if "root" in item.keywords and not is_root:
            item.add_marker(skip_root)
