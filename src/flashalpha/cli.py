"""The `flashalpha` command: run the daemon, query its state, report its status.

Imports are deferred into each subcommand so that `flashalpha snapshot` (which only maps the
shared memory) starts in milliseconds and never pays for numba or the web stack.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_FAILURE = 1
#: No daemon, unknown symbol, bad argument: the user can fix it.
EXIT_USAGE = 2


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"flashalpha: {message}", file=sys.stderr)
    return code


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got '{value}'")
    return host, int(port)


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{value}'")
    return int(value)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got '{value}'") from None


def _underlyings(value: str) -> tuple[str, ...]:
    symbols = tuple(s.strip().upper() for s in value.split(",") if s.strip())
    if not symbols:
        raise argparse.ArgumentTypeError(f"expected SYMBOL[,SYMBOL...], got '{value}'")
    return symbols


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flashalpha",
        description="Self-hosted, streaming options analytics: the live US option market in "
        "shared memory, with implied vols, greeks and surfaces.",
    )
    from flashalpha import __version__

    parser.add_argument("--version", action="version", version=f"flashalpha {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", metavar="FILE", help="TOML configuration file")
    run.add_argument(
        "--feed",
        metavar="SOURCE",
        help="synthetic (default) | polygon | thetadata | replay:PATH",
    )
    run.add_argument("--universe", choices=("demo", "full"), help="synthetic universe")
    run.add_argument(
        "--underlyings", type=_underlyings, metavar="SPY,QQQ,...", help="underlyings to follow"
    )
    run.add_argument("--workers", type=int, metavar="N", help="local pricing workers")
    run.add_argument("--http", type=_host_port, metavar="HOST:PORT", help="HTTP listen address")
    run.add_argument("--data-dir", metavar="DIR", help="data directory (the daily journal files)")
    run.add_argument("--seed", type=int, help="synthetic market seed")
    run.add_argument(
        "--events-per-second", type=float, metavar="N", help="synthetic market event rate"
    )
    run.add_argument(
        "--replay-speed",
        type=float,
        metavar="X",
        help="replay speed: 1 = as recorded (default), 0 = as fast as possible",
    )
    run.add_argument("--capacity", type=_positive_int, metavar="ROWS", help="state option rows")
    run.add_argument("--no-recover", action="store_true", help="do not replay today's journal")
    run.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ERROR")

    snapshot = commands.add_parser(
        "snapshot", help="print one underlying's option chain from the running daemon"
    )
    snapshot.add_argument("underlying", metavar="UNDERLYING")
    snapshot.add_argument("--expiry", type=_date, metavar="YYYY-MM-DD", help="one expiry only")
    snapshot.add_argument("--json", action="store_true", help="JSON rows for programs")
    snapshot.add_argument("--config", metavar="FILE", help="TOML configuration file")

    status = commands.add_parser("status", help="feed rates and lags, seq, rejects, queues")
    status.add_argument("--json", action="store_true", help="JSON for programs")
    status.add_argument("--config", metavar="FILE", help="TOML configuration file")
    status.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="rate sampling window"
    )

    worker = commands.add_parser(
        "worker", help="one stateless pricing worker (what a Kubernetes pod runs)"
    )
    worker.add_argument(
        "--connect",
        required=True,
        type=_endpoint,
        metavar="tcp://HOST:PORT",
        help="the daemon's dispatcher (its compute.bind address)",
    )
    worker.add_argument(
        "--credit", type=_positive_int, default=2, metavar="N", help="batches held at once"
    )
    worker.add_argument(
        "--threads", type=_positive_int, default=1, metavar="N", help="pricing threads"
    )
    worker.add_argument(
        "--heartbeat-interval", type=float, default=1.0, metavar="S", help="seconds"
    )
    worker.add_argument(
        "--liveness", type=_positive_int, default=3, metavar="N", help="silent intervals = dead"
    )
    worker.add_argument(
        "--health",
        type=_host_port,
        metavar="HOST:PORT",
        help="serve /healthz and /readyz (Kubernetes probes)",
    )
    worker.add_argument(
        "--curve-server-key",
        default=os.environ.get("FLASHALPHA_WORKER_CURVE_SERVER_KEY") or None,
        metavar="FILE",
        help="CurveZMQ: the dispatcher's public certificate (server.key of compute-keys; "
        "env FLASHALPHA_WORKER_CURVE_SERVER_KEY)",
    )
    worker.add_argument(
        "--curve-key",
        default=os.environ.get("FLASHALPHA_WORKER_CURVE_KEY") or None,
        metavar="FILE",
        help="CurveZMQ: this worker's secret certificate (NAME.key_secret; "
        "env FLASHALPHA_WORKER_CURVE_KEY)",
    )
    worker.add_argument("--log-level", default="INFO", metavar="LEVEL")
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)

    keys = commands.add_parser(
        "compute-keys",
        help="create CurveZMQ certificates for the dispatcher and remote workers",
    )
    keys.add_argument("directory", metavar="DIR", help="where to write them (created)")
    keys.add_argument(
        "--worker",
        action="append",
        metavar="NAME",
        help="a worker certificate NAME.key[_secret] (repeatable; default: worker)",
    )
    run.add_argument(
        "--polygon-url",
        metavar="WS_URL",
        help="Polygon options WebSocket (default wss://socket.polygon.io/options)",
    )
    run.add_argument(
        "--polygon-rest-url",
        metavar="URL",
        help="Polygon REST API (default https://api.polygon.io)",
    )
    run.add_argument(
        "--thetadata-url",
        metavar="WS_URL",
        help="Theta Terminal stream (default ws://127.0.0.1:25520/v1/events)",
    )

    fake = commands.add_parser(
        "fake-feed",
        help="serve the synthetic market over Polygon's or ThetaData's protocol (for trying "
        "the live connectors locally)",
    )
    fake.add_argument("provider", choices=("polygon", "thetadata"))
    fake.add_argument("--port", type=int, default=0, metavar="P", help="listen port (0: any)")
    fake.add_argument("--host", default="127.0.0.1", metavar="HOST", help="listen address")
    fake.add_argument(
        "--underlyings", type=_underlyings, metavar="SPY,QQQ,...", help="underlyings to serve"
    )
    fake.add_argument(
        "--api-key", metavar="KEY", help="the only Polygon key accepted (default: any)"
    )
    fake.add_argument("--seed", type=int, default=0, help="market seed")
    fake.add_argument(
        "--events-per-second", type=float, default=2_000.0, metavar="N", help="market event rate"
    )
    fake.add_argument(
        "--scripted", action="store_true", help="a small scripted market instead of the synthetic"
    )
    fake.add_argument("--log-level", default="WARNING", metavar="LEVEL")
    return parser


def _endpoint(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in ("tcp", "ipc") or not rest:
        raise argparse.ArgumentTypeError(f"expected tcp://HOST:PORT, got '{value}'")
    if scheme == "tcp":
        host, colon, port = rest.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise argparse.ArgumentTypeError(f"expected tcp://HOST:PORT, got '{value}'")
    return value


def _load_config(args: argparse.Namespace, overrides: dict | None = None):
    from flashalpha.config import load_config

    return load_config(args.config, overrides)


def _run_overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}

    def put(section: str | None, key: str, value) -> None:
        if value is None:
            return
        if section is None:
            overrides[key] = value
        else:
            overrides.setdefault(section, {})[key] = value

    put("feed", "kind", args.feed)
    put("feed", "universe", args.universe)
    put("feed", "underlyings", list(args.underlyings) if args.underlyings else None)
    put("feed", "seed", args.seed)
    put("feed", "events_per_second", args.events_per_second)
    put("feed", "replay_speed", args.replay_speed)
    put("polygon", "url", args.polygon_url)
    put("polygon", "rest_url", args.polygon_rest_url)
    put("thetadata", "url", args.thetadata_url)
    put("state", "capacity", args.capacity)
    put(None, "workers", args.workers)
    put(None, "data_dir", args.data_dir)
    put(None, "log_level", args.log_level)
    if args.http:
        put("http", "host", args.http[0])
        put("http", "port", args.http[1])
    if args.no_recover:
        put("journal", "recover", False)
    return overrides


def cmd_run(args: argparse.Namespace) -> int:
    from flashalpha.config import ConfigError
    from flashalpha.logs import configure_logging
    from flashalpha.state.segment import StateInUseError

    try:
        config = _load_config(args, _run_overrides(args))
        configure_logging(config.log_level)
        from flashalpha.daemon import run_daemon

        return run_daemon(config)
    except (ConfigError, StateInUseError, ValueError) as error:
        return _fail(str(error))


def _attach(args: argparse.Namespace):
    """Attach to the running daemon's state, or explain why not (exit code 2)."""
    from flashalpha.state.reader import StateReader, require_running

    config = _load_config(args)
    reader = StateReader.attach(config.state.shm_name)
    try:
        require_running(reader, config.state.stale_after)
    except Exception:
        reader.close()
        raise
    return reader


