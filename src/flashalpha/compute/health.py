"""HTTP probes of a worker (`flashalpha worker --health HOST:PORT`), for Kubernetes.

- `GET /healthz`: 200 while the worker's loop turns (a wedged worker fails it and is
  restarted); 503 otherwise.
- `GET /readyz`: 200 while the worker hears from its dispatcher; 503 while it is connecting
  or reconnecting.

Served by a daemon thread; it only reads two timestamps the worker's loop writes.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flashalpha.compute.worker import Worker

#: The loop must have turned within this many heartbeat intervals (a batch may take a while).
_STALL_INTERVALS = 30


def probe(worker: Worker, path: str) -> tuple[int, dict]:
    now = time.monotonic()
    interval = worker.options.heartbeat_interval
    turned = now - worker.last_turn
    body = {
        "worker": worker.name,
        "batches": worker.batches,
        "rows": worker.rows,
        "reconnects": worker.reconnects,
        "loop_age_s": round(turned, 3),
        "connected": worker.last_heard is not None,
    }
    if path == "/healthz":
        return (200 if turned < max(30.0, _STALL_INTERVALS * interval) else 503), body
    if path == "/readyz":
        heard = worker.last_heard
        alive = heard is not None and now - heard < interval * worker.options.liveness
        return (200 if alive else 503), body
    return 404, {"error": f"unknown path '{path}': /healthz or /readyz"}


def serve_health(worker: Worker, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = probe(worker, self.path.split("?", 1)[0])
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:  # probes every few seconds: stay quiet
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
