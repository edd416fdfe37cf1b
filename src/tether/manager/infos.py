"""``tether infos`` for people: the master's answer (see :meth:`Master.infos`) as a table."""

from __future__ import annotations

from typing import Any

__all__ = ["human_bytes", "human_duration", "render_instances", "render_table"]

COLUMNS = (
    ("SLOT", "slot", str),
    ("PID", "pid", str),
    ("STATE", "state", str),
    ("UPTIME", "uptime", lambda v: human_duration(v)),
    ("CONN", "connections", str),
    ("SOCKETS", "sockets", str),
    ("ROOMS", "rooms", str),
    ("RSS", "rss", lambda v: human_bytes(v)),
    ("IN/S", "events_in_per_s", lambda v: f"{v:.1f}"),
    ("OUT/S", "events_out_per_s", lambda v: f"{v:.1f}"),
    ("EVENTS IN", "events_in", str),
    ("EVENTS OUT", "events_out", str),
    ("RESTARTS", "restarts", str),
)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    if hours:
        return f"{hours}h{minutes:02d}m{s:02d}s"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{seconds:.1f}s"


def render_table(info: dict[str, Any]) -> str:
    """The instance, its workers with a totals row, and the TCP states of the port, as aligned text."""
    lines = [
        f"tether {info['version']}  master pid {info['pid']}  up {human_duration(info['uptime'])}  "
        f"listening on {info['listen']}",
        f"config    {info['config']}",
        f"pid file  {info['pid_file']}",
    ]
    if info.get("log_file"):
        lines.append(f"log file  {info['log_file']}")
    # Said either way: metrics are off the public port by default, and the table says how to get them.
    if info.get("metrics"):
        lines.append(f"metrics   {info['metrics']}")
    if info.get("metrics_on_port"):
        lines.append(f"metrics   {info['metrics_on_port']} (with the bearer [metrics] key)")
    if not info.get("metrics") and not info.get("metrics_on_port"):
        lines.append("metrics   not served ([metrics] listen or key serves them: docs/hardening.md)")
    lines.append(
        f"generation {info['generation']} ({_count(info['reloads'], 'reload')},"
        f" {_count(info['restarts'], 'worker restart')})"
        f"  master RSS {human_bytes(info['master_rss'])}"
        + ("  STOPPING" if info.get("stopping") else "")
        + ("  RELOADING" if info.get("reloading") else "")
    )
    rows = [[header for header, _, _ in COLUMNS]]
    for w in info["workers"]:
        rows.append([fmt(w[key]) for _, key, fmt in COLUMNS])
    totals = info["totals"]
    total_row = ["total", "", f"{totals['workers']} up", ""]
    for _, key, fmt in COLUMNS[4:]:
        total_row.append(fmt(totals[key]) if key in totals else "")
    rows.append(total_row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines.append("")
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    tcp = info.get("tcp") or {}
    states = "  ".join(f"{state} {n}" for state, n in tcp.items()) or "none"
    lines.append("")
    lines.append(f"TCP port {info['port']}: {states}")
    return "\n".join(lines)


def render_instances(rows: list[dict[str, Any]]) -> str:
    """``tether infos --all``: one aligned line per instance (registry entry plus its ``infos`` answer)."""
    table = [["PID", "LISTEN", "WORKERS", "CONN", "UPTIME", "CONFIG"]]
    for row in rows:
        info = row["infos"]
        if info.get("ok"):
            totals = info["totals"]
            cells = [str(totals["workers"]), str(totals["connections"]), human_duration(info["uptime"])]
        else:
            cells = ["?", "?", "not answering"]
        table.append([str(row["pid"]), str(row["listen"]), *cells, str(row["config"])])
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)


def _count(n: int, thing: str) -> str:
    """``1 reload``, ``2 reloads``, ``0 reloads``."""
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"
