"""The sans-I/O core: Engine.IO v4 and Socket.IO v5 codecs, parsers and the per-client state machine.

Nothing in this package imports asyncio, sockets or redis: it turns bytes into events and events into
bytes, and the transports in :mod:`tether.server` move those bytes.
"""
