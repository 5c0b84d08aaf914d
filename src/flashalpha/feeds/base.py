"""What every live feed shares: the connection state machine, staleness, backoff, metrics, secrets.

A live feed holds one or more `WebSocketLink`s. Each link runs the same loop until cancelled::

    CONNECTING -> AUTHENTICATING -> SUBSCRIBING -> STREAMING --(closed, stale, error)--> BACKOFF
         ^                                                                                  |
         +----------------------------------------------------------------------------------+

- **Staleness.** While streaming, a watchdog closes the link when nothing (no data, no status,
  no heartbeat) arrived for `stale_after` seconds: a silent stall is a dead link.
- **Backoff.** Reconnects wait 1 s, 2 s, 4 s ... capped at 60 s, each delay jittered by
  +/- `jitter` of itself so that many clients do not reconnect in lockstep. The sequence starts
  over after a healthy connection: one that streamed for `healthy_after` seconds.
- **Resubscription.** A link's subscriptions are state of the link, not of the socket: every
  session sends all of them again (the provider forgets them with the connection).
- **Metrics.** Per link and per feed: events/s, decode errors, rejects, lag (now minus the
  event's exchange time), reconnects, time since the last message. `status()` returns them for
  `flashalpha status`.
- **Secrets.** API keys are wrapped in `Secret`, whose str/repr is masked; only the protocol code
  that puts the key on the wire calls `reveal()`. Nothing here logs a URL's query string.

Subclasses implement `session(ws)`: handshake, subscribe, then `await self.stream(ws, on_frames)`.
Frames that arrive together are handed over together (`on_frames(list_of_frames, ts_received)`),
so the decoder runs once per burst, not once per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from flashalpha.state.layout import RejectKind

log = logging.getLogger(__name__)
# httpx logs every request at INFO; a backfill makes hundreds of them.
logging.getLogger("httpx").setLevel(logging.WARNING)

#: Most frames handed to the decoder in one go (bounds a batch's size under a flood).
MAX_FRAMES_PER_FLUSH = 512
#: Lag samples kept per link for the percentiles in `status()`.
LAG_SAMPLES = 2048


class LinkState(enum.Enum):
    """Where a link is in its connection cycle."""

    IDLE = "idle"
    CONNECTING = "connecting"
    AUTHENTICATING = "authenticating"
    SUBSCRIBING = "subscribing"
    STREAMING = "streaming"
    BACKOFF = "backoff"
    STOPPED = "stopped"


class FeedError(Exception):
    """A session ended for a reason the provider told us; the message says which."""


class AuthError(FeedError):
    """The provider refused our credentials. Retried with backoff; the key is never logged."""


class StaleLinkError(FeedError):
    """Nothing arrived for longer than `stale_after`: the link is considered dead."""


class Secret:
    """A credential whose text never appears in logs, reprs or status documents."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The credential itself: only for putting it on the wire."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('****')" if self._value else "Secret('')"

    __str__ = __repr__


