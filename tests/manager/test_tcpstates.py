"""TCP states of the listening port from /proc/net/tcp lines."""

from __future__ import annotations

import socket
from pathlib import Path

from tether.manager.tcpstates import count_states, parse_proc_net_tcp

SAMPLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2509 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:2509 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:2509 0100007F:C351 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   3: 0100007F:2509 0100007F:C352 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0
   4: 0100007F:2509 0100007F:C353 08 00000000:00000000 00:00000000 00000000     0        0 4 1 0 20 4 30 10 -1
   5: 0100007F:C350 0100007F:2509 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0 20 4 30 10 -1
   6: garbage
"""


def test_parse_counts_the_local_port_only() -> None:
    counts = parse_proc_net_tcp(SAMPLE.splitlines(), 0x2509)
    # Line 5 is the client's side (local port C350): not the server's socket.
    assert counts == {"LISTEN": 1, "ESTABLISHED": 2, "TIME_WAIT": 1, "CLOSE_WAIT": 1}
    assert parse_proc_net_tcp(SAMPLE.splitlines(), 1) == {}


def test_count_states_of_a_real_socket(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):
            conn, _ = server.accept()
            with conn:
                states = count_states(port)
    assert states["LISTEN"] == 1 and states["ESTABLISHED"] == 1
    assert next(iter(states)) in ("LISTEN", "ESTABLISHED")  # sorted by count, then name
    assert count_states(port, files=[str(tmp_path / "missing")]) == {}
