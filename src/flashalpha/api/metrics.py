"""`/metrics`: the daemon's counters in Prometheus text format.

A custom collector reads everything at scrape time (state header counters, dispatcher and hub
statistics), so nothing on the tick path updates a metric object. Each app has its own
`CollectorRegistry`; nothing is registered globally.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from flashalpha.api.hub import MarketHub

#: Media type of the Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_EVENT_COUNTERS = ("quotes", "trades", "underlying_ticks", "open_interest", "batches")


class DaemonCollector:
    """Collects the daemon's state, events, hub and HTTP figures on each scrape."""

    def __init__(self, daemon: Any, hub: MarketHub, http_responses: Counter) -> None:
        self.daemon = daemon
        self.hub = hub
        self.http_responses = http_responses

    def collect(self) -> Iterator[Metric]:
        reader = self.daemon.reader
        if reader is not None:
            yield from self._state(reader)
        yield from self._events()
        yield from self._hub()
        http = CounterMetricFamily(
            "flashalpha_http_responses", "HTTP responses sent, by status code", labels=["code"]
        )
        for code, count in sorted(self.http_responses.items()):
            http.add_metric([str(code)], count)
        yield http

    def _state(self, reader: Any) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "flashalpha_seq", "Sequence number of the last applied batch", reader.seq
        )
        yield GaugeMetricFamily("flashalpha_contracts", "Listed option contracts", reader.count)
        yield GaugeMetricFamily(
            "flashalpha_underlyings", "Listed underlyings", reader.underlying_count
        )
        counters = reader.counters()
        events = CounterMetricFamily(
            "flashalpha_events", "Events applied to the state, by kind", labels=["kind"]
        )
        for name in _EVENT_COUNTERS:
            events.add_metric([name], counters.get(name, 0))
        yield events
        rejects = CounterMetricFamily(
            "flashalpha_rejects",
            "Events rejected (by the state or at the edge), by kind",
            labels=["kind"],
        )
        for name, value in counters.items():
            if name.startswith("rejected_"):
                rejects.add_metric([name.removeprefix("rejected_")], value)
        yield rejects
        yield GaugeMetricFamily(
            "flashalpha_uptime_seconds",
            "Seconds since the daemon started",
            (time.time_ns() - self.daemon.started_ns) / 1e9,
        )

    def _events(self) -> Iterator[Metric]:
        dispatcher = self.daemon.dispatcher
        published = CounterMetricFamily(
            "flashalpha_events_published",
            "Publications by the events dispatcher, by kind",
            labels=["kind"],
        )
        for kind, count in dispatcher.published.items():
            published.add_metric([kind.value], count)
        yield published
        pending = GaugeMetricFamily(
            "flashalpha_subscriber_pending",
            "Changed ids waiting for an events subscriber",
            labels=["subscriber"],
        )
        coalesced = CounterMetricFamily(
            "flashalpha_subscriber_coalesced",
            "Publications merged into another for an events subscriber",
            labels=["subscriber"],
        )
        for entry in dispatcher.stats():
            pending.add_metric([entry["name"]], entry["pending"])
            coalesced.add_metric([entry["name"]], entry["coalesced"])
        yield pending
        yield coalesced
        lag = getattr(self.daemon, "loop_lag", None)
        if lag is not None and (stats := lag.stats())["samples"]:
            gauge = GaugeMetricFamily(
                "flashalpha_loop_lag_seconds",
                "How late the daemon's event loop ran a 10 ms timer, over its last samples",
                labels=["quantile"],
            )
            for quantile, key in (("0.5", "p50_ms"), ("0.99", "p99_ms"), ("1", "max_ms")):
                gauge.add_metric([quantile], stats[key] / 1e3)
            yield gauge

    def _hub(self) -> Iterator[Metric]:
        hub, stats = self.hub, self.hub.stats
        yield GaugeMetricFamily(
            "flashalpha_hub_connections", "Open hub connections", len(hub.connections)
        )
        topics = GaugeMetricFamily(
            "flashalpha_hub_subscriptions", "Hub subscriptions, by topic kind", labels=["kind"]
        )
        by_kind = Counter()
        for topic in hub.topics.values():
            by_kind[topic.kind] += len(topic.subscribers)
        for kind in ("chain", "contract", "underlying"):
            topics.add_metric([kind], by_kind[kind])
        yield topics
        yield GaugeMetricFamily(
            "flashalpha_hub_queued_bytes",
            "Bytes queued for hub connections, not yet written",
            sum(c.queued_bytes for c in hub.connections.values()),
        )
        for name, help_text, value in (
            (
                "flashalpha_hub_connections_opened",
                "Hub connections accepted",
                stats.connections_opened,
            ),
            (
                "flashalpha_hub_slow_closes",
                "Hub connections closed for not reading",
                stats.slow_closed,
            ),
            (
                "flashalpha_hub_timeouts",
                "Hub connections closed by a handshake or client timeout",
                stats.timed_out,
            ),
            (
                "flashalpha_hub_protocol_errors",
                "Hub connections closed for a protocol error",
                stats.protocol_errors,
            ),
            ("flashalpha_hub_invocations", "Hub method invocations", stats.invocations),
            ("flashalpha_hub_snapshots", "Topic snapshots rendered", stats.snapshots),
            (
                "flashalpha_hub_snapshots_shared",
                "Subscriptions served an already rendered snapshot",
                stats.snapshots_shared,
            ),
            (
                "flashalpha_hub_invocation_errors",
                "Hub invocations completed with an error",
                stats.invocation_errors,
            ),
            (
                "flashalpha_hub_flushes",
                "Hub flushes (one per push interval with changes)",
                stats.flushes,
            ),
            (
                "flashalpha_hub_flush_seconds",
                "Time spent rendering and fanning out flushes",
                stats.flush_seconds,
            ),
            ("flashalpha_hub_updates", "Update messages queued to connections", stats.updates),
            (
                "flashalpha_hub_conflated",
                "Updates conflated for connections that were behind",
                stats.conflated,
            ),
            (
                "flashalpha_hub_messages_sent",
                "Hub frames written (updates, completions, pings, ...)",
                stats.messages_sent,
            ),
            ("flashalpha_hub_bytes_sent", "Hub bytes written", stats.bytes_sent),
        ):
            yield CounterMetricFamily(name, help_text, value)


def metrics_registry(daemon: Any, hub: MarketHub, http_responses: Counter) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon, hub, http_responses))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