def cmd_snapshot(args: argparse.Namespace) -> int:
    import msgspec
    import numpy as np

    from flashalpha.api.schemas import contract_structs
    from flashalpha.config import ConfigError
    from flashalpha.state.rows import expiry_days, sort_chain
    from flashalpha.state.segment import StateUnavailableError

    try:
        reader = _attach(args)
    except (StateUnavailableError, ConfigError) as error:
        return _fail(str(error))
    with reader:
        try:
            underlying = reader.underlying_id(args.underlying)
        except KeyError:
            return _fail(f"unknown underlying '{args.underlying}'")
        rows = reader.rows_of_underlying(underlying)
        if args.expiry is not None:
            expiries = reader.segment.option_column("expiry")[rows]
            rows = rows[expiries == expiry_days(args.expiry)]
            if len(rows) == 0:
                return _fail(f"no {args.underlying.upper()} contracts expire on {args.expiry}")
        records = sort_chain(reader.read_rows(rows))
        underlyings = reader.segment.underlying_column("symbol")[: reader.underlying_count]
        spot = reader.read_underlyings()["spot"][underlying]
        seq = reader.seq
        table = contract_structs(records, np.asarray(underlyings))
    if args.json:
        document = {
            "underlying": args.underlying.upper(),
            "spot": None if spot != spot else float(spot),
            "seq": seq,
            "rows": table,
        }
        sys.stdout.buffer.write(msgspec.json.encode(document) + b"\n")
    else:
        _print_chain(args.underlying.upper(), spot, seq, table)
    return EXIT_OK


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _print_chain(underlying: str, spot: float, seq: int, rows: list[dict]) -> None:
    columns = (
        ("symbol", 22, 0),
        ("bid", 9, 2),
        ("ask", 9, 2),
        ("bid_size", 8, 0),
        ("ask_size", 8, 0),
        ("last", 9, 2),
        ("volume", 8, 0),
        ("open_interest", 9, 0),
        ("iv", 7, 4),
        ("delta", 7, 3),
        ("gamma", 7, 4),
        ("theta", 9, 2),
        ("vega", 8, 3),
    )
    out = sys.stdout
    spot_text = "-" if spot != spot else f"{spot:.2f}"
    out.write(f"{underlying}  spot {spot_text}  contracts {len(rows)}  seq {seq}\n")
    out.write(" ".join(name.replace("_", " ")[:width].rjust(width) for name, width, _ in columns))
    out.write("\n")
    for row in rows:
        out.write(
            " ".join(
                _fmt(getattr(row, name), digits).rjust(width) for name, width, digits in columns
            )
            + "\n"
        )


