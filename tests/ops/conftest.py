"""Fixtures for the operation tests (helpers are in spoolgen.py)."""
from __future__ import annotations

import sys

import pytest

from ops.spoolgen import build_multifile_reader
from queuetool.spools import READER_MODULES


@pytest.fixture
def multifile_reader(monkeypatch):
    module = build_multifile_reader()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(READER_MODULES, "multifile", module.__name__)
    return module
