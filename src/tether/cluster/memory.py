"""The in-process adapter: a single worker needs no bus. Also the fake adapter in tests."""

from __future__ import annotations

from .base import Adapter

__all__ = ["LocalAdapter"]


class LocalAdapter(Adapter):
    """Delivers nothing beyond this process (the server already delivered locally)."""
