"""Structured logging: one logfmt line per record, and rate-limited reporting of bad input.

`ts=2026-11-24T15:30:00.123Z level=warning logger=flashalpha.daemon msg="..." key=value`
reads well in a terminal and in journald, and parses with any logfmt tool.
"""

from __future__ import annotations

import logging
import sys
import time


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    """Formats a record as logfmt; extra fields passed as `extra={"fields": {...}}` follow."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        for key, value in getattr(record, "fields", {}).items():
            parts.append(f"{key}={_quote(value)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(level: str = "INFO") -> None:
    """Send logfmt lines to stderr (journald captures it under systemd)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        raise ValueError(f"unknown log level '{level}'") from None


class RateLimitedLog:
    """Logs a kind of problem at most once per `interval` seconds, with the count meanwhile.

    Bad input arrives in bursts (a misbehaving feed can send thousands of bad frames a second);
    the log must stay readable and cheap while every event is still counted elsewhere.
    """

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, kind: str, message: str, *args: object) -> bool:
        """Log `message` for `kind` unless one was logged within the interval; True if logged."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        suppressed = self._suppressed.pop(kind, 0)
        self._last[kind] = now
        suffix = f" ({suppressed} more since last report)" if suppressed else ""
        self.logger.warning(message + suffix, *args, extra={"fields": {"kind": kind}})
        return True
