"""systemd's readiness protocol: the master tells its service manager when it serves, reloads and stops.

Under a unit with ``Type=notify`` systemd sets ``NOTIFY_SOCKET`` in the main process's environment and
waits for ``READY=1`` on it before ``systemctl start`` returns, so a start that fails (a worker that cannot
import the app) fails ``systemctl start`` instead of looking started. The protocol (``sd_notify(3)``) is one
datagram of newline-separated ``KEY=value`` fields to a Unix socket: a path, or an abstract name written
with a leading ``@``. The master sends:

* ``READY=1``, ``MAINPID=``, ``STATUS=serving on URL with N workers``: every worker of the first generation
  listens (the same moment ``tether start`` prints "tether serving on");
* ``RELOADING=1``, ``MONOTONIC_USEC=`` (``CLOCK_MONOTONIC`` in µs, which ``Type=notify-reload`` requires),
  then ``READY=1`` with a ``STATUS=`` that says whether the reload worked (the old workers keep serving
  after a failed one, so the service is ready either way);
* ``STOPPING=1`` when a graceful stop begins; a ``STATUS=`` with the reason when the start fails.

Without ``NOTIFY_SOCKET`` (no systemd, ``Type=exec``, supervisord) nothing is sent. The variable is removed
from the master's environment when read (``sd_notify``'s ``unset_environment``), so workers do not inherit
it: systemd would ignore them anyway (``NotifyAccess=main``). A failed send is logged once and never stops
the server. No library: the reference clients (``sdnotify``, ``systemd-python``) are either unmaintained or
need libsystemd's headers for what is one ``sendto``.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["Notifier"]

log = logging.getLogger("tether.manager")


class Notifier:
    """Sends ``sd_notify`` messages to ``address`` (a socket path, or ``@name`` for an abstract one); with
    no address, :meth:`notify` does nothing."""

    __slots__ = ("_failed", "address")

    def __init__(self, address: str | None) -> None:
        self.address = address or None
        self._failed = False

    @classmethod
    def from_environment(cls) -> Notifier:
        """The notifier for ``NOTIFY_SOCKET``, removed from the environment (children do not inherit it)."""
        return cls(os.environ.pop("NOTIFY_SOCKET", None))

    def notify(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one datagram; whether it was sent.

        Never raises: a service manager that went away must not take the server with it.
        """
        address = self.address
        if address is None:
            return False
        if address.startswith("@"):
            target = "\0" + address[1:]  # Linux abstract namespace
        elif address.startswith("/"):
            target = address
        else:  # systemd 254's vsock: addresses, for VMs
            self._warn(f"unsupported NOTIFY_SOCKET address {address!r}")
            return False
        message = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, target)
        except OSError as exc:
            self._warn(f"cannot notify the service manager at {address}: {exc}")
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"MAINPID={os.getpid()}", f"STATUS={status}")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}", "STATUS=reloading")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def _warn(self, text: str) -> None:
        if not self._failed:
            self._failed = True
            log.warning("! %s (further failures are not logged)", text)