def cmd_status(args: argparse.Namespace) -> int:
    import time

    import msgspec

    from flashalpha.config import ConfigError
    from flashalpha.state.segment import StateUnavailableError

    try:
        reader = _attach(args)
    except (StateUnavailableError, ConfigError) as error:
        return _fail(str(error))
    with reader:
        first, seq0, t0 = reader.counters(), reader.seq, time.monotonic()
        time.sleep(max(0.0, args.interval))
        second, seq1, t1 = reader.counters(), reader.seq, time.monotonic()
        elapsed = max(t1 - t0, 1e-9)
        last_event = int(reader.segment.header["ts_last_event"])
        report = {
            "seq": seq1,
            "writer_pid": reader.writer_pid,
            "heartbeat_age_s": round(reader.heartbeat_age(), 3),
            "contracts": reader.count,
            "underlyings": reader.underlying_count,
            "rates_per_s": {
                key: round((second[key] - first[key]) / elapsed, 1)
                for key in ("quotes", "trades", "underlying_ticks", "batches")
            },
            "batches_per_s": round((seq1 - seq0) / elapsed, 1),
            "lag_since_last_event_s": None
            if last_event == 0
            else round((time.time_ns() - last_event) / 1e9, 3),
            "totals": second,
            "daemon": reader.status(),
        }
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
        return EXIT_OK
    _print_status(report)
    return EXIT_OK


