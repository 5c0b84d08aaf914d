"""The journal: every normalized batch, appended before it touches the state (kdb+ tickerplant).

One file per New York trading day, `<dir>/YYYY-MM-DD.journal`. A file starts with a 24-byte
header (magic, layout hash, creation time) and then holds blocks, each a fixed 40-byte block
header followed by the raw bytes of one numpy record array:

    magic  "FAJB"   4s   block marker (resynchronisation aid for tools)
    kind           u1   BlockKind
    pad            3x
    count          u8   records in the payload
    seq            u8   state sequence number the block was applied under (0 for listings)
    ts_received    u8   ns since epoch the feed read the batch
    crc32          u4   zlib.crc32 of the payload
    pad            4x

A batch is written with one `writev` so that a crash leaves at most one torn block at the end;
readers stop at the first block whose header or checksum does not verify. Listings (the
contracts and underlyings registered) are journaled before any event that refers to them, so a
journal alone rebuilds the registry and the state.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from flashalpha.state.batch import TickBatch
from flashalpha.state.layout import (
    OPEN_INTEREST_DTYPE,
    OSI_WIDTH,
    QUOTE_DTYPE,
    TRADE_DTYPE,
    UNDERLYING_SYMBOL_WIDTH,
    UNDERLYING_TICK_DTYPE,
    layout_hash,
)

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
FILE_MAGIC = b"FAJRNL01"
FILE_HEADER = struct.Struct("<8sQQ")
BLOCK_MAGIC = b"FAJB"
BLOCK_HEADER = struct.Struct("<4sB3xQQQI4x")
SUFFIX = ".journal"


class BlockKind(enum.IntEnum):
    QUOTES = 1
    TRADES = 2
    UNDERLYING_TICKS = 3
    OPEN_INTEREST = 4
    OPTION_LISTINGS = 5
    UNDERLYING_LISTINGS = 6


#: A registered contract: its row id, symbol, underlying and multiplier.
OPTION_LISTING_DTYPE = np.dtype(
    [
        ("row", "<u4"),
        ("underlying_id", "<u4"),
        ("multiplier", "<f4"),
        ("osi", f"S{OSI_WIDTH}"),
    ]
)
#: A registered underlying: id, ticker, exercise style of its options, dividend yield.
UNDERLYING_LISTING_DTYPE = np.dtype(
    [
        ("underlying_id", "<u4"),
        ("style", "u1"),
        ("div_yield", "<f8"),
        ("symbol", f"S{UNDERLYING_SYMBOL_WIDTH}"),
    ]
)

BLOCK_DTYPES = {
    BlockKind.QUOTES: QUOTE_DTYPE,
    BlockKind.TRADES: TRADE_DTYPE,
    BlockKind.UNDERLYING_TICKS: UNDERLYING_TICK_DTYPE,
    BlockKind.OPEN_INTEREST: OPEN_INTEREST_DTYPE,
    BlockKind.OPTION_LISTINGS: OPTION_LISTING_DTYPE,
    BlockKind.UNDERLYING_LISTINGS: UNDERLYING_LISTING_DTYPE,
}
_BATCH_PARTS = (
    ("quotes", BlockKind.QUOTES),
    ("trades", BlockKind.TRADES),
    ("underlyings", BlockKind.UNDERLYING_TICKS),
    ("open_interest", BlockKind.OPEN_INTEREST),
)


def trading_day(ts_ns: int) -> dt.date:
    """The New York calendar date of a timestamp: the journal file it belongs to."""
    return dt.datetime.fromtimestamp(ts_ns / 1e9, NEW_YORK).date()


def journal_file(directory: Path, day: dt.date) -> Path:
    return directory / f"{day.isoformat()}{SUFFIX}"


class JournalWriter:
    """Appends blocks to the current day's file; rotates at New York midnight.

    `fsync`: "never" leaves durability to the OS (a killed daemon still loses nothing that was
    written, only a machine crash can), "batch" syncs after every batch, "interval" at most
    every `fsync_interval` seconds.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        fsync: str = "interval",
        fsync_interval: float = 1.0,
        clock=time.time_ns,
    ) -> None:
        if fsync not in ("never", "batch", "interval"):
            raise ValueError(f"unknown journal fsync policy '{fsync}'")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._clock = clock
        self._fd = -1
        self._day: dt.date | None = None
        self._last_sync = 0.0
        self.bytes_written = 0
        self.blocks_written = 0
        #: Whether the open file already held blocks (a restart appending to today's file).
        self.resumed = False
        #: Called with the writer after a file is opened, before anything is appended to it.
        self.on_rotate = None

    @property
    def path(self) -> Path | None:
        return None if self._day is None else journal_file(self.directory, self._day)

    def _open(self, day: dt.date) -> None:
        self.close()
        path = journal_file(self.directory, day)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.resumed = os.fstat(fd).st_size > 0
        if not self.resumed:
            os.write(fd, FILE_HEADER.pack(FILE_MAGIC, layout_hash(), self._clock()))
        self._fd, self._day = fd, day
        log.info("journal file %s", path)
        if self.on_rotate is not None:
            self.on_rotate(self)

    def ensure_file(self, ts_ns: int) -> None:
        """Open (or rotate to) the file of the trading day of `ts_ns`."""
        day = trading_day(ts_ns)
        if day != self._day:
            self._open(day)

    def append_blocks(self, blocks: list[tuple[BlockKind, np.ndarray]], seq: int, ts_ns: int):
        """Write several record arrays as consecutive blocks with one system call."""
        self.ensure_file(ts_ns)
        buffers: list[bytes | memoryview] = []
        for kind, records in blocks:
            if len(records) == 0:
                continue
            if records.dtype != BLOCK_DTYPES[kind]:
                raise TypeError(f"{kind.name} block has dtype {records.dtype}")
            payload = memoryview(np.ascontiguousarray(records)).cast("B")
            buffers.append(
                BLOCK_HEADER.pack(BLOCK_MAGIC, kind, len(records), seq, ts_ns, zlib.crc32(payload))
            )
            buffers.append(payload)
        if not buffers:
            return
        written = os.writev(self._fd, buffers)
        self.bytes_written += written
        self.blocks_written += len(buffers) // 2
        if self.fsync == "batch":
            os.fsync(self._fd)
        elif self.fsync == "interval":
            now = time.monotonic()
            if now - self._last_sync >= self.fsync_interval:
                os.fdatasync(self._fd)
                self._last_sync = now

    def append_batch(self, batch: TickBatch, seq: int) -> None:
        """Journal one normalized batch under the sequence number it will be applied with."""
        self.append_blocks(
            [(kind, getattr(batch, name)) for name, kind in _BATCH_PARTS], seq, batch.ts_received
        )

    def flush(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


@dataclass(slots=True)
class JournalEntry:
    """One group of blocks read back: listings, or the batch applied under `seq`."""

    seq: int
    ts_received: int
    batch: TickBatch | None = None
    option_listings: np.ndarray | None = None
    underlying_listings: np.ndarray | None = None


def read_blocks(path: str | os.PathLike) -> Iterator[tuple[BlockKind, int, int, np.ndarray]]:
    """Yield (kind, seq, ts_received, records) of every intact block of one file.

    Stops quietly at a torn tail (a crash mid-write); raises ValueError naming the file if
    it is not a journal or was written with a different state layout.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < FILE_HEADER.size:
        raise ValueError(f"'{path}' is not a flashalpha journal (too short)")
    magic, file_layout, _created = FILE_HEADER.unpack_from(data, 0)
    if magic != FILE_MAGIC:
        raise ValueError(f"'{path}' is not a flashalpha journal")
    if file_layout != layout_hash():
        raise ValueError(f"journal '{path}' was written with a different state layout")
    offset = FILE_HEADER.size
    while offset + BLOCK_HEADER.size <= len(data):
        marker, kind, count, seq, ts, crc = BLOCK_HEADER.unpack_from(data, offset)
        if marker != BLOCK_MAGIC or kind not in BLOCK_DTYPES:
            log.warning("journal %s: bad block header at byte %d; stopping", path, offset)
            return
        kind = BlockKind(kind)
        start = offset + BLOCK_HEADER.size
        stop = start + count * BLOCK_DTYPES[kind].itemsize
        if stop > len(data):
            log.warning("journal %s: torn block at byte %d (crash mid-write)", path, offset)
            return
        payload = memoryview(data)[start:stop]
        if zlib.crc32(payload) != crc:
            log.warning("journal %s: checksum mismatch at byte %d; stopping", path, offset)
            return
        yield kind, seq, ts, np.frombuffer(payload, BLOCK_DTYPES[kind]).copy()
        offset = stop


def read_entries(path: str | os.PathLike) -> Iterator[JournalEntry]:
    """Group a file's blocks into listings entries and batches (one per seq)."""
    current: JournalEntry | None = None
    parts: dict[str, np.ndarray] = {}

    def finish() -> JournalEntry | None:
        if current is not None and parts:
            current.batch = TickBatch(ts_received=current.ts_received, source="journal", **parts)
        return current

    for kind, seq, ts, records in read_blocks(path):
        if kind in (BlockKind.OPTION_LISTINGS, BlockKind.UNDERLYING_LISTINGS):
            done = finish()
            if done is not None:
                yield done
            current, parts = None, {}
            entry = JournalEntry(seq, ts)
            if kind is BlockKind.OPTION_LISTINGS:
                entry.option_listings = records
            else:
                entry.underlying_listings = records
            yield entry
            continue
        if current is None or current.seq != seq:
            done = finish()
            if done is not None:
                yield done
            current, parts = JournalEntry(seq, ts), {}
        name = next(name for name, block in _BATCH_PARTS if block is kind)
        parts[name] = records
    done = finish()
    if done is not None:
        yield done


def journal_files(path: str | os.PathLike) -> list[Path]:
    """A journal file, or every journal file of a directory in date order."""
    path = Path(path).expanduser()
    if path.is_dir():
        return sorted(path.glob(f"*{SUFFIX}"))
    if not path.exists():
        raise FileNotFoundError(f"journal '{path}' does not exist")
    return [path]
