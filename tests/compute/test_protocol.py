"""The worker wire protocol: round trips and every way a peer can get it wrong."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from flashalpha.compute import protocol
from flashalpha.compute.protocol import (
    INPUT_COLUMNS,
    RESULT_COLUMNS,
    Kind,
    ProtocolError,
    decode,
    encode,
    encode_batch,
    encode_result,
)
from flashalpha.state.layout import PricingStatus


def _inputs(n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    values = {name: rng.uniform(1, 2, n).astype(dtype) for name, dtype in INPUT_COLUMNS}
    values["right"] = np.array([0, 1, 0, 1, 1][:n], np.uint8)
    return values


def _outputs(n: int = 5) -> dict[str, np.ndarray]:
    values = {name: np.linspace(0.1, 0.5, n).astype(dtype) for name, dtype in RESULT_COLUMNS}
    values["pricing_status"] = np.full(n, PricingStatus.OK, np.uint8)
    return values


def _wire(frames: list) -> list[bytes]:
    """What arrives: every frame as bytes."""
    return [bytes(memoryview(f)) if not isinstance(f, bytes) else f for f in frames]


def test_batch_round_trip_keeps_every_column_bit_for_bit():
    inputs = _inputs()
    message = decode(_wire(encode_batch(7, 42, 123, inputs)))
    assert message.kind is Kind.BATCH
    assert (message.header.batch, message.header.seq, message.header.rows) == (7, 42, 5)
    assert list(message.arrays) == [name for name, _ in INPUT_COLUMNS]
    for name, dtype in INPUT_COLUMNS:
        assert message.arrays[name].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(message.arrays[name], inputs[name].astype(dtype))


def test_result_round_trip_and_nan_allowed_on_rows_without_a_vol():
    outputs = _outputs()
    outputs["pricing_status"][1] = PricingStatus.BELOW_INTRINSIC
    for name in ("iv", "delta", "theo"):
        outputs[name][1] = np.nan
    message = decode(_wire(encode_result(9, 1000, outputs)))
    assert message.kind is Kind.RESULT and message.header.compute_ns == 1000
    assert np.isnan(message.arrays["iv"][1]) and message.arrays["iv"][0] == pytest.approx(0.1)


def test_control_messages_round_trip():
    ready = protocol.Ready("host:1", 1, 2, 1.0, "0.1.0", 1)
    message = decode(_wire(encode(Kind.READY, ready)))
    assert message.header == ready
    for kind, header in (
        (Kind.HEARTBEAT, protocol.Heartbeat(5)),
        (Kind.DISCONNECT, protocol.Disconnect("bye")),
    ):
        assert decode(_wire(encode(kind, header))).header == header


def test_array_frames_are_little_endian_column_buffers():
    frames = encode_batch(1, 1, 1, _inputs())
    spot = frames[3]
    assert bytes(memoryview(spot)) == np.asarray(_inputs()["spot"], "<f8").tobytes()


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda f: [b"\x02", *f[1:]], "protocol version"),
        (lambda f: [b"", *f[1:]], "protocol version"),
        (lambda f: [f[0], b"\x63", *f[2:]], "unknown message kind"),
        (lambda f: [f[0], b"\x03\x03", *f[2:]], "unknown message kind"),
        (lambda f: [f[0], f[1], b"\xc1garbage", *f[3:]], "BATCH header"),
        (lambda f: f[:2], "at least 3"),
        (lambda f: f[:-1], "8 array frames for 9 columns"),
        (lambda f: [*f[:3], f[3][:-8], *f[4:]], "column spot: 32 bytes for 5 rows"),
        (lambda f: [*f, b"extra"], "10 array frames"),
    ],
)
def test_malformed_batches_are_refused_naming_the_fault(mutate, match):
    frames = _wire(encode_batch(1, 1, 1, _inputs()))
    with pytest.raises(ProtocolError, match=match):
        decode(mutate(frames))


def test_column_list_must_be_the_protocols():
    frames = _wire(encode_batch(1, 1, 1, _inputs()))
    header = msgspec.msgpack.decode(frames[2])
    header["columns"][0] = ["price", "<f8"]
    with pytest.raises(ProtocolError, match="columns"):
        decode([frames[0], frames[1], msgspec.msgpack.encode(header), *frames[3:]])
    header["columns"][0] = ["spot", "<f4"]
    with pytest.raises(ProtocolError, match="columns"):
        decode([frames[0], frames[1], msgspec.msgpack.encode(header), *frames[3:]])


@pytest.mark.parametrize("rows", [0, -1, protocol.MAX_ROWS + 1])
def test_row_counts_out_of_range_are_refused(rows):
    frames = _wire(encode_result(1, 1, _outputs()))
    header = msgspec.msgpack.decode(frames[2])
    header["rows"] = rows
    with pytest.raises(ProtocolError, match="rows"):
        decode([frames[0], frames[1], msgspec.msgpack.encode(header), *frames[3:]])


@pytest.mark.parametrize("column", ["iv", "delta", "gamma", "vega", "theta", "rho", "theo"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_values_on_rows_reported_ok_are_refused(column, value):
    outputs = _outputs()
    outputs[column][2] = value
    with pytest.raises(ProtocolError, match=f"column {column} is"):
        decode(_wire(encode_result(1, 1, outputs)))


@pytest.mark.parametrize("status", [0, 7, 255])
def test_unknown_pricing_status_is_refused(status):
    outputs = _outputs()
    outputs["pricing_status"][0] = status
    with pytest.raises(ProtocolError, match=f"pricing_status {status}"):
        decode(_wire(encode_result(1, 1, outputs)))


def test_control_messages_carry_no_arrays_and_ready_is_checked():
    frames = _wire(encode(Kind.HEARTBEAT, protocol.Heartbeat(1)))
    with pytest.raises(ProtocolError, match="HEARTBEAT carries 1 array frames"):
        decode([*frames, b"x"])
    for credit, interval, match in ((0, 1.0, "credit=0"), (2, float("nan"), "heartbeat_interval")):
        frames = _wire(encode(Kind.READY, protocol.Ready("w", 1, credit, interval)))
        with pytest.raises(ProtocolError, match=match):
            decode(frames)
    bad = msgspec.msgpack.encode(
        {"worker": "w", "pid": 1, "credit": "two", "heartbeat_interval": 1}
    )
    with pytest.raises(ProtocolError, match="READY header"):
        decode([b"\x01", b"\x01", bad])


def test_encoders_refuse_missing_or_ragged_columns():
    inputs = _inputs()
    del inputs["spot"]
    with pytest.raises(ValueError, match="missing columns"):
        encode_batch(1, 1, 1, inputs)
    inputs = _inputs()
    inputs["spot"] = inputs["spot"][:2]
    with pytest.raises(ValueError, match="unequal lengths"):
        encode_batch(1, 1, 1, inputs)
