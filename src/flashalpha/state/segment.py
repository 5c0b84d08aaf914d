"""The shared-memory segment that holds the market state, and its lifecycle.

One POSIX shared-memory object (`/dev/shm/<name>`) laid out by `layout.segment_layout`. The
daemon creates it (replacing a stale one left by a crashed daemon) and unlinks it on a clean
exit; other processes attach read-only with a plain `mmap(PROT_READ)`, so they can neither
corrupt it nor be registered with Python 3.11's resource tracker, which would unlink the
segment when they exit.
"""

from __future__ import annotations

import _posixshmem
import contextlib
import logging
import mmap
import os
import time
from dataclasses import dataclass
from multiprocessing import resource_tracker, shared_memory

import numpy as np

from flashalpha import _state_kernels
from flashalpha.state.layout import (
    CHUNK_ROWS,
    HEADER_DTYPE,
    LAYOUT_VERSION,
    OPTION_COLUMN_BY_NAME,
    SEGMENT_MAGIC,
    UNDERLYING_COLUMN_BY_NAME,
    SegmentLayout,
    layout_hash,
    segment_layout,
)

log = logging.getLogger(__name__)

#: Where POSIX shared memory lives on Linux; attach-only readers open it from here.
SHM_DIRECTORY = "/dev/shm"

if _state_kernels.CHUNK_ROWS != CHUNK_ROWS:  # pragma: no cover - build/schema mismatch
    raise ImportError(
        f"compiled kernels use {_state_kernels.CHUNK_ROWS}-row chunks but layout.py declares "
        f"{CHUNK_ROWS}; rebuild with `make install`"
    )


class StateUnavailableError(RuntimeError):
    """No usable segment: none exists, it is not ours, or its layout differs from this build."""


class StateInUseError(RuntimeError):
    """A live daemon already owns the segment."""


def header_offset(field: str) -> int:
    """Byte offset of a header field inside the segment."""
    return HEADER_DTYPE.fields[field][1]


def writer_alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(slots=True)
class Segment:
    """A mapped segment: the header, the column views and the base address for the kernels."""

    name: str
    layout: SegmentLayout
    buffer: memoryview
    bytes_view: np.ndarray
    header: np.ndarray
    counters: np.ndarray
    writable: bool
    _shm: shared_memory.SharedMemory | None = None
    _mmap: mmap.mmap | None = None

    @property
    def address(self) -> int:
        return int(self.bytes_view.ctypes.data)

    def option_column(self, name: str) -> np.ndarray:
        """A numpy view of one option column over the whole capacity."""
        column = OPTION_COLUMN_BY_NAME[name]
        return np.ndarray(
            (self.layout.capacity,),
            column.np_dtype,
            buffer=self.buffer,
            offset=self.layout.option_offsets[name],
        )

    def underlying_column(self, name: str) -> np.ndarray:
        """A numpy view of one underlying column over the whole underlying capacity."""
        column = UNDERLYING_COLUMN_BY_NAME[name]
        return np.ndarray(
            (self.layout.underlying_capacity,),
            column.np_dtype,
            buffer=self.buffer,
            offset=self.layout.underlying_offsets[name],
        )

    def load(self, field: str) -> int:
        """Read a uint64 header field with acquire ordering."""
        return int(_state_kernels.load_acquire(self.address + header_offset(field)))

    def close(self) -> None:
        """Unmap; views handed out earlier must not be used afterwards."""
        self.header = self.counters = self.bytes_view = None  # type: ignore[assignment]
        self.buffer.release()
        if self._shm is not None:
            self._shm.close()
        if self._mmap is not None:
            self._mmap.close()

    def unlink(self) -> None:
        """Remove the segment's name; only the owning daemon does this."""
        if self._shm is None:
            raise RuntimeError("only the process that created a segment may unlink it")
        _unlink(self._shm)


def _views(buffer: memoryview) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bytes_view = np.frombuffer(buffer, np.uint8)
    header = np.ndarray((), HEADER_DTYPE, buffer=buffer, offset=0)
    counters_field = HEADER_DTYPE.fields["counters"]
    counters = np.ndarray(
        counters_field[0].shape, np.int64, buffer=buffer, offset=counters_field[1]
    )
    return bytes_view, header, counters


def _untrack(shm: shared_memory.SharedMemory) -> None:
    # Python 3.11 registers every SharedMemory with the resource tracker, which unlinks it when
    # this process exits (even killed). The daemon unlinks explicitly on a clean exit instead,
    # and a crashed daemon's segment must survive so that the next start can detect it.
    resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]


