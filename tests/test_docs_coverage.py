"""Every CLI command and flag is in docs/cli.md, and every config key is in docs/configuration.md.

Read from the code itself (the argparse tree of ``tether.cli.build_parser`` and the dataclasses of
``tether.config``), so a new command, flag or key without documentation fails ``make test``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from tether.cli import build_parser
from tether.config import sections as config_sections

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_cli_command_and_flag_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    synopsis = text.split("```", 2)[1]
    # Where a reader looks for a flag: the command's synopsis lines, or the table of flags (a flag named
    # only in prose, as `start --app` was, is not found by someone reading the usage).
    usage = {
        block.split()[1]: block
        for block in re.split(r"\n(?=tether )", synopsis.strip())
        if block.startswith("tether ")
    }
    table = "\n".join(line for line in text.splitlines() if line.startswith("| `"))
    commands = _subcommands()
    assert {"start", "stop", "restart", "reload", "infos", "token"} <= set(commands)
    missing = []
    for name, sub in commands.items():
        if not re.search(rf"^tether {name}\b", synopsis, re.M):
            missing.append(f"`tether {name}` in the synopsis")
        if not re.search(rf"^##+ .*\b{name}\b", text, re.M):
            missing.append(f"a section for `{name}`")
        for action in sub._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help"):
                    continue
                pattern = rf"(?<![\w-]){re.escape(flag)}(?![\w-])"
                if not re.search(pattern, usage.get(name, "")) and not re.search(pattern, table):
                    missing.append(f"`tether {name} {flag}` (in its synopsis or the table of flags)")
    assert not missing, "docs/cli.md lacks: " + ", ".join(missing)


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = []
    for section, cls in config_sections.SECTIONS.items():
        body = text.split(f"## [{section}]\n", 1)
        if len(body) != 2:
            missing.append(f"[{section}]")
            continue
        table = body[1].split("\n## ", 1)[0]
        for field in dataclasses.fields(cls):
            env = f"TETHER_{section.upper()}_{field.name.upper()}"
            if not re.search(rf"^\| `{field.name}` \|.*`{env}`", table, re.M):
                missing.append(f"{section}.{field.name}")
    assert not missing, "docs/configuration.md lacks: " + ", ".join(missing)
