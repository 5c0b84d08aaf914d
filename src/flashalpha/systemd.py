"""sd_notify(3) without libsystemd: datagrams to the socket named by $NOTIFY_SOCKET.

systemd starts a `Type=notify` service with NOTIFY_SOCKET set to a unix datagram socket (a
path, or "@name" for the abstract namespace); the service sends newline-separated assignments
such as "READY=1", "STATUS=...", "WATCHDOG=1", "STOPPING=1". Without NOTIFY_SOCKET (not under
systemd) every call is a no-op returning False.

With `WatchdogSec=`, systemd sets WATCHDOG_USEC (and WATCHDOG_PID); the service must send
WATCHDOG=1 more often than that or be restarted. `watchdog_interval()` says how often (half
the timeout, as sd_watchdog_enabled(3) advises), or None when no watchdog is asked for.
"""

from __future__ import annotations

import os
import socket


def _address() -> str | None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return None
    if address[0] not in "/@":
        return None  # vsock and other forms are not supported
    return "\0" + address[1:] if address[0] == "@" else address


def notify(*assignments: str) -> bool:
    """Send assignments ("READY=1", "STATUS=...") in one datagram; True if sent."""
    address = _address()
    if address is None or not assignments:
        return False
    payload = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings, or None if systemd asked for no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None  # meant for another process (e.g. our parent)
    return int(usec) / 1e6 / 2
