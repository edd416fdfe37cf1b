"""TCP states of the sockets on one local port, from ``/proc/net/tcp`` and ``/proc/net/tcp6``.

What ``netstat -n | awk '/^tcp/ {++S[$NF]} END {for(a in S) print a, S[a]}'`` shows, limited to the
listening port: ESTABLISHED (talking), TIME_WAIT (we closed first), CLOSE_WAIT (the peer closed and we have
not yet), LISTEN (the listening socket itself). Each line of the file is one socket::

      sl  local_address rem_address   st ...
       0: 0100007F:2509 00000000:0000 0A ...      local 127.0.0.1:9481, state 0A = LISTEN

Addresses are hex ``ip:port``; ``st`` is the kernel's state number in hex (include/net/tcp_states.h).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["STATES", "count_states", "parse_proc_net_tcp"]

STATES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
    0x0C: "NEW_SYN_RECV",
}

PROC_FILES = ("/proc/net/tcp", "/proc/net/tcp6")


def parse_proc_net_tcp(lines: Iterable[str], port: int) -> dict[str, int]:
    """Count the states of the sockets whose local port is ``port`` in the lines of one proc file."""
    counts: dict[str, int] = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or not fields[0].endswith(":"):
            continue  # the header line
        _, _, local_port = fields[1].rpartition(":")
        try:
            if int(local_port, 16) != port:
                continue
            state = STATES.get(int(fields[3], 16), f"UNKNOWN_{fields[3]}")
        except ValueError:
            continue
        counts[state] = counts.get(state, 0) + 1
    return counts


def count_states(port: int, files: Iterable[str] = PROC_FILES) -> dict[str, int]:
    """TCP states on ``port`` over IPv4 and IPv6, sorted by count; files that do not exist are skipped."""
    total: dict[str, int] = {}
    for path in files:
        try:
            with open(path) as f:
                counts = parse_proc_net_tcp(f, port)
        except OSError:
            continue
        for state, n in counts.items():
            total[state] = total.get(state, 0) + n
    return dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))
