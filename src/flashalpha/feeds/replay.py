"""Replay feed: plays a journal back as a live feed, at recorded speed or as fast as possible.

The journal's listings re-register every contract and underlying in this daemon's registry;
the recorded row ids are then translated to this registry's ids (a mapping that follows the
listing blocks in file order, so a file written by several daemon runs replays correctly).
The daemon also uses `JournalReplay.batches()` to rebuild today's state on start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from flashalpha.instruments import InstrumentRegistry
from flashalpha.journal import JournalEntry, journal_files, read_entries
from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import ExerciseStyle

log = logging.getLogger(__name__)

#: Row id that no registry holds: events mapped to it are rejected by the state as unknown.
UNMAPPED = np.uint32(0xFFFFFFFF)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def decode_osi_array(osi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split an array of 21-byte OSI symbols into roots, expiry days, strikes (1/1000 $), rights.

    Vectorized: a journal of 1.8M listings decodes in well under a second.
    """
    chars = np.frombuffer(np.ascontiguousarray(osi, "S21").tobytes(), np.uint8).reshape(-1, 21)
    roots = np.char.strip(np.ascontiguousarray(chars[:, :6]).view("S6").ravel()).astype(str)
    digits = chars.astype(np.int64) - ord("0")

    def number(start: int, stop: int) -> np.ndarray:
        value = np.zeros(len(chars), np.int64)
        for column in range(start, stop):
            value = value * 10 + digits[:, column]
        return value

    years, months, days = 2000 + number(6, 8), number(8, 10), number(10, 12)
    dates = (
        (years - 1970).astype("datetime64[Y]").astype("datetime64[M]")
        + (months - 1).astype("timedelta64[M]")
    ).astype("datetime64[D]") + (days - 1).astype("timedelta64[D]")
    rights = (chars[:, 12] == ord("C")).astype(np.uint8)
    return roots, dates.astype(np.int64), number(13, 21), rights


class JournalReplay:
    """Translates journal entries into batches for one registry."""

    def __init__(self, path: str | os.PathLike, registry: InstrumentRegistry) -> None:
        self.files = journal_files(path)
        self.registry = registry
        self._rows = np.full(0, UNMAPPED, np.uint32)
        self._underlyings = np.full(0, UNMAPPED, np.uint32)
        self.batches_replayed = 0
        self.events_replayed = 0

    def _map_listings(self, entry: JournalEntry) -> None:
        if entry.underlying_listings is not None:
            listings = entry.underlying_listings
            ids = np.array(
                [
                    self.registry.add_underlying(
                        symbol.decode(), ExerciseStyle(int(style)), float(div_yield)
                    )
                    for symbol, style, div_yield in zip(
                        listings["symbol"].tolist(),
                        listings["style"].tolist(),
                        listings["div_yield"].tolist(),
                        strict=True,
                    )
                ],
                np.uint32,
            )
            self._underlyings = _assign(self._underlyings, listings["underlying_id"], ids)
        if entry.option_listings is not None:
            listings = entry.option_listings
            roots, expiries, strikes, rights = decode_osi_array(listings["osi"])
            rows = self.registry.add_many(roots, expiries, strikes, rights, listings["multiplier"])
            self._rows = _assign(self._rows, listings["row"], rows)

    def _translate(self, batch: TickBatch) -> TickBatch:
        def remap(records: np.ndarray, field: str, mapping: np.ndarray) -> np.ndarray:
            if len(records) == 0:
                return records
            records = records.copy()
            ids = records[field]
            known = ids < len(mapping)
            translated = np.full(len(ids), UNMAPPED, np.uint32)
            translated[known] = mapping[ids[known]]
            records[field] = translated
            return records

        return TickBatch(
            quotes=remap(batch.quotes, "row", self._rows),
            trades=remap(batch.trades, "row", self._rows),
            underlyings=remap(batch.underlyings, "underlying", self._underlyings),
            open_interest=remap(batch.open_interest, "row", self._rows),
            source="replay",
            ts_received=batch.ts_received,
        )

    def batches(self, until_seq: int | None = None) -> Iterator[TickBatch]:
        """Every recorded batch in order, with row ids of this registry.

        Listings are registered as they are met, before the batches that refer to them. With
        `until_seq`, stops after the batch the recording daemon applied under that sequence
        number (to rebuild the state it held at that point).
        """
        for path in self.files:
            log.info("replaying journal %s", path)
            for entry in read_entries(path):
                if entry.batch is None:
                    self._map_listings(entry)
                    continue
                if until_seq is not None and entry.seq > until_seq:
                    return
                batch = self._translate(entry.batch)
                self.batches_replayed += 1
                self.events_replayed += len(batch)
                yield batch


def _assign(mapping: np.ndarray, recorded: np.ndarray, current: np.ndarray) -> np.ndarray:
    size = int(recorded.max()) + 1 if len(recorded) else 0
    if size > len(mapping):
        grown = np.full(max(size, 2 * len(mapping)), UNMAPPED, np.uint32)
        grown[: len(mapping)] = mapping
        mapping = grown
    mapping[recorded] = current
    return mapping


class ReplayFeed:
    """`--feed replay:PATH`: a journal file or directory as the daemon's feed.

    `speed` 1.0 keeps the recorded gaps between batches, 2.0 halves them, 0 replays as fast as
    the daemon applies them (yielding to the loop between batches).
    """

    name = "replay"

    def __init__(
        self,
        path: str | os.PathLike,
        registry: InstrumentRegistry,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError(f"replay speed must be >= 0, got {speed}")
        self.path = Path(path)
        self.replay = JournalReplay(path, registry)
        self.speed = speed
        self._clock = clock
        self.finished = False

    async def run(self, emit: Callable[[TickBatch], None]) -> None:
        start_wall = self._clock()
        first_ts: int | None = None
        for batch in self.replay.batches():
            if first_ts is None:
                first_ts = batch.ts_received
            if self.speed > 0:
                due = start_wall + (batch.ts_received - first_ts) / 1e9 / self.speed
                delay = due - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            emit(batch)
            if self.speed == 0 and self.replay.batches_replayed % 64 == 0:
                await asyncio.sleep(0)
        self.finished = True
        log.info(
            "replay finished batches=%d events=%d",
            self.replay.batches_replayed,
            self.replay.events_replayed,
        )

    def status(self) -> dict:
        return {
            "path": str(self.path),
            "speed": self.speed,
            "batches": self.replay.batches_replayed,
            "events": self.replay.events_replayed,
            "finished": self.finished,
        }