def resolve_secret(configured: str | None, variable: str) -> Secret:
    """The credential from the configuration, else from environment variable `variable`."""
    return Secret(configured or os.environ.get(variable, ""))


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Timings of a link, in seconds. Tests shrink them; production keeps the defaults."""

    #: No message for this long while streaming means the link is dead.
    stale_after: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_factor: float = 2.0
    #: Each delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter].
    backoff_jitter: float = 0.2
    #: A connection that streamed this long resets the backoff sequence.
    healthy_after: float = 30.0
    #: Opening handshake (TCP + TLS + HTTP upgrade) and protocol handshake timeouts.
    open_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("stale_after", "backoff_initial", "backoff_max", "open_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max {self.backoff_max} is below backoff_initial {self.backoff_initial}"
            )
        if not 0 <= self.backoff_jitter < 1:
            raise ValueError(f"backoff_jitter must be in [0, 1), got {self.backoff_jitter!r}")
        if self.backoff_factor < 1:
            raise ValueError(f"backoff_factor must be >= 1, got {self.backoff_factor!r}")


class Backoff:
    """Exponential backoff with jitter: initial * factor**attempt, capped, then jittered."""

    def __init__(self, settings: LinkSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next attempt, in seconds; advances the sequence."""
        s = self.settings
        base = min(s.backoff_max, s.backoff_initial * s.backoff_factor**self.attempt)
        self.attempt += 1
        jitter = 1.0 + self._rng.uniform(-s.backoff_jitter, s.backoff_jitter)
        return min(s.backoff_max, base * jitter)

    def escalate(self) -> None:
        """Jump to the cap (e.g. the provider said we hold too many connections)."""
        s = self.settings
        while s.backoff_initial * s.backoff_factor**self.attempt < s.backoff_max:
            self.attempt += 1

    def reset(self) -> None:
        self.attempt = 0


class LinkMetrics:
    """Counters of one link. Rates are computed when `snapshot()` is called."""

    def __init__(self) -> None:
        self.messages = 0
        self.events = 0
        self.quotes = 0
        self.trades = 0
        self.statuses = 0
        self.decode_errors = 0
        self.rejects = 0
        self.reconnects = 0
        self.stalls = 0
        self.auth_failures = 0
        self.backfills = 0
        self.last_message = 0.0  # time.monotonic() of the last message, 0 = never
        self.last_event_ns = 0  # exchange time of the newest event seen
        self._lags = np.zeros(LAG_SAMPLES, np.float64)
        self._lag_count = 0
        self._rate_mark = (time.monotonic(), 0)
        self._rate = 0.0

    def record_lag(self, lag_seconds: float) -> None:
        self._lags[self._lag_count % LAG_SAMPLES] = lag_seconds
        self._lag_count += 1

    def record_events(self, count: int, newest_event_ns: int, received_ns: int) -> None:
        """Count `count` normalized events whose newest exchange time is `newest_event_ns`."""
        self.events += count
        if newest_event_ns > 0:
            self.last_event_ns = max(self.last_event_ns, newest_event_ns)
            self.record_lag((received_ns - newest_event_ns) / 1e9)

    def lag_percentiles(self) -> dict[str, float | None]:
        n = min(self._lag_count, LAG_SAMPLES)
        if n == 0:
            return {"p50": None, "p99": None, "last": None}
        lags = self._lags[:n]
        last = float(self._lags[(self._lag_count - 1) % LAG_SAMPLES])
        p50, p99 = np.percentile(lags, [50, 99])
        return {"p50": round(float(p50), 4), "p99": round(float(p99), 4), "last": round(last, 4)}

    def events_per_second(self) -> float:
        now = time.monotonic()
        then, count = self._rate_mark
        if now - then >= 0.5:
            self._rate = (self.events - count) / (now - then)
            self._rate_mark = (now, self.events)
        return self._rate

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "events": self.events,
            "events_per_s": round(self.events_per_second(), 1),
            "quotes": self.quotes,
            "trades": self.trades,
            "messages": self.messages,
            "statuses": self.statuses,
            "decode_errors": self.decode_errors,
            "rejects": self.rejects,
            "reconnects": self.reconnects,
            "stalls": self.stalls,
            "auth_failures": self.auth_failures,
            "backfills": self.backfills,
            "since_last_message_s": None
            if self.last_message == 0
            else round(now - self.last_message, 3),
            "lag_s": self.lag_percentiles(),
        }


RejectSink = Callable[[RejectKind, str, int], None]


