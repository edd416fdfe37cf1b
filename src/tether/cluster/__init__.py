"""Adapters that carry emits between workers (one host) and nodes (many hosts, via Redis)."""