def _feed_lines(feed: dict) -> list[str]:
    """One line per live feed: health, rate, lag, reconnects (and the arbiter's leader, and
    which feed covers contracts for which stale one)."""
    feeds = feed.get("feeds") or ({feed["name"]: feed} if "links" in feed else {})
    lines = []
    if "leading" in feed:
        lines.append(f"arbiter     leading {feed['leading']}  failovers {feed['failovers']}")
        for name, item in feeds.items():
            covering = item.get("covering_for") or {}
            if covering or item.get("rows_handed_back"):
                lines.append(
                    f"  {name:<12} covering "
                    + (", ".join(f"{n} for {stale}" for stale, n in covering.items()) or "none")
                    + f"  handed back {item.get('rows_handed_back', 0)}"
                )
    for name, item in feeds.items():
        for link in item.get("links", []):
            lag = link.get("lag_s", {})
            lines.append(
                f"  {link['name']:<12} {link['state']:<11} healthy {item.get('healthy')}  "
                f"{link['events_per_s']:,.0f} ev/s  lag p99 {lag.get('p99')}s  "
                f"reconnects {link['reconnects']}  decode errors {link['decode_errors']}  "
                f"last msg {link['since_last_message_s']}s ago"
                + (f"  ({link['last_error']})" if link.get("last_error") else "")
            )
        if not item.get("links"):
            lines.append(f"  {name}")
    return lines


def _print_status(report: dict) -> None:
    daemon = report["daemon"]
    feed = daemon.get("feed", {})
    lines = [
        f"daemon      pid {report['writer_pid']}  version {daemon.get('version', '?')}  "
        f"heartbeat {report['heartbeat_age_s']}s ago",
        f"state       seq {report['seq']}  contracts {report['contracts']}  "
        f"underlyings {report['underlyings']}",
        f"feed        {feed.get('kind', '?')}  running {feed.get('running', '?')}  "
        f"lag {report['lag_since_last_event_s']}s",
        "rates/s     "
        + "  ".join(f"{key} {value:,.0f}" for key, value in report["rates_per_s"].items()),
    ]
    lines.extend(_feed_lines(feed))
    loop_lag = daemon.get("loop_lag") or {}
    if loop_lag.get("samples"):
        lines.append(
            f"loop lag    p50 {loop_lag['p50_ms']} ms  p99 {loop_lag['p99_ms']} ms  "
            f"max {loop_lag['max_ms']} ms  (max since start {loop_lag['max_since_start_ms']} ms)"
        )
    totals = report["totals"]
    rejects = {
        k.removeprefix("rejected_"): v for k, v in totals.items() if k.startswith("rejected_")
    }
    lines.append("rejects     " + "  ".join(f"{k} {v}" for k, v in rejects.items()))
    for event in daemon.get("events", []):
        lines.append(
            f"subscriber  {event['name']}  pending {event['pending']}  "
            f"delivered {event['delivered']}  coalesced {event['coalesced']}"
        )
    for name, service in daemon.get("services", {}).items():
        if name == "compute" and service:
            lines.extend(_compute_lines(service))
            continue
        lines.append(f"service     {name}  {service}")
    for error in daemon.get("last_errors", []):
        lines.append(f"error       {error}")
    print("\n".join(lines))


def cmd_worker(args: argparse.Namespace) -> int:
    from flashalpha.compute.worker import WorkerOptions, run_worker
    from flashalpha.logs import configure_logging

    configure_logging(args.log_level)
    if not 0.01 <= args.heartbeat_interval <= 60:
        return _fail(f"--heartbeat-interval {args.heartbeat_interval}: expected 0.01..60 seconds")
    if (args.curve_server_key is None) != (args.curve_key is None):
        missing = "--curve-key" if args.curve_key is None else "--curve-server-key"
        return _fail(
            f"CurveZMQ needs both --curve-server-key and --curve-key; {missing} is missing"
        )
    curve = None
    if args.curve_key is not None:
        from flashalpha.compute.curve import ClientKeys
        from flashalpha.config import ConfigError

        try:
            curve = ClientKeys.load(args.curve_server_key, args.curve_key)
        except ConfigError as error:
            return _fail(str(error))
    options = WorkerOptions(
        connect=args.connect,
        curve=curve,
        credit=args.credit,
        heartbeat_interval=args.heartbeat_interval,
        liveness=args.liveness,
        threads=args.threads,
        parent_pid=args.parent_pid,
        health=args.health,
    )
    return run_worker(options)


