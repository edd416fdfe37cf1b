"""The figures ``make bench`` draws: ``bench/growth.png`` (W2 and W6 by clients) and ``bench/ratios.png``
(Tether against its peers, run by run, from ``bench/history.jsonl``). matplotlib is imported on use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import BENCH  # bench/ is not a package
from report import LABELS, MULTI, growth_points, growth_w6


def plot_growth(results: dict[str, Any], path: Path) -> bool:
    """Draw W2 CPU per delivery and W6 CPU per 1,000 clients against the client count; False if there is
    nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    drawn = False
    for s in MULTI:
        pts = growth_points(results, s)
        if len(pts) < 2:
            continue
        drawn = True
        xs = [n for n, _ in pts]
        nan = float("nan")
        ax1.plot(
            xs, [r["W2"].get("server_us_per_delivery") or nan for _, r in pts], marker="o", label=LABELS[s]
        )
        ys = [growth_w6(r, n) for n, r in pts]
        ax2.plot(xs, [y if y is not None else nan for y in ys], marker="o", label=LABELS[s])
    if drawn:
        ax1.set_title("W2: server CPU µs per delivery")
        ax2.set_title("W6: idle CPU, % of a core per 1,000 clients")
        for ax in (ax1, ax2):
            ax.set_xlabel("idle clients")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    plt.close(fig)
    return drawn


def plot_history() -> str:
    """Redraw bench/ratios.png from history.jsonl (full runs only); returns a note."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        return f"no plot: {exc}"
    entries = [
        json.loads(line) for line in (BENCH / "history.jsonl").read_text().splitlines() if line.strip()
    ]
    entries = [e for e in entries if not e.get("quick")]
    if not entries:
        return "no plot: no full run in history.jsonl yet"
    series = {
        "W1 rate vs node": "W1.rps.vs_node",
        "W1 CPU/msg vs node": "W1.server_us_per_msg.vs_node",
        "W2 time vs node": "W2.median_ms.vs_node",
        "W2 CPU/delivery vs node": "W2.server_us_per_delivery.vs_node",
        "W3 memory vs node": "W3.bytes_per_conn.vs_node",
        "W4 rate vs node": "W4.hps.vs_node",
        "W6 idle CPU vs node": "W6.server_cpu_share.vs_node",
        "W1 rate vs python-socketio": "W1.rps.vs_psio",
    }
    fig, ax = plt.subplots(figsize=(9, 5))
    xs = list(range(len(entries)))
    for label, key in series.items():
        ys = [e["ratios"].get(key) for e in entries]
        if any(y is not None for y in ys):
            ax.plot(xs, [y if y is not None else float("nan") for y in ys], marker="o", label=label)
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(xs, [f"{e['date'][:10]}\n{e['commit'][:7]}" for e in entries], fontsize=7)
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}x"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("times better than the peer (log)")
    ax.set_title("Tether vs peers per run (> 1: Tether ahead)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(BENCH / "ratios.png", dpi=100)
    plt.close(fig)
    return "plot: bench/ratios.png"
