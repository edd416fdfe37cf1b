"""Tests of bench/'s scripts, which are not a package: they import each other by name, as
``python bench/<script>.py`` puts bench/ first on ``sys.path``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    """``bench/<name>.py`` imported as its own script sees its siblings (bench/ on ``sys.path`` while it
    loads; removed after, so that ``bench/profile.py`` never shadows the standard library's ``profile``)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))