class WebSocketLink:
    """One WebSocket connection that keeps itself alive; subclasses speak the protocol.

    `run()` loops until cancelled: connect, `session(ws)`, back off, repeat. A session ends by
    an exception: the socket closed, the watchdog found it stale, the provider refused us.
    """

    #: Logged with every line of this link, e.g. "polygon[0]".
    name: str = "link"

    def __init__(
        self,
        name: str,
        url: str,
        settings: LinkSettings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.settings = settings
        self.metrics = LinkMetrics()
        self.state = LinkState.IDLE
        self.backoff = Backoff(settings, rng)
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.sessions = 0
        self.ws: Any = None
        self._streaming_since: float | None = None
        #: Set by a protocol when the provider announces why it will close the connection.
        self.session_reason: str | None = None

    # -- to implement ------------------------------------------------------------------------

    async def session(self, ws: Any) -> None:
        """Handshake, subscribe, then `await self.stream(ws, ...)`; raise to end the session."""
        raise NotImplementedError

    # -- the loop ----------------------------------------------------------------------------

    def _set_state(self, state: LinkState) -> None:
        if state is not self.state:
            log.debug("%s %s -> %s", self.name, self.state.value, state.value)
            self.state = state

    async def run(self) -> None:
        """Connect, run sessions and reconnect with backoff until cancelled."""
        try:
            while True:
                await self._one_connection()
                delay = self.backoff.next_delay()
                self._set_state(LinkState.BACKOFF)
                self.metrics.reconnects += 1
                log.info(
                    "%s reconnecting in %.2fs (attempt %d)", self.name, delay, self.backoff.attempt
                )
                await asyncio.sleep(delay)
        finally:
            self._set_state(LinkState.STOPPED)

    async def _one_connection(self) -> None:
        self._set_state(LinkState.CONNECTING)
        self._streaming_since = None
        try:
            async with websockets.connect(
                self.url,
                open_timeout=self.settings.open_timeout,
                close_timeout=1.0,
                max_size=None,
                max_queue=None,
                compression=None,
            ) as ws:
                self.ws = ws
                self.sessions += 1
                self.connected_since = time.monotonic()
                self.metrics.last_message = time.monotonic()
                await self.session(ws)
                self._note_end("session ended")
        except asyncio.CancelledError:
            raise
        except AuthError as error:
            self.metrics.auth_failures += 1
            self._note_end(str(error), level=logging.ERROR)
        except StaleLinkError as error:
            self.metrics.stalls += 1
            self._note_end(str(error), level=logging.WARNING)
        except FeedError as error:
            self._note_end(str(error), level=logging.WARNING)
        except ConnectionClosed as error:
            self._note_end(f"connection closed ({_close_reason(error)})")
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
            self._note_end(f"cannot connect to {_safe_url(self.url)}: {error}")
        except Exception as error:  # a bug in a decoder must not end the feed for good
            log.exception("%s session failed", self.name)
            self._note_end(f"session failed: {error!r}")
        finally:
            self.ws = None
            self.connected_since = None
            streamed = self._streaming_since
            if streamed is not None and time.monotonic() - streamed >= self.settings.healthy_after:
                self.backoff.reset()

    def _note_end(self, reason: str, level: int = logging.INFO) -> None:
        if self.session_reason:
            # What the provider said before closing explains the close better than its code.
            reason = f"{self.session_reason}; {reason}"
            self.session_reason = None
        self.last_error = reason
        log.log(level, "%s: %s", self.name, reason)

    async def stream(self, ws: Any, on_frames: Callable[[list, int], None]) -> None:
        """Read frames until the socket closes or goes stale; hand bursts to `on_frames`.

        Frames that are already buffered when the reader wakes up are collected and handed
        over together once the reader would block (or after `MAX_FRAMES_PER_FLUSH`).
        """
        self._set_state(LinkState.STREAMING)
        self._streaming_since = time.monotonic()
        loop = asyncio.get_running_loop()
        pending: list = []
        scheduled = False
        metrics = self.metrics

        def flush() -> None:
            nonlocal pending, scheduled
            scheduled = False
            if pending:
                frames, pending = pending, []
                on_frames(frames, time.time_ns())

        watchdog = loop.create_task(self._watchdog(ws), name=f"{self.name}-watchdog")
        closed: ConnectionClosed | None = None
        try:
            while True:
                # Bytes, not str: the decoders parse UTF-8 themselves (no decode + re-encode).
                frame = await ws.recv(decode=False)
                metrics.messages += 1
                metrics.last_message = time.monotonic()
                pending.append(frame)
                if len(pending) >= MAX_FRAMES_PER_FLUSH:
                    flush()
                elif not scheduled:
                    scheduled = True
                    loop.call_soon(flush)
        except ConnectionClosed as error:
            closed = error
        finally:
            stale = watchdog.done() and not watchdog.cancelled() and watchdog.result()
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            flush()
        if stale:
            raise StaleLinkError(
                f"no message for {self.settings.stale_after:g}s: link considered dead"
            )
        if closed is not None:
            raise closed
        raise FeedError(f"connection closed by the server (code {ws.close_code})")

    async def _watchdog(self, ws: Any) -> bool:
        """Close `ws` when it has been silent for `stale_after`; return True if it did."""
        stale_after = self.settings.stale_after
        while True:
            silent = time.monotonic() - self.metrics.last_message
            if silent >= stale_after:
                # Abort, not close: a stalled peer would not answer a closing handshake.
                ws.transport.abort()
                return True
            await asyncio.sleep(max(0.01, min(stale_after - silent, stale_after / 4)))

    def touch(self) -> None:
        """Count a message received outside `stream` (during the handshake)."""
        self.metrics.messages += 1
        self.metrics.last_message = time.monotonic()

    async def recv_within(self, ws: Any, what: str) -> str | bytes:
        """One message, within `open_timeout`; FeedError naming `what` otherwise."""
        try:
            message = await asyncio.wait_for(ws.recv(), self.settings.open_timeout)
        except TimeoutError:
            raise FeedError(
                f"no {what} within {self.settings.open_timeout:g}s of connecting"
            ) from None
        self.touch()
        return message

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": _safe_url(self.url),
            "state": self.state.value,
            "sessions": self.sessions,
            "connected_for_s": None
            if self.connected_since is None
            else round(time.monotonic() - self.connected_since, 1),
            "backoff_attempt": self.backoff.attempt,
            "last_error": self.last_error,
            **self.metrics.snapshot(),
        }

    def healthy(self) -> bool:
        """Streaming and not silent for longer than `stale_after`."""
        return (
            self.state is LinkState.STREAMING
            and time.monotonic() - self.metrics.last_message < self.settings.stale_after
        )


