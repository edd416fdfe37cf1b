"""Fixtures shared by the test tree."""

from redis_fixtures import cluster, redis_server  # noqa: F401 - fixtures: a real redis-server and two nodes
