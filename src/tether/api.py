"""The HTTP API on the Tether port, for backends that do not talk to Redis (``[api] key`` turns it on).

Every route but the OpenAPI document needs ``Authorization: Bearer <key>``, the key being ``[api] key``
(or ``TETHER_API_KEY``); it is compared in constant time. No header: 401; a wrong key: 403; a body over
``[api] max_body`` bytes: 413 (and over ``[websocket] max_payload`` the HTTP layer answers 413 before
this module sees it). Errors are JSON ``{"error": "...", "status": n}``.

* ``POST /api/emit`` ``{"event", "data"?, "room" | "sid" | "user"?, "except"?, "namespace"?}``: no target
  means everyone; delivered on this node and, with the Redis adapter, on every other one.
* ``POST /api/sessions/{id}/touch`` and ``/end``: through the sessions feature (404 when it is off), on
  every node.
* ``GET /api/stats``: this node's counters and the adapter's; ``?cluster=1`` also counts the nodes.
* ``GET /api/openapi.json``: the OpenAPI 3.1 description of the above (no key needed: it holds no data).
"""

from __future__ import annotations

import hmac
import inspect
import time
from typing import TYPE_CHECKING, Any

import orjson

from .cluster.wire import RESERVED_EVENTS, SessionCommand, user_room
from .errors import RemoteProtocolError
from .protocol.socketio import check_depth

if TYPE_CHECKING:
    from .handler import Request
    from .server.server import Server

__all__ = ["HttpApi", "install", "openapi_document"]

Response = tuple[int, dict[str, str], bytes]

_JSON = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def install(server: Server) -> None:
    """Register the API routes on ``server``; nothing at all when ``[api] key`` is empty."""
    key = server.config.api.key
    if not key:
        return
    api = HttpApi(server, key)
    server.extensions["api"] = api
    server.add_http_route("POST", "/api/emit", api.emit)
    server.add_http_route("POST", "/api/sessions/*", api.session)
    server.add_http_route("GET", "/api/stats", api.stats)
    server.add_http_route("GET", "/api/openapi.json", api.openapi)


def _json(status: int, obj: Any) -> Response:
    return status, dict(_JSON), orjson.dumps(obj)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return status, {**_JSON, **(headers or {})}, orjson.dumps({"error": message, "status": status})


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


