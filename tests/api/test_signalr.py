"""The SignalR wire protocol: negotiate, handshake, JSON and MessagePack hub messages."""

from __future__ import annotations

import msgspec
import pytest

from flashalpha.api.signalr import (
    HandshakeRequest,
    JsonHubProtocol,
    MessagePackHubProtocol,
    MessageType,
    ProtocolError,
    frame_msgpack,
    handshake_response,
    negotiate_response,
    negotiate_version,
    parse_handshake,
    protocol_for,
    split_handshake,
)


@pytest.mark.parametrize(
    ("raw", "version"), [(None, 0), ("", 0), ("0", 0), ("1", 1), ("2", 1), ("17", 1)]
)
def test_negotiate_version_is_the_clients_capped_at_ours(raw, version):
    assert negotiate_version(raw) == version


@pytest.mark.parametrize("raw", ["one", "-1", "1.5"])
def test_bad_negotiate_version_is_named(raw):
    with pytest.raises(ProtocolError, match=f"negotiateVersion '{raw}'"):
        negotiate_version(raw)


def test_negotiate_responses_as_aspnet_core_sends_them():
    v1 = negotiate_response(1, "id-1", "token-1")
    assert v1 == {
        "negotiateVersion": 1,
        "connectionId": "id-1",
        "connectionToken": "token-1",
        "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}],
    }
    v0 = negotiate_response(0, "id-0", "id-0")
    assert v0["negotiateVersion"] == 0 and v0["connectionId"] == "id-0"
    assert "connectionToken" not in v0


def test_handshake_split_parse_and_respond():
    record, rest = split_handshake(b'{"protocol":"json","version":1}\x1e{"type":6}\x1e')
    assert parse_handshake(record) == HandshakeRequest("json", 1)
    assert rest == b'{"type":6}\x1e'
    assert split_handshake(b'{"protocol":"js') == (None, b'{"protocol":"js')
    assert handshake_response() == b"{}\x1e"
    assert msgspec.json.decode(handshake_response("nope")[:-1]) == {"error": "nope"}
    with pytest.raises(ProtocolError, match="invalid handshake"):
        parse_handshake(b'{"protocol":"json"}')


def test_protocol_selection_names_what_is_unavailable():
    assert isinstance(protocol_for(HandshakeRequest("json", 1)), JsonHubProtocol)
    assert isinstance(protocol_for(HandshakeRequest("messagepack", 1)), MessagePackHubProtocol)
    with pytest.raises(ProtocolError, match="'xml' is not available"):
        protocol_for(HandshakeRequest("xml", 1))
    with pytest.raises(ProtocolError, match="version 2"):
        protocol_for(HandshakeRequest("json", 2))


def test_json_records_across_frames():
    protocol = JsonHubProtocol()
    first = protocol.feed(
        b'{"type":1,"invocationId":"7","target":"Subscribe","arguments":["chain:SPY"]}\x1e{"ty'
    )
    assert len(first) == 1
    message = first[0]
    assert message.type == MessageType.INVOCATION and message.invocation_id == "7"
    assert message.target == "Subscribe" and message.arguments == ("chain:SPY",)
    assert protocol.buffered == 4
    rest = protocol.feed('pe":6}\x1e{"type":7,"error":"bye"}\x1e')
    assert [m.type for m in rest] == [MessageType.PING, MessageType.CLOSE]
    assert rest[1].error == "bye" and protocol.buffered == 0


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (b"[1,2]", "JSON object"),
        (b'{"target":"x"}', "integer 'type'"),
        (b'{"type":1,"arguments":[]}', "target must be a string"),
        (b'{"type":1,"target":"x","arguments":"a"}', "arguments must be an array"),
        (b"{nope", "invalid JSON"),
    ],
)
def test_json_protocol_errors_say_what_is_wrong(record, match):
    with pytest.raises(ProtocolError, match=match):
        JsonHubProtocol().feed(record + b"\x1e")


def test_json_encodings():
    protocol = JsonHubProtocol()
    assert protocol.ping() == b'{"type":6}\x1e'
    assert msgspec.json.decode(protocol.completion("3", result={"a": 1})[:-1]) == {
        "type": 3,
        "invocationId": "3",
        "result": {"a": 1},
    }
    assert msgspec.json.decode(protocol.completion("4", error="bad")[:-1]) == {
        "type": 3,
        "invocationId": "4",
        "error": "bad",
    }
    assert msgspec.json.decode(protocol.completion("5")[:-1]) == {"type": 3, "invocationId": "5"}
    assert msgspec.json.decode(protocol.close("slow", allow_reconnect=True)[:-1]) == {
        "type": 7,
        "error": "slow",
        "allowReconnect": True,
    }
    shared = protocol.invocation_raw("update", protocol.encode_argument({"seq": 2}))
    assert shared == protocol.invocation("update", [{"seq": 2}])
    raw = protocol.completion_raw("8", protocol.encode_argument({"rows": []}))
    assert raw == protocol.completion("8", result={"rows": []})
    assert msgspec.json.decode(shared[:-1]) == {
        "type": 1,
        "target": "update",
        "arguments": [{"seq": 2}],
    }


def _msgpack_frames(*messages) -> bytes:
    return b"".join(frame_msgpack(msgspec.msgpack.encode(m)) for m in messages)


def test_msgpack_varint_framing_across_frames():
    big = "x" * 300  # a length prefix of two bytes
    data = _msgpack_frames([1, {}, "9", "Subscribe", [big]], [6], [7, "bye", False])
    assert data[0] & 0x80  # the length takes two varint bytes
    protocol = MessagePackHubProtocol()
    head = protocol.feed(data[:1])  # inside the varint
    assert head == [] and protocol.buffered == 1
    middle = protocol.feed(data[1:200])  # inside the first message
    assert middle == []
    messages = protocol.feed(data[200:])
    assert [m.type for m in messages] == [1, 6, 7]
    assert messages[0].arguments == (big,) and messages[0].invocation_id == "9"
    assert messages[2].error == "bye"


def test_msgpack_encodings_round_trip():
    protocol = MessagePackHubProtocol()

    def decode(frame: bytes):
        size = frame[0]
        assert size < 128 and len(frame) == size + 1
        return msgspec.msgpack.decode(frame[1:])

    assert decode(protocol.ping()) == [6]
    assert decode(protocol.completion("1", result={"a": 1})) == [3, {}, "1", 3, {"a": 1}]
    assert decode(protocol.completion("2", error="bad")) == [3, {}, "2", 1, "bad"]
    assert decode(protocol.completion("3")) == [3, {}, "3", 2]
    assert decode(protocol.close("x", True)) == [7, "x", True]
    shared = protocol.invocation_raw("update", protocol.encode_argument({"seq": 1}))
    assert shared == protocol.invocation("update", [{"seq": 1}])
    raw = protocol.completion_raw("8", protocol.encode_argument({"rows": []}))
    assert raw == protocol.completion("8", result={"rows": []})
    assert decode(shared) == [1, {}, None, "update", [{"seq": 1}], []]


def test_msgpack_protocol_errors():
    with pytest.raises(ProtocolError, match="array starting with its type"):
        MessagePackHubProtocol().feed(_msgpack_frames({"type": 1}))
    with pytest.raises(ProtocolError, match="too short"):
        MessagePackHubProtocol().feed(_msgpack_frames([1, {}]))
    with pytest.raises(ProtocolError, match="longer than 5 bytes"):
        MessagePackHubProtocol().feed(b"\xff" * 6)
