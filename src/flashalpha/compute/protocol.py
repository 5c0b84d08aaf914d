"""The worker wire protocol, version 1 (docs/PROTOCOL.md, "Worker protocol").

Every message is one ZeroMQ multipart message between the dispatcher's ROUTER and a worker's
DEALER (the ROUTER adds and strips the peer identity frame):

    frame 0  version  one byte, PROTOCOL_VERSION
    frame 1  kind     one byte, `Kind`
    frame 2  header   msgpack map (a msgspec Struct per kind)
    frame 3+ arrays   raw little-endian column buffers, one per header column, in header order

Arrays are owned copies: the dispatcher copies its inputs out of the shared-memory state before
sending, so a frame sent with copy=False never aliases memory the state writer changes.

`decode` validates everything a peer controls and raises `ProtocolError` naming the fault;
the dispatcher counts it, drops the peer, and goes on.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import msgspec
import numpy as np

from flashalpha.state.layout import PricingStatus

PROTOCOL_VERSION = 1
VERSION_FRAME = bytes([PROTOCOL_VERSION])
#: Refuse batches larger than this (a sanity bound on a peer-controlled number).
MAX_ROWS = 4_000_000


class Kind(enum.IntEnum):
    """Message kinds; one byte in frame 1."""

    READY = 1  # worker → dispatcher: I can take `credit` batches at once
    HEARTBEAT = 2  # both ways, when nothing else was sent for an interval
    BATCH = 3  # dispatcher → worker: inputs of rows to price
    RESULT = 4  # worker → dispatcher: outputs of one batch
    DISCONNECT = 5  # both ways: I am leaving (worker) / go away and say READY again (dispatcher)


KIND_FRAMES = {kind: bytes([kind]) for kind in Kind}


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text names the offending value."""


# -- headers ---------------------------------------------------------------------------------


