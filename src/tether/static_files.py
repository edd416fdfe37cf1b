"""python-socketio's ``static_files``: URL paths answered with files, for :class:`tether.asgi.ASGIApp`.

The same mapping and lookup as python-engineio's ``engineio/static_files.py`` (``get_static_file``), which
python-socketio's ``ASGIApp`` uses. It is written again here because python-engineio is not a runtime
dependency of Tether (only of its tests), with two differences, both on the safe side:

- a request never reaches outside a mapped directory: a ``..`` segment (engineio refuses ``../`` only,
  so ``/static/..`` named the directory itself) or a path that resolves outside it (a symlink) is no match;
- an extension missing from engineio's table of eight gets :func:`mimetypes.guess_type`'s answer
  before engineio's ``application/octet-stream`` (``.svg`` is ``image/svg+xml``, not a download).
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Mapping

from .errors import ConfigError

__all__ = ["CONTENT_TYPES", "StaticFiles", "check_static_files", "get_static_file"]

StaticFiles = Mapping[str, "str | Mapping[str, str]"]
"""URL path -> filename, or -> ``{"filename": ..., "content_type": ...}``; a filename ending in ``/`` is
a directory served under that URL prefix; the key ``""`` names a directory's index file (default
``index.html``)."""

CONTENT_TYPES = {
    "css": "text/css",
    "gif": "image/gif",
    "html": "text/html",
    "jpg": "image/jpeg",
    "js": "application/javascript",
    "json": "application/json",
    "png": "image/png",
    "txt": "text/plain",
}
"""engineio's default content types by extension (``engineio.static_files.content_types``)."""


def check_static_files(static_files: StaticFiles) -> dict[str, str | Mapping[str, str]]:
    """A copy of ``static_files`` once its shape is right.

    Raises:
        ConfigError: not a mapping, a key that is not a str, or a value that is neither a filename nor a
            mapping with a str ``"filename"`` (and, if given, a str ``"content_type"``).
    """

    def bad(key: str, reason: str) -> ConfigError:
        return ConfigError("ASGIApp", key, reason)

    if not isinstance(static_files, Mapping):
        raise bad("static_files", f"a dict of URL path -> filename, not {type(static_files).__name__}")
    for url, entry in static_files.items():
        if not isinstance(url, str):
            raise bad("static_files", f"the URL path {url!r} is not a str")
        if isinstance(entry, str):
            continue
        if not (
            isinstance(entry, Mapping)
            and isinstance(entry.get("filename"), str)
            and isinstance(entry.get("content_type", ""), str)
        ):
            raise bad(
                f"static_files[{url!r}]",
                f"a filename or {{'filename': str, 'content_type': str}}, not {entry!r}",
            )
    return dict(static_files)


def get_static_file(path: str, static_files: StaticFiles) -> tuple[str, str] | None:
    """``(filename, content_type)`` for the URL ``path`` (ASGI's decoded ``scope["path"]``), or ``None``.

    The exact path first, then each shorter prefix (``/a/b/c`` tries ``/a/b``, ``/a/b/``, ``/a``...), as
    engineio's ``get_static_file``. The file may not exist: the caller checks. Relative filenames are
    relative to the working directory, as python-socketio's.
    """
    extra = ""
    entry = static_files.get(path)
    rest = path
    while entry is None and rest:
        rest, last = rest.rsplit("/", 1)
        extra = "/" + last + extra
        if rest:  # "" is the index name, not a URL path
            entry = static_files.get(rest)
        if entry is None:
            entry = static_files.get(rest + "/")
    if entry is None:
        return None
    if extra and any(part == ".." or "\\" in part or "\0" in part for part in extra.split("/")):
        return None
    if isinstance(entry, str):
        base, content_type = entry, None
    else:
        base, content_type = entry["filename"], entry.get("content_type")
    if base.endswith("/") and extra.startswith("/"):
        extra = extra[1:]
    filename = base + extra
    if filename.endswith("/"):
        index = static_files.get("", "index.html")
        if isinstance(index, str):
            filename += index
        else:
            filename += index["filename"]
            content_type = index.get("content_type", content_type)
    if extra:  # a file under a mapped directory: it must stay under it once links are resolved
        root = os.path.realpath(base)
        if os.path.commonpath([root, os.path.realpath(filename)]) != root:
            return None
    if content_type is None:
        ext = filename.rsplit(".", 1)[-1]
        content_type = (
            CONTENT_TYPES.get(ext) or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
    return filename, content_type
