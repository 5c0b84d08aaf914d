"""The real daemon as a subprocess: snapshot from another process, stale segments, replay.

Each test starts `flashalpha run` on the synthetic demo market with its own shared-memory name
and data directory, and talks to it only as a user would: other `flashalpha` processes and a
read-only attach to its segment.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from flashalpha.feeds.replay import JournalReplay
from flashalpha.instruments import InstrumentRegistry
from flashalpha.state.engine import MarketState
from flashalpha.state.layout import OPTION_COLUMNS, Group
from flashalpha.state.reader import StateReader

pytestmark = pytest.mark.integration

DEMO = ["--capacity", "200000", "--workers", "0"]
MARKET_COLUMNS = [c.name for c in OPTION_COLUMNS if c.group in (Group.STATIC, Group.MARKET)]


def snapshot_json(daemon, *args: str) -> dict:
    result = daemon.cli("snapshot", "SPY", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_snapshot_from_another_process_shows_live_quotes(daemon_factory):
    daemon = daemon_factory(DEMO).start(ready_contracts=1000)
    first = snapshot_json(daemon)
    assert first["underlying"] == "SPY" and first["spot"] > 0
    rows = first["rows"]
    assert len(rows) > 1000
    row = rows[0]
    assert row["symbol"].startswith("O:SPY") and len(row["osi"]) == 21
    assert row["right"] in ("C", "P") and row["expiry"] >= time.strftime("%Y-%m-%d")
    quoted = [r for r in rows if r["bid"] is not None]
    assert len(quoted) > 0.9 * len(rows)
    assert all(r["bid"] <= r["ask"] for r in quoted)
    # Live: quotes keep changing between two snapshots.
    time.sleep(1.5)
    second = snapshot_json(daemon)
    assert second["seq"] > first["seq"]
    before = {r["symbol"]: (r["bid"], r["ask"]) for r in rows}
    changed = sum(before.get(r["symbol"]) != (r["bid"], r["ask"]) for r in second["rows"])
    assert changed > 10
    # One expiry, and the human table.
    expiry = rows[0]["expiry"]
    only = snapshot_json(daemon, "--expiry", expiry)
    assert {r["expiry"] for r in only["rows"]} == {expiry}
    table = daemon.cli("snapshot", "SPY")
    assert table.returncode == 0 and "SPY" in table.stdout.splitlines()[0]
    status = daemon.cli("status", "--json", "--interval", "0.5")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["rates_per_s"]["quotes"] > 0 and report["daemon"]["feed"]["running"]
    assert daemon.stop() == 0
    assert not os.path.exists(f"/dev/shm/{daemon.shm_name}")


def test_clear_errors_for_users(daemon_factory):
    daemon = daemon_factory(DEMO)
    missing = daemon.cli("snapshot", "SPY")
    assert missing.returncode == 2 and "no flashalpha daemon is running" in missing.stderr
    daemon.start()
    unknown = daemon.cli("snapshot", "NOPE")
    assert unknown.returncode == 2 and "unknown underlying 'NOPE'" in unknown.stderr
    bad_date = daemon.cli("snapshot", "SPY", "--expiry", "2026-13-01")
    assert bad_date.returncode == 2 and "2026-13-01" in bad_date.stderr
    second = daemon_factory(DEMO)
    result = second.cli("run", *DEMO, "--http", "127.0.0.1:1")
    assert result.returncode == 2 and "already running" in result.stderr
    assert daemon.process.poll() is None


def test_kill_9_leaves_a_stale_segment_that_the_next_start_replaces(daemon_factory):
    daemon = daemon_factory(DEMO).start(ready_contracts=1000)
    time.sleep(0.5)
    daemon.kill()
    assert os.path.exists(f"/dev/shm/{daemon.shm_name}")
    stale = daemon.cli("snapshot", "SPY")
    assert stale.returncode == 2 and "no flashalpha daemon is running" in stale.stderr

    # The crashed run's state, exactly as it was, is what the journal rebuilds.
    with StateReader.attach(daemon.shm_name) as reader:
        held_seq = reader.seq
        held = reader.read_rows(np.arange(reader.count, dtype=np.uint32))
    journal = daemon.data_dir / "journal"
    registry = InstrumentRegistry(200_000)
    rebuilt = MarketState.create(daemon.shm_name + "-rebuilt", 200_000)
    try:
        for batch in JournalReplay(journal, registry).batches(until_seq=held_seq):
            rebuilt.add_listings(
                registry.option_static(rebuilt.count, registry.count),
                registry.underlying_static(rebuilt.underlying_count, registry.underlying_count),
            )
            rebuilt.apply(batch)
        assert rebuilt.seq == held_seq
        copy = StateReader(rebuilt.segment).read_rows(np.arange(len(held), dtype=np.uint32))
        for column in MARKET_COLUMNS:
            np.testing.assert_array_equal(copy[column], held[column], err_msg=column)
    finally:
        rebuilt.close()

    restarted = daemon_factory(DEMO).start(ready_contracts=1000)
    assert "replacing stale state segment" in restarted.log()
    assert "recovered from journal" in restarted.log()
    restarted.wait_until(lambda reader: reader.seq > held_seq)  # and the feed goes on
    assert restarted.stop() == 0


def test_replay_feed_plays_a_journal_back(daemon_factory, tmp_path):
    live = daemon_factory(DEMO).start(ready_contracts=1000)
    time.sleep(1.0)
    assert live.stop() == 0
    journal = next((live.data_dir / "journal").glob("*.journal"))
    replay = daemon_factory(
        [
            *DEMO,
            "--feed",
            f"replay:{journal}",
            "--replay-speed",
            "0",
            "--data-dir",
            str(tmp_path / "replay"),
        ],
        name=live.shm_name + "-replay",
    ).start(ready_contracts=1000)
    replay.wait_until(lambda r: r.status().get("feed", {}).get("finished") is True, 60)
    rows = snapshot_json(replay)["rows"]
    assert len(rows) > 1000 and any(r["bid"] is not None for r in rows)
    assert replay.stop() == 0
