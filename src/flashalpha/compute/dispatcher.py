"""The dispatcher: the daemon's side of the pricing fleet (a ROUTER on the daemon's loop).

After the ZeroMQ Guide's Paranoid Pirate and Majordomo patterns (chapter 4), with credit-based
flow control instead of one request per worker:

- a worker says READY with the number of batches it accepts at once (its credit); the
  dispatcher never has more than that many of its batches in flight, so a slow pod holds
  little work, and batch sizes follow each worker's measured speed (adaptive batches);
- every batch in flight has a deadline; a late batch is requeued and its worker gets no new
  work until it answers (its late result is then discarded); a worker silent for
  `heartbeat_interval x heartbeat_liveness` is dead and all its batches are requeued;
- anything a worker sends that breaks the protocol is counted as a reject, the worker is
  dropped (told DISCONNECT, its batches requeued) and the daemon goes on;
- with `compute.curve_*` set, the tcp endpoint speaks CurveZMQ and only authorized workers
  get through the handshake (`compute.curve`); handshake failures are counted from a socket
  monitor, whatever their cause;
- results are written into the state on the loop thread (the single writer) with the seq the
  inputs were read at: a row whose market data changed meanwhile keeps its values and is
  repriced, and a result older than the greeks already held is dropped. Then GREEKS is
  published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import zmq
import zmq.utils.monitor

from flashalpha.compute import protocol
from flashalpha.compute.curve import HANDSHAKE_FAILURES, CurveServer
from flashalpha.compute.inputs import ExpiryClock, RateCurve, gather_inputs
from flashalpha.compute.protocol import Kind, ProtocolError
from flashalpha.compute.queue import RepricingQueue, Work
from flashalpha.config import ComputeConfig
from flashalpha.logs import RateLimitedLog
from flashalpha.state.engine import MarketState
from flashalpha.state.events import EventKind

log = logging.getLogger(__name__)

#: Most recent tick-to-greeks latencies kept for percentiles.
_LATENCY_SAMPLES = 65_536
#: Messages handled per loop iteration before yielding to the tick path.
_MESSAGES_PER_TURN = 64
#: Workers listed individually in the status document.
_STATUS_WORKERS = 64


@dataclass(slots=True, eq=False)
class InFlight:
    batch: int
    worker: WorkerState
    work: Work
    seq: int
    ts: int  # ns the inputs refer to
    sent: float  # monotonic
    deadline: float  # monotonic


@dataclass(slots=True, eq=False)
class WorkerState:
    identity: bytes
    name: str
    pid: int
    credit: int
    heartbeat_interval: float
    last_seen: float
    last_sent: float
    joined_ns: int
    in_flight: dict[int, InFlight] = field(default_factory=dict)
    #: Batches requeued for lateness whose results have not come back (they hold credit).
    late: dict[int, float] = field(default_factory=dict)
    completed: int = 0
    rows: int = 0
    #: Measured pricing speed, rows per second of compute (EWMA); 0 until the first result.
    rate: float = 0.0
    #: Rows of the last batch it answered.
    last_rows: int = 0

    #: A send found its connection gone.
    unreachable: bool = False
    #: Its CURVE public key (z85) and that key's certificate name; None over plain endpoints.
    key: bytes | None = None
    key_name: str | None = None

    @property
    def free(self) -> int:
        if self.unreachable:
            return 0
        return self.credit - len(self.in_flight) - len(self.late)

    def summary(self, now: float) -> dict:
        return {
            "name": self.name,
            "pid": self.pid,
            "credit": self.credit,
            "in_flight": len(self.in_flight),
            "late": len(self.late),
            "completed": self.completed,
            "rows": self.rows,
            "rows_per_s": round(self.rate),
            "last_seen_s": round(now - self.last_seen, 3),
            "key": self.key_name,
        }


class Dispatcher:
    """Hands repricing work to workers and writes their results into `state`.

    `publish(kind, seq, ids)` is the events dispatcher's publish. Call `bind` then run `run()`
    as a task on the state writer's loop; feed it stale rows with `mark_rows` /
    `mark_underlyings`.
    """

    def __init__(
        self,
        config: ComputeConfig,
        state: MarketState,
        publish: Callable[[EventKind, int, np.ndarray], None],
        rate: float = 0.0,
    ) -> None:
        self.config = config
        self.state = state
        self.publish = publish
        self.queue = RepricingQueue(state.capacity, config.sweep_interval)
        self.clock = ExpiryClock()
        self.curve = RateCurve(config.rate_curve)
        # CURVE: certificates are checked (ConfigError naming the file) before any socket
        # exists, and the ZAP handler gets a context of its own (one handler per context).
        self.curve_server = (
            CurveServer(config.curve_secret_key, config.curve_authorized_keys)
            if config.curve
            else None
        )
        self._own_context = self.curve_server is not None
        self.context = zmq.Context() if self._own_context else zmq.Context.instance()
        if self.curve_server is not None:
            self.curve_server.start(self.context)
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.MAXMSGSIZE, 1 << 30)
        self.endpoints: list[str] = []
        self.bind_errors: list[str] = []
        self._monitor_address = f"inproc://flashalpha-dispatcher-monitor-{uuid.uuid4().hex}"
        self.socket.monitor(self._monitor_address, sum(HANDSHAKE_FAILURES))
        self._monitor = self.context.socket(zmq.PAIR)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._monitor.connect(self._monitor_address)
        self.handshake_failures: dict[str, int] = dict.fromkeys(HANDSHAKE_FAILURES.values(), 0)
        self.last_handshake_failure: str | None = None
        self._next_key_check = 0.0
        self._key_reloads_seen = 0
        self.workers: dict[bytes, WorkerState] = {}
        self.in_flight: dict[int, InFlight] = {}
        self.departed: deque[dict] = deque(maxlen=16)
        self._next_batch = 1
        self._wake = asyncio.Event()
        self._closed = False
        self._rate_limited = RateLimitedLog(log)
        self._latencies = np.zeros(_LATENCY_SAMPLES, np.float64)
        self._latency_count = 0
        self._underlying_index_count = -1
        self._underlying_order = np.empty(0, np.uint32)
        self._underlying_offsets = np.zeros(1, np.int64)
        # counters
        self.batches_sent = 0
        self.batches_completed = 0
        self.rows_sent = 0
        self.rows_priced = 0
        self.rows_changed = 0  # results discarded: the row's market data changed in flight
        self.rows_superseded = 0  # results discarded: newer greeks were already written
        self.rows_behind_quote = 0  # written although the quote changed (greeks too old)
        self._max_greeks_age_ns = int(config.max_greeks_age * 1e9)
        self.requeues = 0
        self.requeues_by_reason: dict[str, int] = {}
        self.rejects = 0
        self.last_reject: str | None = None
        self.late_results = 0
        self.workers_joined = 0

    # -- sockets -----------------------------------------------------------------------------

    def bind(self, endpoint: str, required: bool = True, secure: bool | None = None) -> str | None:
        """Bind one endpoint; return the actual address (a `*` port resolved).

        With `required=False` a failure (address in use, bad address) is logged and recorded
        in the status instead of raised: the daemon keeps pricing with its local workers.
        `secure`: the endpoint speaks CurveZMQ (default: when `compute.curve_*` is set); the
        local fleet's private endpoint is bound with `secure=False`.
        """
        if secure is None:
            secure = self.curve_server is not None
        if secure and self.curve_server is None:
            raise ValueError(f"compute: cannot bind {endpoint} securely: CURVE is not configured")
        if self.curve_server is not None:
            self.curve_server.secure(self.socket, secure)
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as error:
            message = f"compute: cannot bind {endpoint}: {error}"
            if required:
                raise ValueError(message) from None
            log.error("%s; remote workers cannot connect (set compute.bind)", message)
            self.bind_errors.append(message)
            return None
        actual = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.endpoints.append(actual)
        log.info(
            "compute dispatcher listening endpoint=%s security=%s",
            actual,
            "curve" if secure else "none",
        )
        return actual

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(zmq.ZMQError):
            self.socket.disable_monitor()
        self._monitor.close(linger=0)
        self.socket.close(linger=0)
        if self.curve_server is not None:
            self.curve_server.stop()
        if self._own_context:
            self.context.term()

    # -- marking work (called from event handlers on the loop) -------------------------------

    def mark_rows(self, rows: np.ndarray) -> None:
        """Option rows whose quotes changed."""
        if self.queue.mark(rows, time.time_ns()):
            self._wake.set()

    def mark_underlyings(self, underlying_ids: np.ndarray) -> None:
        """Underlyings that moved: every option row of them."""
        rows = self._rows_of_underlyings(underlying_ids)
        if len(rows) and self.queue.mark(rows, time.time_ns()):
            self._wake.set()

    def _rows_of_underlyings(self, underlying_ids: np.ndarray) -> np.ndarray:
        """Option rows of some underlyings: a CSR index over the rows listed when it was
        built, plus a scan of rows listed since (live feeds list contracts as they trade);
        rebuilt once that tail grows past an eighth of the index."""
        count = self.state.count
        indexed = self._underlying_index_count
        ids = self.state.column("underlying_id")
        if indexed < 0 or count - indexed > max(65_536, indexed // 8):
            self._underlying_order = np.argsort(ids, kind="stable").astype(np.uint32)
            self._underlying_offsets = np.searchsorted(
                ids[self._underlying_order], np.arange(self.state.underlying_count + 1)
            )
            self._underlying_index_count = indexed = count
        offsets = self._underlying_offsets
        wanted = np.asarray(underlying_ids, np.int64)
        parts = [
            self._underlying_order[offsets[uid] : offsets[uid + 1]]
            for uid in wanted.tolist()
            if uid + 1 < len(offsets)
        ]
        if count > indexed:
            tail = np.flatnonzero(np.isin(ids[indexed:count], wanted)) + indexed
            parts.append(tail.astype(np.uint32))
        if not parts:
            return np.empty(0, np.uint32)
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled: receive, housekeep, dispatch."""
        loop = asyncio.get_running_loop()
        fd = self.socket.getsockopt(zmq.FD)
        loop.add_reader(fd, self._wake.set)
        tick = min(0.05, self.config.heartbeat_interval / 4)
        try:
            while True:
                busy = self._receive()
                now = time.monotonic()
                self._housekeeping(now)
                self._dispatch(now)
                # The FD is edge-triggered: after sends, check again for pending input.
                if busy or self.socket.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    await asyncio.sleep(0)
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(tick):
                        await self._wake.wait()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(fd)

    def _receive(self) -> bool:
        """Handle up to a turn's worth of messages; True if more may be waiting."""
        for _ in range(_MESSAGES_PER_TURN):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return False
            try:
                self._handle(frames)
            except Exception:
                # A bug here must not stop the fleet; the message is lost, its batch requeued
                # by its deadline.
                log.exception("compute: handling a worker message failed")
        return True

    # -- messages ----------------------------------------------------------------------------

    def _handle(self, frames: list) -> None:
        identity = frames[0].bytes
        worker = self.workers.get(identity)
        try:
            message = protocol.decode(frames[1:])
        except ProtocolError as error:
            self._reject(identity, worker, str(error))
            return
        now = time.monotonic()
        kind = message.kind
        if kind is Kind.READY:
            if worker is not None:
                self._drop(worker, "ready again", "reconnect", tell=False)
            key = self._peer_key(frames[1])
            if key is not None and not self.curve_server.authorized.allows(key):
                # Its connection was authorized, its key has been removed since.
                self._send(
                    identity,
                    protocol.encode(
                        Kind.DISCONNECT, protocol.Disconnect("CURVE key no longer authorized")
                    ),
                )
                return
            self._register(identity, message.header, now, key)
            return
        if worker is None:
            if kind is not Kind.DISCONNECT:
                # A worker of a previous dispatcher (or one we dropped): start over with READY.
                self._send(
                    identity,
                    protocol.encode(
                        Kind.DISCONNECT, protocol.Disconnect("unknown worker: send READY")
                    ),
                )
            return
        worker.last_seen = now
        if kind is Kind.HEARTBEAT:
            return
        if kind is Kind.RESULT:
            self._on_result(worker, message, now)
        elif kind is Kind.DISCONNECT:
            log.info(
                "compute worker left name=%s reason=%s", worker.name, message.header.reason or "-"
            )
            self._drop(worker, "disconnect", "disconnect", tell=False)
        else:
            self._reject(identity, worker, f"workers do not send {kind.name}")

    def _peer_key(self, frame: zmq.Frame) -> bytes | None:
        """The CURVE public key (z85) the message came with; None over NULL endpoints."""
        if self.curve_server is None:
            return None
        try:
            return frame.get("User-Id").encode("ascii")
        except zmq.ZMQError:  # no User-Id: a NULL endpoint (the local fleet)
            return None

    def _register(
        self, identity: bytes, header: protocol.Ready, now: float, key: bytes | None = None
    ) -> None:
        credit = min(header.credit, self.config.max_credit)
        worker = WorkerState(
            identity=identity,
            name=header.worker[:64],
            pid=header.pid,
            credit=credit,
            heartbeat_interval=min(header.heartbeat_interval, self.config.heartbeat_interval),
            last_seen=now,
            last_sent=now,
            joined_ns=time.time_ns(),
            key=key,
            key_name=None if key is None else self.curve_server.authorized.name_of(key),
        )
        self.workers[identity] = worker
        self.workers_joined += 1
        log.info(
            "compute worker joined name=%s pid=%d credit=%d workers=%d key=%s",
            worker.name,
            worker.pid,
            credit,
            len(self.workers),
            worker.key_name or "-",
        )

    def _reject(self, identity: bytes, worker: WorkerState | None, error: str) -> None:
        name = worker.name if worker is not None else identity.hex()
        self.rejects += 1
        self.last_reject = f"{time.strftime('%H:%M:%S')} worker {name}: {error}"
        self._rate_limited.warning(
            "compute_reject", "compute: rejected message from worker %s: %s", name, error
        )
        if worker is not None:
            self._drop(worker, f"rejected: {error}", "rejected")
        else:
            self._send(identity, protocol.encode(Kind.DISCONNECT, protocol.Disconnect(error[:200])))

    def _drop(self, worker: WorkerState, reason: str, requeue_reason: str, tell: bool = True):
        """Forget a worker: requeue its batches, tell it (unless it left or died)."""
        self.workers.pop(worker.identity, None)
        for inflight in list(worker.in_flight.values()):
            self._requeue(inflight, requeue_reason)
        worker.in_flight.clear()
        if tell:
            self._send(
                worker.identity,
                protocol.encode(Kind.DISCONNECT, protocol.Disconnect(reason[:200])),
            )
        self.departed.append(
            {
                "name": worker.name,
                "pid": worker.pid,
                "reason": reason[:200],
                "completed": worker.completed,
                "rows": worker.rows,
                "ts": time.time_ns(),
            }
        )

    def _requeue(self, inflight: InFlight, reason: str) -> None:
        self.in_flight.pop(inflight.batch, None)
        inflight.worker.in_flight.pop(inflight.batch, None)
        self.queue.requeue(inflight.work)
        self.requeues += 1
        self.requeues_by_reason[reason] = self.requeues_by_reason.get(reason, 0) + 1
        self._wake.set()

    def _send(self, identity: bytes, frames: list) -> bool:
        try:
            self.socket.send_multipart([identity, *frames], zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as error:  # EHOSTUNREACH (gone) or EAGAIN (its queue is full)
            worker = self.workers.get(identity)
            if worker is not None and error.errno == zmq.EHOSTUNREACH:
                # Dropped after the next receive, which may still hold its last RESULT or
                # DISCONNECT (a worker that stops cleanly closes its connection right after).
                worker.unreachable = True
            return False
        worker = self.workers.get(identity)
        if worker is not None:
            worker.last_sent = time.monotonic()
        return True

    # -- results -----------------------------------------------------------------------------

    def _on_result(self, worker: WorkerState, message: protocol.Message, now: float) -> None:
        header = message.header
        inflight = worker.in_flight.get(header.batch)
        if inflight is None:
            if worker.late.pop(header.batch, None) is not None:
                # Discarded (its rows went to another worker), but its timing tells how fast
                # this worker is, so that its next batches are cut to fit their deadlines.
                self._measure(worker, header.rows, header.compute_ns)
                self.late_results += 1
                self._wake.set()  # its credit is free again
                return
            self._reject(
                worker.identity, worker, f"RESULT for batch {header.batch} it does not hold"
            )
            return
        work = inflight.work
        if header.rows != len(work):
            self._reject(
                worker.identity,
                worker,
                f"RESULT of batch {header.batch} has {header.rows} rows; the batch has {len(work)}",
            )
            return
        del worker.in_flight[header.batch]
        del self.in_flight[header.batch]
        self._write(inflight, message.arrays)
        worker.completed += 1
        worker.rows += len(work)
        self._measure(worker, len(work), header.compute_ns)
        self.batches_completed += 1

    @staticmethod
    def _measure(worker: WorkerState, rows: int, compute_ns: int) -> None:
        """Track a worker's speed: down at once, up gradually. Rows differ in cost (an
        American row costs ~100 European ones, a row without a quote almost nothing), so one
        fast batch must not make the next one too big for its deadline."""
        if compute_ns > 0:
            speed = rows / (compute_ns / 1e9)
            if worker.rate == 0 or speed < worker.rate:
                worker.rate = speed
            else:
                worker.rate = 0.8 * worker.rate + 0.2 * speed
        worker.last_rows = rows

    def _write(self, inflight: InFlight, arrays: dict[str, np.ndarray]) -> None:
        """Results into the state (single writer), then GREEKS.

        A row whose quote changed since the batch's seq is priced again; its result is
        dropped (`write_columns(..., computed_at_seq=seq)`) unless the row's greeks are older
        than `compute.max_greeks_age` (or missing): a contract that ticks faster than the fleet
        prices it would otherwise never get greeks, and the result is still newer than the
        ones it replaces (`seq_greeks` says which market state it was priced from). A result
        older than the greeks already written is always dropped.
        """
        state, work, seq = self.state, inflight.work, inflight.seq
        index = work.index()
        rows = work.row_ids()
        row_seq = state.column("seq")[index]
        greeks_seq = state.column("seq_greeks")[index]
        now_ns = time.time_ns()
        superseded = greeks_seq > seq
        changed = row_seq > seq
        n_changed = int(changed.sum())
        checked_seq = np.full(len(rows), seq, np.uint64)
        if n_changed:
            # Priced from a quote it no longer holds: price it again (it may have been queued
            # already by its quote event; `mark` does not repeat it).
            self.queue.mark(rows[changed], now_ns)
            oldest = np.uint64(max(0, now_ns - self._max_greeks_age_ns))
            starving = changed & ~superseded & (state.column("ts_greeks")[index] < oldest)
            checked_seq[starving] = row_seq[starving]  # passes write_columns' check
            self.rows_behind_quote += int(starving.sum())
            dropped = changed & ~starving
        else:
            dropped = changed
        keep = ~(dropped | superseded)
        self.rows_changed += int(dropped.sum())
        self.rows_superseded += int(superseded.sum())
        all_kept = bool(keep.all())
        if all_kept:
            written_rows, values = rows, dict(arrays)
        else:
            selected = np.flatnonzero(keep)
            written_rows = rows[selected]
            values = {name: array[selected] for name, array in arrays.items()}
            checked_seq = checked_seq[selected]
        n = len(written_rows)
        if n:
            if work.sweep_rows < len(work):
                self._sample_latency(written_rows, now_ns)
            values["ts_greeks"] = np.full(n, inflight.ts, np.uint64)
            values["seq_greeks"] = np.full(n, seq, np.uint64)
            state.write_columns(written_rows, values, computed_at_seq=checked_seq)
            self.rows_priced += n
        self.queue.done(work, None if n_changed == 0 else rows[~changed], now_ns)
        if n_changed:
            # Everything up to the cut is priced (or superseded); what is left waiting is the
            # change after it, so the lag counts from there, not from the first tick ever.
            since = self.queue.since
            changed_rows = rows[changed]
            since[changed_rows] = np.maximum(since[changed_rows], np.uint64(inflight.ts))
        if n:
            self.publish(EventKind.GREEKS, state.seq, written_rows)

    def _sample_latency(self, rows: np.ndarray, now_ns: int) -> None:
        """Tick-to-greeks of rows priced because they ticked: now - the newest tick's time,
        for rows whose previous greeks predate that tick."""
        state = self.state
        tick = state.column("ts_quote")[rows]
        spot_ts = state.underlying_column("ts_spot")[state.column("underlying_id")[rows]]
        tick = np.maximum(tick, spot_ts)
        fresh = (tick > state.column("ts_greeks")[rows]) & (tick > 0)
        latencies = (now_ns - tick[fresh].astype(np.int64)) / 1e6
        if len(latencies) == 0:
            return
        if len(latencies) > 1024:
            latencies = latencies[:: len(latencies) // 1024 + 1]
        start = self._latency_count % _LATENCY_SAMPLES
        room = min(len(latencies), _LATENCY_SAMPLES - start)
        self._latencies[start : start + room] = latencies[:room]
        self._latency_count += room

    # -- housekeeping ------------------------------------------------------------------------

    def _watch_handshakes(self) -> None:
        """Count failed handshakes (refused keys, plaintext or garbage peers) from the
        socket monitor's events."""
        while True:
            try:
                event = zmq.utils.monitor.recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            reason = HANDSHAKE_FAILURES.get(event["event"])
            if reason is None:
                continue
            self.handshake_failures[reason] += 1
            endpoint = event["endpoint"].decode(errors="replace")
            self.last_handshake_failure = (
                f"{time.strftime('%H:%M:%S')} {reason} on {endpoint} (code {event['value']})"
            )
            self._rate_limited.warning(
                "compute_handshake",
                "compute: a peer failed the handshake on %s: %s (code %s)",
                endpoint,
                reason,
                event["value"],
            )

    def _revoke(self, now: float) -> None:
        """About once a second: re-read the authorized keys; drop workers whose key went."""
        if self.curve_server is None or now < self._next_key_check:
            return
        self._next_key_check = now + 1.0
        authorized = self.curve_server.authorized
        authorized.refresh()
        # (A handshake may have reloaded them first, on the authenticator's thread.)
        if authorized.reloads == self._key_reloads_seen:
            return
        self._key_reloads_seen = authorized.reloads
        for worker in list(self.workers.values()):
            if worker.key is not None and not authorized.allows(worker.key):
                log.warning(
                    "compute worker's key revoked name=%s key=%s", worker.name, worker.key_name
                )
                self._drop(worker, "CURVE key no longer authorized", "revoked")

    def _housekeeping(self, now: float) -> None:
        self._watch_handshakes()
        self._revoke(now)
        now_ns = time.time_ns()
        if self.queue.maybe_start_sweep(self.state.count, now_ns):
            log.debug("compute sweep started rows=%d", self.queue.sweep_end)
        self.queue.tick(now_ns)
        for inflight in [i for i in self.in_flight.values() if now > i.deadline]:
            worker = inflight.worker
            self._rate_limited.warning(
                "compute_late",
                "compute: batch %d of worker %s is late (%d rows, %.1fs); requeued",
                inflight.batch,
                worker.name,
                len(inflight.work),
                now - inflight.sent,
            )
            worker.late[inflight.batch] = now
            self._requeue(inflight, "late")
        for worker in list(self.workers.values()):
            if worker.unreachable:
                self._drop(worker, "dead: connection gone", "dead", tell=False)
                continue
            silent = now - worker.last_seen
            if silent > worker.heartbeat_interval * self.config.heartbeat_liveness:
                log.warning(
                    "compute worker dead name=%s silent=%.1fs in_flight=%d",
                    worker.name,
                    silent,
                    len(worker.in_flight),
                )
                self._drop(worker, "dead: no heartbeat", "dead", tell=False)
                continue
            if worker.late and now - min(worker.late.values()) > 10 * self.config.batch_timeout:
                self._drop(worker, "unresponsive: late batches never returned", "late")
                continue
            if now - worker.last_sent >= worker.heartbeat_interval:
                self._send(
                    worker.identity,
                    protocol.encode(Kind.HEARTBEAT, protocol.Heartbeat(time.time_ns())),
                )

    # -- dispatching -------------------------------------------------------------------------

    def _batch_size(self, worker: WorkerState, pending: int, free_slots: int) -> int:
        config = self.config
        if worker.rate > 0:
            # At most twice the last batch it returned (slow start).
            size = min(int(worker.rate * config.target_batch_seconds), 2 * worker.last_rows)
        else:
            size = config.initial_batch
        size = max(config.min_batch, min(config.max_batch, size))
        # Spread a small backlog over every free worker instead of queueing it on one.
        share = math.ceil(pending / max(free_slots, 1))
        return max(config.min_batch, min(size, share))

    def _dispatch(self, now: float) -> None:
        if not self.workers:
            return
        while True:
            pending = self.queue.pending()
            if pending == 0:
                return
            candidates = [w for w in self.workers.values() if w.free > 0]
            if not candidates:
                return
            worker = max(candidates, key=lambda w: (w.free, -w.last_sent))
            free_slots = sum(w.free for w in candidates)
            now_ns = time.time_ns()
            work = self.queue.take(self._batch_size(worker, pending, free_slots), now_ns)
            if work is None:
                return
            if not self._send_batch(worker, work, now, now_ns):
                self.queue.requeue(work)
                return

    def _send_batch(self, worker: WorkerState, work: Work, now: float, now_ns: int) -> bool:
        state = self.state
        inputs = gather_inputs(state, work.index(), now_ns, self.clock, self.curve)
        batch_id = self._next_batch
        self._next_batch += 1
        seq = state.seq
        frames = protocol.encode_batch(batch_id, seq, now_ns, inputs)
        if not self._send(worker.identity, frames):
            return False
        expected = len(work) / worker.rate if worker.rate > 0 else 0.0
        deadline = now + max(self.config.batch_timeout, self.config.deadline_factor * expected)
        inflight = InFlight(batch_id, worker, work, seq, now_ns, now, deadline)
        worker.in_flight[batch_id] = inflight
        self.in_flight[batch_id] = inflight
        self.batches_sent += 1
        self.rows_sent += len(work)
        return True

    # -- reporting ---------------------------------------------------------------------------

    def latency_percentiles(self) -> dict[str, float | None]:
        n = min(self._latency_count, _LATENCY_SAMPLES)
        if n == 0:
            return {"p50": None, "p99": None, "samples": 0}
        p50, p99 = np.percentile(self._latencies[:n], [50, 99])
        return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "samples": n}

    def status(self) -> dict:
        now = time.monotonic()
        now_ns = time.time_ns()
        queue = self.queue
        sweep_progress = None
        if queue.sweep_active and queue.sweep_end:
            sweep_progress = round(queue.sweep_cursor / queue.sweep_end, 4)
        workers = sorted(self.workers.values(), key=lambda w: w.joined_ns)
        return {
            "endpoints": self.endpoints,
            "bind_errors": self.bind_errors,
            "handshake_failures": sum(self.handshake_failures.values()),
            "handshake_failures_by_reason": dict(self.handshake_failures),
            "last_handshake_failure": self.last_handshake_failure,
            "curve": None if self.curve_server is None else self.curve_server.status(),
            "workers": len(self.workers),
            "workers_joined": self.workers_joined,
            "batches_in_flight": len(self.in_flight),
            "batches_sent": self.batches_sent,
            "batches_completed": self.batches_completed,
            "rows_sent": self.rows_sent,
            "rows_priced": self.rows_priced,
            "rows_changed_in_flight": self.rows_changed,
            "rows_superseded": self.rows_superseded,
            "rows_behind_quote": self.rows_behind_quote,
            "requeues": self.requeues,
            "requeues_by_reason": dict(self.requeues_by_reason),
            "rejects": self.rejects,
            "last_reject": self.last_reject,
            "late_results": self.late_results,
            "queued_rows": queue.pending(),
            "repricing_lag_s": round(queue.lag_seconds(now_ns, self.state.count), 3),
            "sweeps_completed": queue.sweeps_completed,
            "full_sweep_s": None
            if queue.last_sweep_seconds is None
            else round(queue.last_sweep_seconds, 3),
            "sweep_progress": sweep_progress,
            "tick_to_greeks_ms": self.latency_percentiles(),
            "worker_list": [w.summary(now) for w in workers[:_STATUS_WORKERS]],
            "departed": list(self.departed),
        }
