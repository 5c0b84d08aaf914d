"""Configuration: frozen msgspec Structs, from a TOML file, FLASHALPHA_* variables and flags.

Precedence, lowest first: defaults, the TOML file (`--config FILE`), the environment, then
command-line flags. Environment variables name a section and a field, `FLASHALPHA_STATE_CAPACITY`
or `FLASHALPHA_FEED_EVENTS_PER_SECOND`; top-level fields have no section
(`FLASHALPHA_DATA_DIR`). Invalid values fail at startup with a message naming the value.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import msgspec

_T = TypeVar("_T")


class StateConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The shared-memory market state."""

    shm_name: str = "flashalpha"
    capacity: int = 2_000_000
    underlying_capacity: int = 16_384
    #: A segment whose writer's heartbeat is older than this (seconds) counts as stale.
    stale_after: float = 5.0
    heartbeat_interval: float = 0.5


class JournalConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The append-only binary journal of every normalized batch."""

    enabled: bool = True
    #: Defaults to `<data_dir>/journal`.
    directory: str | None = None
    #: "never": leave it to the OS; "batch": fsync each batch; "interval": every fsync_interval.
    fsync: Literal["never", "batch", "interval"] = "interval"
    fsync_interval: float = 1.0
    #: Rebuild today's state from today's journal before the feed starts.
    recover: bool = True


class FeedConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where market data comes from."""

    #: "synthetic", "polygon", "thetadata" or "replay:PATH".
    kind: str = "synthetic"
    universe: Literal["demo", "full"] = "demo"
    #: Underlyings to follow (live feeds); empty means the universe's.
    underlyings: tuple[str, ...] = ()
    seed: int = 0
    events_per_second: float = 20_000.0
    tick_interval: float = 0.05
    #: Replay speed: 1.0 = as recorded, 0 = as fast as possible.
    replay_speed: float = 1.0


class PolygonConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Polygon's options WebSocket and REST API (`feeds.polygon`; docs/FEEDS.md)."""

    #: Real-time host; wss://delayed.polygon.io/options is the 15-minute delayed one.
    url: str = "wss://socket.polygon.io/options"
    rest_url: str = "https://api.polygon.io"
    #: None: the POLYGON_API_KEY environment variable.
    api_key: str | None = None
    #: WebSocket connections to spread quote subscriptions over (the plan allows N).
    connections: int = 1
    #: Quote subscriptions one connection may hold (Polygon's limit is 1,000).
    quotes_per_connection: int = 1000
    #: Nearest expiries / strikes per side of the money to quote (0 = no limit).
    quote_expiries: int = 0
    quote_strikes: int = 0
    #: "expiry": nearest expiries first; "moneyness": strikes nearest the money first.
    quote_order: Literal["expiry", "moneyness"] = "expiry"
    #: "contracts": T.<contract> for every contract followed; "all": T.*; "none".
    trades: Literal["contracts", "all", "none"] = "contracts"
    #: Also subscribe A. (per second) or AM. (per minute) aggregates (decoded and counted).
    aggregates: Literal["none", "second", "minute"] = "none"
    #: Parameters per subscribe/unsubscribe message.
    subscribe_batch: int = 500
    #: REST requests per second and results per snapshot page.
    rest_rate: float = 5.0
    rest_page_limit: int = 250
    stale_after: float = 30.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    healthy_after: float = 30.0
    open_timeout: float = 10.0


class ThetaDataConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """ThetaData's Theta Terminal: its local stream and REST API (`feeds.thetadata`)."""

    url: str = "ws://127.0.0.1:25520/v1/events"
    #: None: the terminal's REST port (25510) on the stream's host when the stream is on the
    #: terminal's default port 25520, else the stream's own host and port.
    rest_url: str | None = None
    #: Quote streams to request (ThetaData's tiers allow 10,000 to 20,000).
    quote_streams: int = 10_000
    quote_expiries: int = 0
    quote_strikes: int = 0
    quote_order: Literal["expiry", "moneyness"] = "expiry"
    #: "contracts": a TRADE stream per contract; "bulk": the full trade stream (STREAM_BULK).
    trades: Literal["contracts", "bulk", "none"] = "contracts"
    rest_rate: float = 20.0
    #: The terminal sends a STATUS heartbeat about once a second.
    stale_after: float = 5.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    healthy_after: float = 30.0
    open_timeout: float = 10.0


class ArbiterConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Several feeds at once (`--feed polygon,thetadata`): `feeds.arbiter`."""

    #: A feed silent this long (seconds) for the contracts it covers is failed over.
    failover_after: float = 5.0
    #: Seconds a trade is remembered to drop the other feed's copy of it.
    duplicate_window: float = 10.0
    #: Seconds a failed-over feed must stay healthy before the contracts another feed covered
    #: for it are handed back (no less than the feeds' `stale_after`, so that a reconnect to a
    #: silent upstream is seen as stale again first; Polygon's is 30).
    release_after: float = 30.0


class MarketConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Market parameters not carried by feeds."""

    #: Flat continuously compounded risk-free rate, decimal per year.
    rate: float = 0.045


class EventsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Thresholds of derived events."""

    volume_spike_min_size: int = 500
    volume_spike_oi_fraction: float = 0.25


class HttpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8000


class ApiConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The HTTP API (REST, OpenAPI, metrics, the UI build); see docs/API.md."""

    #: API keys; when any is set every /api and /hubs request needs one (`X-Api-Key` header,
    #: `Authorization: Bearer KEY`, or `access_token` query on /hubs). Env: comma-separated.
    keys: tuple[str, ...] = ()
    #: Origins allowed by CORS ("*" for any); empty sends no CORS headers.
    cors_origins: tuple[str, ...] = ()
    #: Directory of the UI build; None: <checkout>/web/dist, else the packaged api/static.
    ui_dir: str | None = None
    #: Chains with more contracts than this are rendered on a thread, off the daemon's loop.
    off_loop_rows: Annotated[int, msgspec.Meta(ge=0)] = 4096


_Positive = Annotated[_T, msgspec.Meta(gt=0)]


class HubConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The SignalR hub at /hubs/market (docs/PROTOCOL.md, "Hub protocol")."""

    #: Updates are flushed to clients at most this often, rows conflated per contract.
    push_interval_ms: _Positive[int] = 100
    #: Bytes queued for one connection beyond which its updates are conflated, not queued.
    send_buffer_bytes: _Positive[int] = 1024 * 1024
    #: Seconds a connection may stay behind (conflating, unable to drain) before it is closed.
    slow_client_timeout: _Positive[float] = 10.0
    #: Seconds between server pings when nothing else was sent (SignalR KeepAliveInterval).
    keep_alive_interval: _Positive[float] = 15.0
    #: Seconds without any message from a client before it is closed (ClientTimeoutInterval).
    client_timeout: _Positive[float] = 30.0
    #: Seconds a new connection has to send its handshake.
    handshake_timeout: _Positive[float] = 15.0
    #: Largest message a client may send, in bytes.
    max_message_bytes: _Positive[int] = 64 * 1024


class ComputeConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The pricing fleet: dispatcher (ROUTER in the daemon) and workers (docs/OPERATIONS.md)."""

    #: Where remote workers connect (tcp://HOST:PORT; port * = any free port). Local workers
    #: of `--workers N` use a private ipc endpoint. Use tcp://0.0.0.0:5557 for K8s pods.
    bind: str = "tcp://127.0.0.1:5557"
    #: Rows per batch: adaptive between these, aiming at `target_batch_seconds` of a worker.
    min_batch: _Positive[int] = 256
    max_batch: _Positive[int] = 131_072
    #: Rows of a worker's first batch, before its speed is known.
    initial_batch: _Positive[int] = 2048
    target_batch_seconds: _Positive[float] = 0.05
    #: Batches one worker may hold at once (its READY may ask for fewer).
    max_credit: _Positive[int] = 4
    #: A batch not back after max(batch_timeout, deadline_factor x its expected time) is
    #: requeued and its worker gets no new work until it answers.
    batch_timeout: _Positive[float] = 5.0
    deadline_factor: _Positive[float] = 10.0
    #: Heartbeats both ways; a peer silent for interval x liveness is dead.
    heartbeat_interval: _Positive[float] = 1.0
    heartbeat_liveness: _Positive[int] = 3
    #: Every contract is repriced at least this often (seconds), ticks or not.
    sweep_interval: _Positive[float] = 10.0
    #: A result whose row's quote changed while it was priced is dropped, unless the row's
    #: greeks are older than this (seconds): then it is written (and the row priced again).
    max_greeks_age: _Positive[float] = 1.0
    #: Rate curve: (days to expiry, continuously compounded rate) points, linear in between,
    #: flat beyond; empty means the flat `market.rate`.
    rate_curve: tuple[tuple[float, float], ...] = ()
    #: Seconds the daemon waits at start for its local workers to say READY.
    ready_timeout: _Positive[float] = 60.0
    #: Numba threads per local worker.
    worker_threads: _Positive[int] = 1
    #: CurveZMQ for remote workers (docs/OPERATIONS.md, "Security"): the dispatcher's secret
    #: certificate (`server.key_secret` of `flashalpha compute-keys`) and the directory of the
    #: authorized workers' public certificates (`*.key`, re-read when it changes). Both or
    #: neither; when set, `bind` accepts only those workers. The local fleet is unaffected.
    curve_secret_key: str | None = None
    curve_authorized_keys: str | None = None

    def __post_init__(self) -> None:
        if (self.curve_secret_key is None) != (self.curve_authorized_keys is None):
            given, missing = (
                ("curve_secret_key", "curve_authorized_keys")
                if self.curve_authorized_keys is None
                else ("curve_authorized_keys", "curve_secret_key")
            )
            raise ValueError(
                f"compute.{given} is set but compute.{missing} is not: CurveZMQ needs both "
                f"(FLASHALPHA_COMPUTE_{missing.upper()})"
            )

    @property
    def curve(self) -> bool:
        """Remote workers must authenticate with CurveZMQ."""
        return self.curve_secret_key is not None


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Everything the daemon and the CLI read."""

    data_dir: str = "~/.local/share/flashalpha"
    log_level: str = "INFO"
    #: Pricing workers to start locally; None means the CPU count.
    workers: int | None = None
    state: StateConfig = StateConfig()
    journal: JournalConfig = JournalConfig()
    feed: FeedConfig = FeedConfig()
    market: MarketConfig = MarketConfig()
    events: EventsConfig = EventsConfig()
    http: HttpConfig = HttpConfig()
    polygon: PolygonConfig = PolygonConfig()
    thetadata: ThetaDataConfig = ThetaDataConfig()
    arbiter: ArbiterConfig = ArbiterConfig()
    api: ApiConfig = ApiConfig()
    hub: HubConfig = HubConfig()
    compute: ComputeConfig = ComputeConfig()

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def journal_path(self) -> Path:
        directory = self.journal.directory
        return Path(directory).expanduser() if directory else self.data_path / "journal"


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it."""


ENV_PREFIX = "FLASHALPHA_"
_SECTIONS = {
    name: field_type
    for name, field_type in Config.__annotations__.items()
    if name
    in {
        "state",
        "journal",
        "feed",
        "market",
        "events",
        "http",
        "api",
        "hub",
        "polygon",
        "thetadata",
        "arbiter",
        "compute",
    }
}


def _environment(environ: dict[str, str]) -> dict[str, Any]:
    sections = {f.name for f in msgspec.structs.fields(Config) if f.name in _SECTIONS}
    top_level = {f.name for f in msgspec.structs.fields(Config)} - sections
    values: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in top_level:
            values[name] = raw
            continue
        section, _, field = name.partition("_")
        if section in sections and field:
            value: Any = raw
            if field in {"underlyings", "keys", "cors_origins"}:
                value = [s.strip() for s in raw.split(",") if s.strip()]
            values.setdefault(section, {})[field] = value
    return values


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Build the configuration; `ConfigError` names the file, variable or value at fault."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"config file '{path}' does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file '{path}' is not valid TOML: {error}") from None
    data = _merge(data, _environment(dict(os.environ if environ is None else environ)))
    data = _merge(data, overrides or {})
    try:
        return msgspec.convert(data, Config, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"invalid configuration: {error}") from None