class Ready(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    #: Human-readable worker name, "host:pid".
    worker: str
    pid: int
    #: Batches the worker accepts at once (in flight); the dispatcher may grant fewer.
    credit: int
    #: Seconds between the worker's heartbeats; the dispatcher heartbeats at least as often.
    heartbeat_interval: float
    #: flashalpha version of the worker (informational).
    version: str = ""
    threads: int = 1


class Heartbeat(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ts: int  # sender's clock, ns since epoch


class Batch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    batch: int  # id, unique per dispatcher run
    seq: int  # state seq the inputs were read at
    rows: int
    ts: int  # ns since epoch the inputs (and years to expiry) refer to
    columns: list[tuple[str, str]]


class Result(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    batch: int
    rows: int
    compute_ns: int  # time the worker spent pricing
    columns: list[tuple[str, str]]


class Disconnect(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: str = ""


HEADER_TYPES: dict[Kind, type[msgspec.Struct]] = {
    Kind.READY: Ready,
    Kind.HEARTBEAT: Heartbeat,
    Kind.BATCH: Batch,
    Kind.RESULT: Result,
    Kind.DISCONNECT: Disconnect,
}
_DECODERS = {kind: msgspec.msgpack.Decoder(header) for kind, header in HEADER_TYPES.items()}
_ENCODER = msgspec.msgpack.Encoder()

# -- columns ---------------------------------------------------------------------------------

#: BATCH arrays: what a worker needs to price each row, all in the state's units.
INPUT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("spot", "<f8"),  # dollars
    ("strike", "<f8"),  # dollars
    ("years", "<f8"),  # ACT/365 to 16:00 New York on the expiry date
    ("rate", "<f8"),  # continuously compounded, decimal per year
    ("div_yield", "<f8"),  # continuous, decimal per year
    ("bid", "<f8"),  # dollars, NaN if none
    ("ask", "<f8"),  # dollars, NaN if none
    ("right", "u1"),  # Right: 0 put, 1 call
    ("style", "u1"),  # ExerciseStyle: 0 American, 1 European
)

#: RESULT arrays: state columns of the greeks group, same names and units as `state.layout`.
RESULT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("iv_bid", "<f8"),
    ("iv", "<f8"),
    ("iv_ask", "<f8"),
    ("delta", "<f8"),
    ("gamma", "<f8"),
    ("vega", "<f8"),
    ("theta", "<f8"),
    ("rho", "<f8"),
    ("vanna", "<f8"),
    ("charm", "<f8"),
    ("vomma", "<f8"),
    ("theo", "<f8"),
    ("pricing_status", "u1"),
)

#: Columns that must be finite on every row whose status is OK.
OK_FINITE_COLUMNS = ("iv", "delta", "gamma", "vega", "theta", "rho", "theo")

_COLUMNS: dict[Kind, tuple[tuple[str, str], ...]] = {
    Kind.BATCH: INPUT_COLUMNS,
    Kind.RESULT: RESULT_COLUMNS,
}
_VALID_STATUS = np.zeros(256, np.bool_)
_VALID_STATUS[[int(s) for s in PricingStatus if s is not PricingStatus.UNPRICED]] = True


@dataclass(frozen=True, slots=True)
class Message:
    kind: Kind
    header: msgspec.Struct
    #: Column name → array (read-only views of the received frames).
    arrays: dict[str, np.ndarray]


# -- encoding --------------------------------------------------------------------------------


def encode(kind: Kind, header: msgspec.Struct, arrays: list[np.ndarray] = ()) -> list:
    """Frames of one message; `arrays` (contiguous, in the kind's column order) follow as
    buffers, so a caller may send them with copy=False."""
    return [VERSION_FRAME, KIND_FRAMES[kind], _ENCODER.encode(header), *arrays]


def encode_batch(batch_id: int, seq: int, ts: int, inputs: dict[str, np.ndarray]) -> list:
    """A BATCH message from input columns (any order; converted to the protocol dtypes)."""
    arrays = _columns_in_order(INPUT_COLUMNS, inputs)
    rows = len(arrays[0])
    header = Batch(batch_id, seq, rows, ts, [list(c) for c in INPUT_COLUMNS])
    return encode(Kind.BATCH, header, arrays)


def encode_result(batch_id: int, compute_ns: int, outputs: dict[str, np.ndarray]) -> list:
    arrays = _columns_in_order(RESULT_COLUMNS, outputs)
    header = Result(batch_id, len(arrays[0]), compute_ns, [list(c) for c in RESULT_COLUMNS])
    return encode(Kind.RESULT, header, arrays)


def _columns_in_order(spec, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    missing = [name for name, _ in spec if name not in values]
    if missing:
        raise ValueError(f"missing columns {missing}")
    arrays = [np.ascontiguousarray(values[name], dtype) for name, dtype in spec]
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"columns of unequal lengths {sorted(lengths)}")
    return arrays


# -- decoding --------------------------------------------------------------------------------


def _bytes(frame) -> memoryview:
    return frame.buffer if hasattr(frame, "buffer") else memoryview(frame)


def decode(frames: list) -> Message:
    """Validate and decode one message (frames as `bytes` or `zmq.Frame`, identity stripped).

    Raises `ProtocolError` for a wrong version, unknown kind, undecodable header, column list
    that differs from the protocol's, array frames of the wrong count or length, and (for
    RESULT) invalid statuses or non-finite values on rows reported OK.
    """
    if len(frames) < 3:
        raise ProtocolError(f"message of {len(frames)} frames; at least 3 expected")
    version = bytes(_bytes(frames[0]))
    if version != VERSION_FRAME:
        raise ProtocolError(
            f"protocol version {version!r}; this dispatcher speaks {VERSION_FRAME!r}"
        )
    kind_frame = bytes(_bytes(frames[1]))
    if len(kind_frame) != 1 or kind_frame[0] not in Kind._value2member_map_:
        raise ProtocolError(f"unknown message kind {kind_frame!r}")
    kind = Kind(kind_frame[0])
    try:
        header = _DECODERS[kind].decode(_bytes(frames[2]))
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ProtocolError(f"{kind.name} header: {error}") from None
    spec = _COLUMNS.get(kind)
    payload = frames[3:]
    if spec is None:
        if payload:
            raise ProtocolError(f"{kind.name} carries {len(payload)} array frames; expected none")
        _check_header(kind, header)
        return Message(kind, header, {})
    declared = [tuple(column) for column in header.columns]
    if declared != list(spec):
        raise ProtocolError(
            f"{kind.name} columns {declared}; protocol {PROTOCOL_VERSION} has {list(spec)}"
        )
    rows = header.rows
    if not 0 < rows <= MAX_ROWS:
        raise ProtocolError(f"{kind.name} rows={rows}; expected 1..{MAX_ROWS}")
    if len(payload) != len(spec):
        raise ProtocolError(f"{kind.name} has {len(payload)} array frames for {len(spec)} columns")
    arrays = {}
    for (name, dtype), frame in zip(spec, payload, strict=True):
        buffer = _bytes(frame)
        expected = rows * np.dtype(dtype).itemsize
        if buffer.nbytes != expected:
            raise ProtocolError(
                f"{kind.name} column {name}: {buffer.nbytes} bytes for {rows} rows of {dtype} "
                f"(expected {expected})"
            )
        arrays[name] = np.frombuffer(buffer, dtype)
    if kind is Kind.RESULT:
        check_result(arrays)
    return Message(kind, header, arrays)


def _check_header(kind: Kind, header) -> None:
    if kind is Kind.READY:
        if not 1 <= header.credit <= 64:
            raise ProtocolError(f"READY credit={header.credit}; expected 1..64")
        interval = header.heartbeat_interval
        if not (math.isfinite(interval) and 0.01 <= interval <= 60):
            raise ProtocolError(f"READY heartbeat_interval={interval}; expected 0.01..60 s")


def check_result(arrays: dict[str, np.ndarray]) -> None:
    """A RESULT's values: statuses valid, and rows reported OK finite where it matters."""
    status = arrays["pricing_status"]
    valid = _VALID_STATUS[status]
    if not valid.all():
        bad = int(status[~valid][0])
        raise ProtocolError(f"RESULT pricing_status {bad} is not a PricingStatus")
    ok = status == PricingStatus.OK
    if ok.any():
        for name in OK_FINITE_COLUMNS:
            values = arrays[name][ok]
            finite = np.isfinite(values)
            if not finite.all():
                raise ProtocolError(
                    f"RESULT column {name} is {values[~finite][0]!r} on a row with status OK"
                )