def _close_reason(error: ConnectionClosed) -> str:
    frame = error.rcvd or error.sent
    if frame is None:
        return "no close frame"
    return f"code {frame.code}{': ' + frame.reason if frame.reason else ''}"


def _safe_url(url: str) -> str:
    """A URL without its query string (which might carry a key)."""
    return url.split("?", 1)[0]


class RateLimiter:
    """A token bucket: at most `rate` acquisitions per second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = rate
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep((1 - self._tokens) / self.rate)


class RestError(FeedError):
    """A REST request failed for good (after retries); the message names the URL and status."""


class RestClient:
    """GET JSON documents from a provider's REST API: rate limited, retried, key in a header.

    `headers` may carry the credential (`Authorization`); it is never logged, and URLs are
    logged without their query strings.
    """

    def __init__(
        self,
        base_url: str,
        rate: float,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
        retries: int = 3,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.limiter = RateLimiter(rate, burst=max(1, int(rate)))
        self.retries = retries
        self.requests = 0
        self.failures = 0
        self._client = httpx.AsyncClient(
            headers={"Accept": "application/json", **(headers or {})},
            timeout=timeout,
            follow_redirects=True,
        )

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}{path_or_url}"

    async def get(self, path_or_url: str, params: dict[str, Any] | None = None) -> bytes:
        """The body of a 200 response; RestError after `retries` failed attempts."""
        import httpx

        url = self.url(path_or_url)
        delay = 0.5
        last = ""
        for attempt in range(self.retries + 1):
            await self.limiter.acquire()
            self.requests += 1
            try:
                response = await self._client.get(url, params=params)
            except httpx.HTTPError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 200:
                    return response.content
                last = f"HTTP {response.status_code}"
                if response.status_code in (401, 403):
                    self.failures += 1
                    raise AuthError(
                        f"REST {_safe_url(url)} refused the credentials ({last}): check the API key"
                    )
                if response.status_code not in (429, 500, 502, 503, 504):
                    break
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.failures += 1
        raise RestError(f"REST GET {_safe_url(url)} failed: {last}")

    async def close(self) -> None:
        await self._client.aclose()


def plan_quotes(
    registry: Any,
    underlying_ids: list[int],
    spots: dict[int, float],
    today_days: int,
    capacity: int,
    *,
    max_expiries: int = 0,
    strikes_per_side: int = 0,
    order: str = "expiry",
) -> np.ndarray:
    """Which contracts get quote subscriptions, best first: at most `capacity` rows (uint32).

    Candidates are the unexpired contracts of `underlying_ids`. Each gets an expiry rank (0 =
    nearest expiry of its underlying) and a strike rank (0 = the strike nearest the spot on its
    side of the money, per expiry). `max_expiries` / `strikes_per_side` (0 = no limit) filter;
    `order` "expiry" takes nearest expiries first (then strikes nearest the money),
    "moneyness" takes strikes nearest the money first (then nearer expiries). Without a spot
    the middle strike of each expiry stands in for it.
    """
    if order not in ("expiry", "moneyness"):
        raise ValueError(f"quote order must be 'expiry' or 'moneyness', got {order!r}")
    pieces = []
    for position, uid in enumerate(underlying_ids):
        if uid >= registry.underlying_count:
            continue
        rows = registry.rows_of_underlying(uid)
        expiry = registry.expiry_days[rows].astype(np.int64)
        live = expiry >= today_days
        rows, expiry = rows[live], expiry[live]
        if len(rows) == 0:
            continue
        strikes = registry.strikes[rows]
        distinct_expiries, expiry_rank = np.unique(expiry, return_inverse=True)
        strike_rank = np.zeros(len(rows), np.int64)
        spot = spots.get(uid, float("nan"))
        for index in range(len(distinct_expiries)):
            members = np.flatnonzero(expiry_rank == index)
            member_strikes = strikes[members]
            distinct = np.unique(member_strikes)
            center = spot if np.isfinite(spot) and spot > 0 else float(np.median(distinct))
            below = distinct[distinct <= center][::-1]  # nearest first
            above = distinct[distinct > center]
            rank_of = {float(s): r for r, s in enumerate(below)}
            rank_of.update({float(s): r for r, s in enumerate(above)})
            strike_rank[members] = [rank_of[s] for s in member_strikes.tolist()]
        keep = np.ones(len(rows), bool)
        if max_expiries > 0:
            keep &= expiry_rank < max_expiries
        if strikes_per_side > 0:
            keep &= strike_rank < strikes_per_side
        pieces.append(
            (
                rows[keep],
                expiry_rank[keep],
                strike_rank[keep],
                np.full(int(keep.sum()), position, np.int64),
            )
        )
    if not pieces:
        return np.empty(0, np.uint32)
    rows, expiry_rank, strike_rank, position = (
        np.concatenate(p) for p in zip(*pieces, strict=True)
    )
    # np.lexsort sorts by the last key first.
    if order == "expiry":
        ranking = np.lexsort((rows, position, strike_rank, expiry_rank))
    else:
        ranking = np.lexsort((rows, position, expiry_rank, strike_rank))
    return rows[ranking][:capacity].astype(np.uint32)
