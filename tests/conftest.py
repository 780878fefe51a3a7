"""Shared test configuration: markers by what a test needs, and skips with a
clear reason where the machine cannot provide it."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")
if SRC not in sys.path:
    sys.path.insert(0, SRC)


def pytest_collection_modifyitems(config, items):
    is_root = os.geteuid() == 0
    skip_root = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for item in items:
        if "root" in item.keywords and not is_root:
            item.add_marker(skip_root)
