"""Adapters that carry emits between workers (one host) and nodes (many hosts, via Redis)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Adapter

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Adapter", "make_adapter"]


def make_adapter(config: Config) -> Adapter:
    """The adapter ``[room] driver`` names: ``redis`` -> :class:`~.redis.RedisAdapter`, else in-process."""
    if config.room.driver == "redis-streams":
        from .streams import RedisStreamsAdapter

        return RedisStreamsAdapter.from_config(config)
    if config.room.driver == "redis":
        from .redis import RedisAdapter  # imported on demand: a one-node server never loads redis-py

        return RedisAdapter.from_config(config)
    from .memory import LocalAdapter

    return LocalAdapter()