class HttpApi:
    """The route handlers; one per server."""

    def __init__(self, server: Server, key: str) -> None:
        self.server = server
        self._key = key.encode()
        self.max_body = server.config.api.max_body

    def _check(self, request: Request, body: bytes) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(_error(401, "missing bearer key", {"WWW-Authenticate": 'Bearer realm="tether"'}))
        if not hmac.compare_digest(token.strip().encode(), self._key):
            raise _Refused(_error(403, "wrong API key"))
        if len(body) > self.max_body:
            raise _Refused(_error(413, f"body of {len(body)} bytes exceeds [api] max_body={self.max_body}"))

    def _body(self, body: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _Refused(_error(400, f"body is not valid JSON: {exc}")) from None
        if not isinstance(obj, dict):
            raise _Refused(_error(400, "body must be a JSON object"))
        try:
            check_depth(body, obj, self.server.config.limits.max_depth)
        except RemoteProtocolError as exc:
            raise _Refused(_error(400, f"{exc} ([limits] max_depth)")) from None
        return obj

    # -- routes ---------------------------------------------------------------------------------------

    async def emit(self, request: Request, body: bytes) -> Response:
        try:
            self._check(request, body)
            rooms, except_rooms, namespace, event, args = _parse_emit(self._body(body))
        except _Refused as refused:
            return refused.response
        self.server.broadcast(namespace, event, args, rooms, except_rooms)
        return _json(200, {"ok": True, "namespace": namespace, "rooms": list(rooms)})

    async def session(self, request: Request, body: bytes) -> Response:
        try:
            self._check(request, body)
        except _Refused as refused:
            return refused.response
        rest = request.path[len("/api/sessions/") :]
        session_id, _, action = rest.rpartition("/")
        if not session_id or "/" in session_id or action not in ("touch", "end"):
            return _error(404, "expected /api/sessions/{id}/touch or /api/sessions/{id}/end")
        sessions = self.server.extensions.get("sessions")
        method = getattr(sessions, "touch" if action == "touch" else "end_session", None)
        if method is None:
            return _error(
                404, "the sessions feature is not enabled on this server ([session] in tether.toml)"
            )
        found = method(session_id)
        if inspect.isawaitable(found):
            found = await found
        adapter = self.server.adapter
        if adapter.remote:
            adapter.publish_session(SessionCommand(action, session_id))
        elif found is False:
            return _error(404, f"no session {session_id!r}")
        return _json(
            200, {"ok": True, "session": session_id, "action": action, "found_here": found is not False}
        )

    async def stats(self, request: Request, body: bytes) -> Response:
        try:
            self._check(request, body)
        except _Refused as refused:
            return refused.response
        server = self.server
        state = server.state
        node = {
            "uptime": round(time.time() - state.started_at, 3) if state.started_at else 0.0,
            "connections": server.connection_count,
            "sockets": state.sockets,
            "connections_total": state.connections_total,
            "events_in": state.events_in,
            "events_out": state.events_out,
            "handler_errors": state.handler_errors,
            "rejected": state.rejected,
            "protocol_errors": state.protocol_errors,
            "slow_consumers": state.slow_consumers,
            "disconnects": dict(state.disconnects),
            "namespaces": {name: len(ns.rooms) for name, ns in server.namespaces.items()},
        }
        out: dict[str, Any] = {"node": node, "adapter": server.adapter.stats()}
        if request.query.get("cluster") in ("1", "true"):
            out["cluster"] = {"nodes": await server.adapter.server_count()}
        return _json(200, out)

    async def openapi(self, request: Request, body: bytes) -> Response:
        return _json(200, openapi_document())


def _rooms(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise _Refused(_error(400, f'"{name}" must be a non-empty string or a list of them'))


def _parse_emit(obj: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], str, str, tuple[Any, ...]]:
    event = obj.get("event")
    if not isinstance(event, str) or not event:
        raise _Refused(_error(400, '"event" must be a non-empty string'))
    if event in RESERVED_EVENTS:
        raise _Refused(_error(400, f"{event!r} is a reserved event name"))
    unknown = set(obj) - {"event", "data", "room", "sid", "user", "except", "namespace"}
    if unknown:
        raise _Refused(_error(400, f"unknown fields: {', '.join(sorted(unknown))}"))
    targets = [k for k in ("room", "sid", "user") if k in obj]
    if len(targets) > 1:
        raise _Refused(_error(400, f"give one of room, sid, user (got {', '.join(targets)})"))
    rooms: tuple[str, ...] = ()
    if "room" in obj:
        rooms = _rooms(obj["room"], "room")
    elif "sid" in obj:
        rooms = _rooms(obj["sid"], "sid")
    elif "user" in obj:
        user = obj["user"]
        if isinstance(user, bool) or not isinstance(user, str | int) or user == "":
            raise _Refused(_error(400, '"user" must be a string or an integer'))
        rooms = (user_room(user),)
    except_rooms = _rooms(obj["except"], "except") if "except" in obj else ()
    namespace = obj.get("namespace", "/")
    if not isinstance(namespace, str) or not namespace.startswith("/"):
        raise _Refused(_error(400, '"namespace" must be a string starting with "/"'))
    args = (obj["data"],) if "data" in obj else ()
    return rooms, except_rooms, namespace, event, args


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API."""
    error = {"$ref": "#/components/schemas/Error"}
    errors = {
        "401": {"description": "No bearer key", "content": {"application/json": {"schema": error}}},
        "403": {"description": "Wrong key", "content": {"application/json": {"schema": error}}},
        "413": {
            "description": "Body over [api] max_body",
            "content": {"application/json": {"schema": error}},
        },
    }
    room_or_rooms = {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ]
    }
    ok = {"type": "object", "properties": {"ok": {"const": True}}, "required": ["ok"]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tether HTTP API",
            "version": "1",
            "description": "Push events to Tether clients and manage sessions from any backend.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/emit": {
                "post": {
                    "summary": "Emit an event to everyone, a room, a socket or a user, on every node",
                    "operationId": "emit",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Emit"}}},
                    },
                    "responses": {
                        "200": {"description": "Sent", "content": {"application/json": {"schema": ok}}},
                        "400": {
                            "description": "Invalid body",
                            "content": {"application/json": {"schema": error}},
                        },
                        **errors,
                    },
                }
            },
            "/api/sessions/{id}/{action}": {
                "post": {
                    "summary": "Touch (keep alive) or end a session on every node",
                    "operationId": "session",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "action",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": ["touch", "end"]},
                        },
                    ],
                    "responses": {
                        "200": {"description": "Done", "content": {"application/json": {"schema": ok}}},
                        "404": {
                            "description": "Sessions feature off, or (single node) no such session",
                            "content": {"application/json": {"schema": error}},
                        },
                        **errors,
                    },
                }
            },
            "/api/stats": {
                "get": {
                    "summary": "Counters of this node and of its cluster adapter",
                    "operationId": "stats",
                    "parameters": [
                        {"name": "cluster", "in": "query", "required": False, "schema": {"enum": ["0", "1"]}}
                    ],
                    "responses": {
                        "200": {
                            "description": "Stats",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        **{k: v for k, v in errors.items() if k != "413"},
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Emit": {
                    "type": "object",
                    "required": ["event"],
                    "additionalProperties": False,
                    "properties": {
                        "event": {"type": "string", "minLength": 1},
                        "data": {"description": "Any JSON value: the event's one argument; omitted: none"},
                        "room": room_or_rooms,
                        "sid": room_or_rooms,
                        "user": {"type": ["string", "integer"]},
                        "except": room_or_rooms,
                        "namespace": {"type": "string", "pattern": "^/", "default": "/"},
                    },
                    "not": {
                        "anyOf": [
                            {"required": ["room", "sid"]},
                            {"required": ["room", "user"]},
                            {"required": ["sid", "user"]},
                        ]
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error", "status"],
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                },
            },
        },
    }