def cmd_compute_keys(args: argparse.Namespace) -> int:
    from flashalpha.compute.curve import create_keys
    from flashalpha.config import ConfigError

    workers = args.worker or ["worker"]
    try:
        made = create_keys(args.directory, workers)
    except (ConfigError, OSError) as error:
        return _fail(str(error))
    root = os.path.abspath(os.path.expanduser(args.directory))
    server = "created" if made["server"] else "kept (it exists)"
    print(f"dispatcher  {root}/server.key_secret ({server}; secret: the daemon host only)")
    print(f"            {root}/server.key (public: give it to every worker)")
    for path in made["workers"]:
        kind = "secret: that worker only" if path.suffix == ".key_secret" else "public"
        print(f"worker      {path} ({kind})")
    print(f"authorized  {root}/authorized/ ({', '.join(p.name for p in made['authorized'])})")
    name = workers[0]
    print(
        "\nDaemon (TOML [compute], or FLASHALPHA_COMPUTE_CURVE_SECRET_KEY / "
        "FLASHALPHA_COMPUTE_CURVE_AUTHORIZED_KEYS):\n"
        f'  curve_secret_key = "{root}/server.key_secret"\n'
        f'  curve_authorized_keys = "{root}/authorized"\n'
        "Worker:\n"
        f"  flashalpha worker --connect tcp://HOST:5557 --curve-server-key {root}/server.key "
        f"--curve-key {root}/{name}.key_secret\n"
        "More workers later: `flashalpha compute-keys DIR --worker NAME` (the running daemon "
        "picks new keys in authorized/ up by itself)."
    )
    return EXIT_OK


def _compute_lines(compute: dict) -> list[str]:
    """The pricing fleet's part of `flashalpha status`."""
    fleet = compute.get("local_fleet") or {}
    latency = compute.get("tick_to_greeks_ms") or {}
    lines = [
        f"compute     workers {compute['workers']}  in flight {compute['batches_in_flight']}  "
        f"queued rows {compute['queued_rows']}  lag {compute['repricing_lag_s']}s  "
        f"full sweep {compute['full_sweep_s']}s  sweeps {compute['sweeps_completed']}",
        f"compute     priced {compute['rows_priced']:,}  requeues {compute['requeues']} "
        f"{compute['requeues_by_reason']}  rejects {compute['rejects']}  "
        f"tick-to-greeks p50 {latency.get('p50')} ms p99 {latency.get('p99')} ms",
        f"compute     endpoints {' '.join(compute['endpoints'])}"
        + (
            f"  local fleet {fleet['running']}/{fleet['target']} restarts {fleet['restarts']}"
            if fleet
            else ""
        ),
    ]
    curve = compute.get("curve")
    failures = compute.get("handshake_failures_by_reason") or {}
    if curve or compute.get("handshake_failures"):
        lines.append(
            "compute     security "
            + (
                f"curve  authorized keys {curve['authorized_keys']}  denied {curve['denied_keys']}  "
                if curve
                else "none  "
            )
            + f"handshake failures {compute.get('handshake_failures', 0)} "
            + " ".join(f"{k} {v}" for k, v in failures.items())
        )
    if curve and curve.get("last_denied_key"):
        lines.append(f"compute     last denied key {curve['last_denied_key']}")
    for error in (curve or {}).get("key_errors", []):
        lines.append(f"error       {error}")
    for error in compute.get("bind_errors", []):
        lines.append(f"error       {error}")
    if compute.get("last_reject"):
        lines.append(f"compute     last reject {compute['last_reject']}")
    for worker in compute.get("worker_list", []):
        lines.append(
            f"worker      {worker['name']}  in flight {worker['in_flight']}/{worker['credit']}  "
            f"batches {worker['completed']}  rows/s {worker['rows_per_s']:,}  "
            f"seen {worker['last_seen_s']}s ago"
            + (f"  key {worker['key']}" if worker.get("key") else "")
        )
    return lines


COMMANDS = {
    "run": cmd_run,
    "snapshot": cmd_snapshot,
    "status": cmd_status,
    "worker": cmd_worker,
    "compute-keys": cmd_compute_keys,
}


def cmd_fake_feed(args: argparse.Namespace) -> int:
    import asyncio

    from flashalpha.feeds.fakes import serve_fake
    from flashalpha.logs import configure_logging

    configure_logging(args.log_level)
    try:
        asyncio.run(
            serve_fake(
                args.provider,
                args.host,
                args.port,
                underlyings=args.underlyings or ("SPY",),
                api_key=args.api_key,
                seed=args.seed,
                events_per_second=args.events_per_second,
                scripted=args.scripted,
            )
        )
    except OSError as error:
        return _fail(f"cannot listen on {args.host}:{args.port}: {error}")
    return EXIT_OK


COMMANDS["fake-feed"] = cmd_fake_feed


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `flashalpha snapshot SPY | head`: the reader went away; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
