"""Reading the layers of a config: ``tether.toml``, then ``TETHER_*`` variables, then overrides.

Each layer is merged into plain per-section dicts, which :func:`build_sections` turns into the section
dataclasses of :mod:`tether.config.sections`, checking every key and the type of every value.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sections import SECRET_KEYS, SECTIONS

__all__ = ["DEFAULTS_SOURCE", "build_sections", "env_origin", "read_layers"]

DEFAULTS_SOURCE = "<defaults>"
"""What :attr:`Config.source <tether.config.Config.source>` says when no file was read."""

Raw = dict[str, dict[str, Any]]


def env_origin(env: Mapping[str, str], overrides: Mapping[str, Mapping[str, Any]], key: str) -> str | None:
    """The ``TETHER_*`` variable that set ``key`` (``"section.key"``); None when the file, a default or an
    override did.

    An operator told ``blue.toml: session.idle_timeout: expected float, got str '5m'`` looks for ``5m`` in
    ``blue.toml`` and does not find it: a config error about a key that a variable set names the variable.
    """
    section, _, name = key.partition(".")
    if not name or name in overrides.get(section, {}):
        return None
    var = f"TETHER_{section.upper()}_{name.upper()}"
    return var if var in env else None


def read_layers(
    path: str | os.PathLike[str] | None,
    env: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, Any]],
) -> tuple[Raw, str, str]:
    """The file's tables, then ``TETHER_*`` from ``env``, then ``overrides``, merged per section.

    Returns:
        ``(raw, source, base_dir)``: ``section -> {key: value}`` as written (not yet typed), the file's
        name (``<defaults>`` without one) and the folder relative paths are taken from.

    Raises:
        ConfigError: the file is missing, is not TOML, or has an unknown section or a non-table one.
    """
    raw: Raw = {}
    source = DEFAULTS_SOURCE
    base_dir = "."
    if path is not None:
        p = Path(path)
        source = str(p)
        base_dir = str(p.resolve().parent)
        try:
            with p.open("rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(source, "-", "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "-", f"not valid TOML: {exc}") from exc
        for section, values in data.items():
            if section not in SECTIONS:
                raise ConfigError(source, section, f"unknown section (known: {', '.join(SECTIONS)})")
            if not isinstance(values, dict):
                raise ConfigError(source, section, "must be a table")
            raw.setdefault(section, {}).update(values)
        for present in ("session", "admin"):
            if present in data:
                raw[present].setdefault("enabled", True)
    for name, value in env.items():
        if not name.startswith("TETHER_") or name.startswith("TETHER_TESTS_"):
            continue
        parts = name[len("TETHER_") :].lower().split("_", 1)
        if len(parts) != 2 or parts[0] not in SECTIONS:
            continue
        section, key = parts
        raw.setdefault(section, {})[key] = _parse_env_value(value, SECTIONS[section], key)
        # A section's key set by its variable is the section written in a file: [session] with its secret,
        # [admin] with its password hash. Under an ASGI server (Config.from_env) there may be no file at all.
        if (section, key) in (("session", "secret"), ("admin", "password")) and value:
            raw[section].setdefault("enabled", True)
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return raw, source, base_dir


def build_sections(source: str, raw: Raw) -> dict[str, Any]:
    """``section -> dataclass`` for every section, from the values in ``raw`` (defaults for the rest).

    Raises:
        ConfigError: an unknown key, or a value of the wrong type (a secret's value is never quoted).
    """
    return {
        section: _build_section(source, section, cls, raw.get(section, {}))
        for section, cls in SECTIONS.items()
    }


# What a switch variable may say besides TOML's true/false: the shell's habit (TETHER_DAEMON=1, as in
# docs/cli.md) and Starlette's config casts; anything else stays a type error naming the key.
_ENV_BOOLS = {"1": True, "yes": True, "on": True, "0": False, "no": False, "off": False}


def _parse_env_value(value: str, section_cls: type[Any], key: str) -> Any:
    hint = typing.get_type_hints(section_cls).get(key)
    if hint is bool and value.strip().lower() in _ENV_BOOLS:
        return _ENV_BOOLS[value.strip().lower()]
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value
    # A string setting is taken as written unless quoted: TETHER_API_KEY=1e5 is the key "1e5", not 100000.0
    # (nor "100000.0"), and a secret like 2024-01-01 or true must not fail to load with its value in the
    # error.
    if hint is str and not isinstance(parsed, str):
        return value
    return parsed


def _build_section(source: str, section: str, cls: type[Any], values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(source, f"{section}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
        try:
            kwargs[key] = _coerce(source, f"{section}.{key}", hints[key], value)
        except ConfigError:
            if (section, key) not in SECRET_KEYS:
                raise
            # The message would quote the value: for a secret, say what is wrong without it.
            raise ConfigError(
                source, f"{section}.{key}", f"expected str, got {type(value).__name__}"
            ) from None
    return cls(**kwargs)


def _coerce(source: str, key: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(source, key, f"expected a list of strings, got {value!r}")
    elif isinstance(hint, types.UnionType):  # pragma: no cover - no union fields today
        return value
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(source, key, f"expected {name}, got {type(value).__name__} {value!r}")
