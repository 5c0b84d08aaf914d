"""`flashalpha worker --connect tcp://HOST:PORT`: one stateless pricing worker (a DEALER).

The Paranoid Pirate worker of the ZeroMQ Guide (chapter 4) with credit: it says READY with
how many batches it accepts at once, prices each BATCH with the pricing kernels and answers
RESULT, sends HEARTBEAT when it has sent nothing for an interval, and treats the dispatcher as
dead after `liveness` silent intervals: it then reconnects with a fresh socket after a backoff
that doubles from 1 s up to 32 s. A DISCONNECT from the dispatcher also means "start over".

With `--curve-server-key`/`--curve-key` it connects with CurveZMQ (compute/curve.py). A
handshake the dispatcher refuses (unknown key, plaintext against a CURVE dispatcher, wrong
server key) is seen on a socket monitor, logged as an error naming the likely cause, and
retried with the same backoff.

On SIGTERM/SIGINT it finishes the batch it is pricing and those already delivered to it, sends
their results, says DISCONNECT, and exits 0. It holds no state: any number of workers may come
and go.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import numpy as np
import zmq
import zmq.utils.monitor

from flashalpha import __version__
from flashalpha.compute import protocol
from flashalpha.compute.curve import HANDSHAKE_FAILURES, ClientKeys
from flashalpha.compute.protocol import Kind, ProtocolError

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 32.0
#: Rows priced between two heartbeat checks.
PRICING_SLICE = 4096


@dataclass
class WorkerOptions:
    connect: str
    credit: int = 2
    heartbeat_interval: float = 1.0
    liveness: int = 3
    threads: int = 1
    #: Exit when this process is no longer our parent (the local fleet's daemon died).
    parent_pid: int | None = None
    #: "HOST:PORT" of the HTTP health endpoint (/healthz, /readyz), for Kubernetes probes.
    health: tuple[str, int] | None = None
    #: CurveZMQ: the dispatcher's public key and this worker's key pair (ClientKeys.load).
    curve: ClientKeys | None = None


class Worker:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.context = zmq.Context()
        self.socket: zmq.Socket | None = None
        self.stopping = False
        self.batches = 0
        self.rows = 0
        self.reconnects = 0
        self.bad_messages = 0
        self.handshake_failures = 0
        self._monitor: zmq.Socket | None = None
        #: monotonic time of the last loop turn (liveness) and of the last message from the
        #: dispatcher (readiness).
        self.last_turn = time.monotonic()
        self.last_heard: float | None = None
        self._price = None
        self._next_heartbeat = 0.0
        self._beat_while_pricing = False

    # -- lifecycle ---------------------------------------------------------------------------

    def request_stop(self, *_: object) -> None:
        self.stopping = True

    def warm_up(self) -> None:
        """Load (or compile) the kernels before saying READY, so no batch waits for numba."""
        from flashalpha.compute.pricer import price_batch, warm_up

        if self.options.threads:
            import numba

            numba.set_num_threads(min(self.options.threads, numba.config.NUMBA_NUM_THREADS))
        started = time.perf_counter()
        warm_up()
        self._price = price_batch
        log.info("worker kernels ready seconds=%.2f", time.perf_counter() - started)

    def run(self) -> int:
        """Serve until stopped; return the exit code."""
        if self.options.health is not None:
            from flashalpha.compute.health import serve_health

            serve_health(self, *self.options.health)
        self.warm_up()
        backoff = BACKOFF_INITIAL
        try:
            while not self.stopping:
                heard = self._session()
                if self.stopping:
                    break
                if heard:
                    backoff = BACKOFF_INITIAL
                log.warning(
                    "worker lost the dispatcher endpoint=%s; reconnecting in %.0fs",
                    self.options.connect,
                    backoff,
                )
                self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                self.reconnects += 1
        finally:
            # Flush the last RESULT and DISCONNECT (each socket lingers at most 2 s).
            self.context.term()
        log.info("worker stopped batches=%d rows=%d", self.batches, self.rows)
        return 0

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            self.last_turn = time.monotonic()
            time.sleep(min(0.1, deadline - time.monotonic()) if deadline > time.monotonic() else 0)
            self._check_parent()

    def _check_parent(self) -> None:
        parent = self.options.parent_pid
        if parent is not None and os.getppid() != parent:
            log.warning("worker's daemon (pid %d) is gone; exiting", parent)
            self.stopping = True

    # -- one connection ----------------------------------------------------------------------

    def _open(self) -> zmq.Socket:
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 2000)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.MAXMSGSIZE, 1 << 30)
        if self.options.curve is not None:
            self.options.curve.apply(sock)
        address = f"inproc://flashalpha-worker-monitor-{uuid.uuid4().hex}"
        sock.monitor(address, sum(HANDSHAKE_FAILURES))
        self._monitor = self.context.socket(zmq.PAIR)
        self._monitor.setsockopt(zmq.LINGER, 0)
        self._monitor.connect(address)
        sock.connect(self.options.connect)
        return sock

    def _handshake_failed(self) -> bool:
        """Read the monitor; log and return True if the dispatcher refused the handshake."""
        try:
            event = zmq.utils.monitor.recv_monitor_message(self._monitor, zmq.NOBLOCK)
        except zmq.Again:
            return False
        kind, value = event["event"], event["value"]
        if kind not in HANDSHAKE_FAILURES:
            return False
        self.handshake_failures += 1
        curve = self.options.curve
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            cause = (
                f"it does not authorize this worker's CURVE key "
                f"{curve.public.decode() if curve else '-'} (add its public certificate to "
                "the directory of compute.curve_authorized_keys)"
            )
        elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and curve is None:
            cause = (
                "it requires CurveZMQ: pass --curve-server-key and --curve-key "
                "(or FLASHALPHA_WORKER_CURVE_SERVER_KEY / FLASHALPHA_WORKER_CURVE_KEY)"
            )
        elif kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            cause = "the security mechanisms differ: does the dispatcher use CURVE?"
        elif curve is not None:
            cause = "it did not accept the CURVE handshake: is --curve-server-key its key?"
        else:
            cause = "the handshake failed without detail"
        log.error(
            "worker refused by the dispatcher endpoint=%s: %s (event %s, code %s)",
            self.options.connect,
            cause,
            HANDSHAKE_FAILURES[kind],
            value,
        )
        return True

    def _session(self) -> bool:
        """One connection: READY, serve, until the dispatcher is lost or we stop.

        Returns whether the dispatcher answered at all (a healthy session resets the backoff).
        """
        options = self.options
        sock = self.socket = self._open()
        interval = options.heartbeat_interval
        heard = False
        try:
            self._send(
                protocol.encode(
                    Kind.READY,
                    protocol.Ready(
                        worker=self.name,
                        pid=os.getpid(),
                        credit=options.credit,
                        heartbeat_interval=interval,
                        version=__version__,
                        threads=options.threads,
                    ),
                )
            )
            liveness = options.liveness
            heard_this_interval = False
            self._next_heartbeat = time.monotonic() + interval
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            poller.register(self._monitor, zmq.POLLIN)
            while not self.stopping:
                self.last_turn = time.monotonic()
                timeout = max(0.0, self._next_heartbeat - self.last_turn)
                ready = dict(poller.poll(int(timeout * 1000) + 1))
                if self._monitor in ready and self._handshake_failed():
                    self.last_heard = None
                    return heard  # refused: back off, then try a new connection
                if sock in ready:
                    frames = sock.recv_multipart(copy=False)
                    heard = heard_this_interval = True
                    self.last_heard = time.monotonic()
                    liveness = options.liveness
                    if not self._handle(frames):
                        return heard  # DISCONNECT: start over
                if time.monotonic() >= self._next_heartbeat:
                    # One interval passed: silent ones count down the dispatcher's liveness.
                    if not heard_this_interval and not self._beat_while_pricing:
                        liveness -= 1
                        if liveness <= 0:
                            self.last_heard = None
                            return heard
                    heard_this_interval = self._beat_while_pricing = False
                    self._send(protocol.encode(Kind.HEARTBEAT, protocol.Heartbeat(time.time_ns())))
                    self._next_heartbeat = time.monotonic() + interval
                self._check_parent()
            self._finish()
            return heard
        finally:
            sock.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None
            sock.close()
            self.socket = None

    def _send(self, frames: list) -> None:
        self.socket.send_multipart(frames, copy=False)

    def _handle(self, frames: list) -> bool:
        """Act on one message; False when the dispatcher said DISCONNECT."""
        try:
            message = protocol.decode(frames)
        except ProtocolError as error:
            self.bad_messages += 1
            log.warning("worker ignored a bad message from the dispatcher: %s", error)
            return True
        if message.kind is Kind.BATCH:
            self._price_and_answer(message)
        elif message.kind is Kind.DISCONNECT:
            log.info("dispatcher said DISCONNECT: %s", message.header.reason)
            return False
        return True

    def _price_and_answer(self, message: protocol.Message) -> None:
        """Price a batch in slices, heartbeating between them: a long batch (American
        contracts price ~100x slower than European ones) must not look like a dead worker."""
        header = message.header
        arrays = message.arrays
        started = time.perf_counter_ns()
        if header.rows <= PRICING_SLICE:
            outputs = self._price(arrays)
        else:
            parts = []
            for start in range(0, header.rows, PRICING_SLICE):
                parts.append(
                    self._price({k: v[start : start + PRICING_SLICE] for k, v in arrays.items()})
                )
                self._heartbeat_if_due()
            outputs = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        elapsed = time.perf_counter_ns() - started
        self._send(protocol.encode_result(header.batch, elapsed, outputs))
        self.batches += 1
        self.rows += header.rows

    def _heartbeat_if_due(self) -> None:
        now = time.monotonic()
        self.last_turn = now
        if now >= self._next_heartbeat:
            self._send(protocol.encode(Kind.HEARTBEAT, protocol.Heartbeat(time.time_ns())))
            self._next_heartbeat = now + self.options.heartbeat_interval
            # The dispatcher's own heartbeats wait in the socket meanwhile: not a silence.
            self._beat_while_pricing = True

    def _finish(self) -> None:
        """Stopping: price what was already delivered, answer it, then say DISCONNECT."""
        sock = self.socket
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._handle(frames)
        self._send(protocol.encode(Kind.DISCONNECT, protocol.Disconnect("worker stopping")))
        log.info("worker said DISCONNECT batches=%d", self.batches)


def run_worker(options: WorkerOptions) -> int:
    """Entry point of `flashalpha worker`: install signal handlers and serve."""
    worker = Worker(options)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, worker.request_stop)
        signal.signal(signal.SIGINT, worker.request_stop)
    return worker.run()
