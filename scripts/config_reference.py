"""Write docs/configuration.md from src/tether/config/sections.py: every key, its default, env var, doc.

Run: python scripts/config_reference.py [--check]. ``--check`` exits 1 when the file is out of date
(tests/test_docs.py runs it, so the reference cannot drift from the code).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "tether" / "config" / "sections.py"
TARGET = ROOT / "docs" / "configuration.md"

HEADER = """# Configuration reference

Generated from `src/tether/config/sections.py` by `scripts/config_reference.py`; do not edit by hand.

Values come from the embedded defaults, then `tether.toml` (`--config FILE` or `TETHER_CONFIG`), then
`TETHER_<SECTION>_<KEY>` environment variables (parsed as TOML values when they parse: numbers, booleans,
lists; else strings; a switch also takes `1`/`0`, `yes`/`no`, `on`/`off`), then command-line flags. An
unknown section or key, or a value of the wrong type or range, stops `tether start` with the file (or the
`TETHER_*` variable that set it), the key and the reason. `reload` and `restart` keep the variables of the
start (they warn about others set in the caller's shell). Relative paths are relative to the folder of
the config file. Secrets (`session.secret`, `api.key`) are never logged: `Config.redacted()`.
"""


def render() -> str:
    tree = ast.parse(SOURCE.read_text())
    sections: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "SECTIONS":
            assert isinstance(node.value, ast.Dict)
            for k, v in zip(node.value.keys, node.value.values, strict=True):
                assert isinstance(k, ast.Constant) and isinstance(v, ast.Name)
                sections[v.id] = k.value
    out = [HEADER]
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name in sections):
            continue
        section = sections[node.name]
        out.append(f"\n## [{section}]\n\n| key | default | env | meaning |\n|---|---|---|---|")
        body = node.body
        for i, stmt in enumerate(body):
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            key = stmt.target.id
            default = ast.unparse(stmt.value) if stmt.value is not None else ""
            doc = ""
            if i + 1 < len(body):
                nxt = body[i + 1]
                value = nxt.value if isinstance(nxt, ast.Expr) else None
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    doc = " ".join(value.value.split()).replace("|", "\\|").replace("``", "`")
            env = f"TETHER_{section.upper()}_{key.upper()}"
            out.append(f"| `{key}` | `{default}` | `{env}` | {doc} |")
    return "\n".join(out) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/configuration.md is out of date: python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
