"""Fixtures shared by the server tests that compare Tether with node socket.io 4.8."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .test_disconnect_reasons_vs_node import Target, node_reference


@pytest.fixture(scope="module")
def node() -> Iterator[Target]:
    """node tests/js/reference_server.mjs, one per test module."""
    with node_reference() as target:
        yield target