def _unlink(shm: shared_memory.SharedMemory) -> None:
    # SharedMemory.unlink() would also unregister from the resource tracker, which never
    # tracked this segment (see _untrack) and would complain; unlink the name directly.
    with contextlib.suppress(FileNotFoundError):
        _posixshmem.shm_unlink(shm._name)  # type: ignore[attr-defined]


def create_segment(
    name: str, capacity: int, underlying_capacity: int, stale_after: float = 5.0
) -> Segment:
    """Create the named segment for a new writer, replacing a stale one.

    A segment whose writer pid is alive and whose heartbeat is younger than `stale_after`
    seconds belongs to a running daemon: `StateInUseError`. Any other existing segment of that
    name (crashed daemon, foreign or older layout) is unlinked and created anew.
    """
    layout = segment_layout(capacity, underlying_capacity)
    _replace_stale(name, stale_after)
    shm = shared_memory.SharedMemory(name=name, create=True, size=layout.size)
    _untrack(shm)
    buffer = shm.buf
    bytes_view, header, counters = _views(buffer)
    header["magic"] = SEGMENT_MAGIC
    header["layout_version"] = LAYOUT_VERSION
    header["chunk_rows"] = CHUNK_ROWS
    header["layout_hash"] = layout_hash()
    header["capacity"] = capacity
    header["underlying_capacity"] = underlying_capacity
    header["writer_pid"] = os.getpid()
    header["ts_created"] = header["ts_heartbeat"] = time.time_ns()
    log.info("created state segment name=%s bytes=%d capacity=%d", name, layout.size, capacity)
    return Segment(name, layout, buffer, bytes_view, header, counters, True, _shm=shm)


def _replace_stale(name: str, stale_after: float) -> None:
    try:
        existing = shared_memory.SharedMemory(name=name, create=False)
    except FileNotFoundError:
        return
    _untrack(existing)
    try:
        pid, heartbeat, magic = 0, 0, 0
        if existing.size >= HEADER_DTYPE.itemsize:
            header = np.ndarray((), HEADER_DTYPE, buffer=existing.buf, offset=0)
            magic = int(header["magic"])
            pid = int(header["writer_pid"])
            heartbeat = int(header["ts_heartbeat"])
            del header
        age = (time.time_ns() - heartbeat) / 1e9
        if (
            magic == SEGMENT_MAGIC
            and pid != os.getpid()
            and writer_alive(pid)
            and age < stale_after
        ):
            raise StateInUseError(
                f"a flashalpha daemon (pid {pid}) is already running on state segment "
                f"'{name}' (heartbeat {age:.1f}s ago); stop it or choose another "
                "FLASHALPHA_STATE_SHM_NAME"
            )
        log.warning(
            "replacing stale state segment name=%s writer_pid=%d heartbeat_age_s=%.1f",
            name,
            pid,
            age,
        )
    finally:
        existing.close()
    _unlink(existing)


def attach_segment(name: str) -> Segment:
    """Map an existing segment read-only, checking magic, layout version and layout hash."""
    path = os.path.join(SHM_DIRECTORY, name.lstrip("/"))
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise StateUnavailableError(
            f"no flashalpha daemon is running: shared memory segment '{name}' does not exist"
        ) from None
    try:
        size = os.fstat(fd).st_size
        if size < HEADER_DTYPE.itemsize:
            raise StateUnavailableError(f"shared memory segment '{name}' is not a flashalpha state")
        mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        os.close(fd)
    buffer = memoryview(mapping)
    bytes_view, header, counters = _views(buffer)
    problem = None
    if int(header["magic"]) != SEGMENT_MAGIC:
        problem = "is not a flashalpha state"
    elif (
        int(header["layout_version"]) != LAYOUT_VERSION
        or int(header["layout_hash"]) != layout_hash()
    ):
        problem = "was written by a flashalpha build with a different state layout"
    if problem is not None:
        del bytes_view, header, counters
        buffer.release()
        mapping.close()
        raise StateUnavailableError(f"shared memory segment '{name}' {problem}")
    layout = segment_layout(int(header["capacity"]), int(header["underlying_capacity"]))
    if layout.size > size:
        raise StateUnavailableError(f"shared memory segment '{name}' is truncated")
    return Segment(name, layout, buffer, bytes_view, header, counters, False, _mmap=mapping)
