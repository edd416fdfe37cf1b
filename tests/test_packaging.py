"""pyproject.toml asks only for extras that the installed packages provide.

pip installs a requirement whose extra the package does not declare without that extra and only warns
(`python-socketio 5.18.1 does not provide the extra 'asyncio_client'` on every `make test` of a fresh
clone): the extra's dependencies are then silently missing. Each extra must be spelled as the package's
metadata spells it (`Provides-Extra`, normalized by PEP 685: `asyncio-client`).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
_WITH_EXTRAS = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*\[([^\]]*)\]")


def _requirements() -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    found = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        found.extend(group)
    return found


def test_every_requested_extra_is_provided_by_the_installed_package() -> None:
    wrong = []
    checked = 0
    for requirement in _requirements():
        match = _WITH_EXTRAS.match(requirement)
        if match is None:
            continue
        name, extras = match.group(1), [e.strip() for e in match.group(2).split(",") if e.strip()]
        provided = set(importlib.metadata.metadata(name).get_all("Provides-Extra") or [])
        for extra in extras:
            checked += 1
            if extra not in provided:
                wrong.append(f"{requirement!r}: {name} provides {sorted(provided)}")
    assert checked >= 3, "no requirement with extras found: the pattern no longer matches pyproject.toml"
    assert not wrong, "extras the installed packages do not provide: " + "; ".join(wrong)
