"""The ASP.NET Core SignalR wire protocol, server side: negotiate, handshake, hub messages.

Implements what docs/PROTOCOL.md ("Hub protocol") specifies, after ASP.NET Core's
TransportProtocols.md and HubProtocol.md: negotiate versions 0 and 1, the WebSockets transport,
the JSON hub protocol (text frames, records terminated by 0x1E) and the MessagePack hub protocol
(binary frames, records prefixed by their length as a varint). Pure functions and small parsers;
the connection logic lives in `flashalpha.api.hub`.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from typing import Any

import msgspec

RECORD_SEPARATOR = "\x1e"
_RS = b"\x1e"

#: Negotiate versions this server speaks; a client asking for more gets the highest.
NEGOTIATE_VERSION = 1


class MessageType(enum.IntEnum):
    """Hub message types (HubProtocol.md)."""

    INVOCATION = 1
    STREAM_ITEM = 2
    COMPLETION = 3
    STREAM_INVOCATION = 4
    CANCEL_INVOCATION = 5
    PING = 6
    CLOSE = 7
    ACK = 8
    SEQUENCE = 9


class ProtocolError(ValueError):
    """The peer sent something the protocol does not allow; the message says what."""


@dataclass(frozen=True, slots=True)
class HubMessage:
    """One decoded client message. Only the fields of its type are set."""

    type: int
    invocation_id: str | None = None
    target: str | None = None
    arguments: tuple = ()
    stream_ids: tuple = ()
    error: str | None = None


# -- negotiate ----------------------------------------------------------------------------------


def new_connection_id() -> str:
    """A random, URL-safe identifier (connection ids and connection tokens)."""
    return secrets.token_urlsafe(16)


def negotiate_version(raw: str | None) -> int:
    """The negotiate version to answer for the client's `negotiateVersion` query value.

    Missing means 0; a version above ours gets ours. ProtocolError for a non-integer.
    """
    if raw is None or raw == "":
        return 0
    try:
        requested = int(raw)
    except ValueError:
        raise ProtocolError(f"invalid negotiateVersion '{raw}': expected an integer") from None
    if requested < 0:
        raise ProtocolError(f"invalid negotiateVersion '{raw}': expected 0 or more")
    return min(requested, NEGOTIATE_VERSION)


def negotiate_response(
    version: int, connection_id: str, connection_token: str, binary: bool = True
) -> dict[str, Any]:
    """The negotiate payload ASP.NET Core answers: WebSockets only, Text (and Binary)."""
    formats = ["Text", "Binary"] if binary else ["Text"]
    response: dict[str, Any] = {"negotiateVersion": version, "connectionId": connection_id}
    if version >= 1:
        response["connectionToken"] = connection_token
    response["availableTransports"] = [{"transport": "WebSockets", "transferFormats": formats}]
    return response


# -- handshake ----------------------------------------------------------------------------------


class HandshakeRequest(msgspec.Struct, frozen=True):
    protocol: str
    version: int


_handshake_decoder = msgspec.json.Decoder(HandshakeRequest)


def split_handshake(data: bytes) -> tuple[bytes | None, bytes]:
    """Split the handshake record (without its separator) from what follows it.

    Returns (None, data) while the separator has not arrived yet.
    """
    end = data.find(_RS)
    if end < 0:
        return None, data
    return data[:end], data[end + 1 :]


def parse_handshake(record: bytes) -> HandshakeRequest:
    """Decode a handshake request; ProtocolError naming what is wrong."""
    try:
        return _handshake_decoder.decode(record)
    except msgspec.DecodeError as error:
        raise ProtocolError(f"invalid handshake request: {error}") from None


def handshake_response(error: str | None = None) -> bytes:
    """`{}` + 0x1E on success, `{"error": ...}` + 0x1E otherwise (always JSON text)."""
    if error is None:
        return b"{}" + _RS
    return msgspec.json.encode({"error": error}) + _RS


# -- hub protocols ------------------------------------------------------------------------------


def _tuple(value: Any, what: str) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ProtocolError(f"{what} must be an array, got {type(value).__name__}")
    return tuple(value)


def _string(value: Any, what: str, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{what} must be a string, got {type(value).__name__}")
    return value


class JsonHubProtocol:
    """`{"protocol": "json", "version": 1}`: UTF-8 JSON records ending with 0x1E, text frames."""

    name = "json"
    version = 1
    binary = False

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes | str) -> list[HubMessage]:
        """Decode every complete record in `data` (plus what an earlier call left over)."""
        if isinstance(data, str):
            data = data.encode()
        data = self._buffer + data if self._buffer else data
        *records, self._buffer = data.split(_RS)
        messages = []
        for record in records:
            try:
                raw = msgspec.json.decode(record)
            except msgspec.DecodeError as error:
                raise ProtocolError(f"invalid JSON hub message: {error}") from None
            messages.append(self._message(raw))
        return messages

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete record held back."""
        return len(self._buffer)

    @staticmethod
    def _message(raw: Any) -> HubMessage:
        if not isinstance(raw, dict):
            raise ProtocolError("a hub message must be a JSON object")
        kind = raw.get("type")
        if not isinstance(kind, int) or isinstance(kind, bool):
            raise ProtocolError(f"hub message without an integer 'type': {raw!r:.100}")
        if kind in (MessageType.INVOCATION, MessageType.STREAM_INVOCATION):
            return HubMessage(
                kind,
                invocation_id=_string(raw.get("invocationId"), "invocationId"),
                target=_string(raw.get("target"), "target", optional=False),
                arguments=_tuple(raw.get("arguments"), "arguments"),
                stream_ids=_tuple(raw.get("streamIds"), "streamIds"),
            )
        if kind in (MessageType.STREAM_ITEM, MessageType.COMPLETION, MessageType.CANCEL_INVOCATION):
            return HubMessage(kind, invocation_id=_string(raw.get("invocationId"), "invocationId"))
        if kind == MessageType.CLOSE:
            return HubMessage(kind, error=_string(raw.get("error"), "error"))
        return HubMessage(kind)

    # encoding: bytes ready for a text frame

    @staticmethod
    def invocation(target: str, arguments: list) -> bytes:
        return msgspec.json.encode({"type": 1, "target": target, "arguments": arguments}) + _RS

    @staticmethod
    def invocation_raw(target: str, encoded_argument: bytes) -> bytes:
        """An invocation whose single argument is already JSON-encoded (shared by connections)."""
        head = b'{"type":1,"target":' + msgspec.json.encode(target) + b',"arguments":['
        return head + encoded_argument + b"]}" + _RS

    @staticmethod
    def encode_argument(value: Any) -> bytes:
        return msgspec.json.encode(value)

    @staticmethod
    def completion(invocation_id: str, result: Any = None, error: str | None = None) -> bytes:
        message: dict[str, Any] = {"type": 3, "invocationId": invocation_id}
        if error is not None:
            message["error"] = error
        elif result is not None:
            message["result"] = result
        return msgspec.json.encode(message) + _RS

    @staticmethod
    def completion_raw(invocation_id: str, encoded_result: bytes) -> bytes:
        """A completion whose result is already JSON-encoded (a shared snapshot)."""
        head = b'{"type":3,"invocationId":' + msgspec.json.encode(invocation_id) + b',"result":'
        return head + encoded_result + b"}" + _RS

    @staticmethod
    def ping() -> bytes:
        return b'{"type":6}' + _RS

    @staticmethod
    def close(error: str | None = None, allow_reconnect: bool = False) -> bytes:
        message: dict[str, Any] = {"type": 7}
        if error is not None:
            message["error"] = error
        if allow_reconnect:
            message["allowReconnect"] = True
        return msgspec.json.encode(message) + _RS


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def frame_msgpack(body: bytes) -> bytes:
    """Prefix one MessagePack message with its length (varint, 7 bits a byte, LSB first)."""
    return _varint(len(body)) + body


def _read_varint(data: bytes, offset: int) -> tuple[int, int] | None:
    """(value, offset after it), or None if `data` ends inside the varint."""
    value = shift = 0
    for index in range(offset, min(offset + 5, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    if len(data) - offset >= 5:
        raise ProtocolError("MessagePack length prefix longer than 5 bytes")
    return None


class MessagePackHubProtocol:
    """`{"protocol": "messagepack", "version": 1}`: length-prefixed MessagePack, binary frames."""

    name = "messagepack"
    version = 1
    binary = True

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes | str) -> list[HubMessage]:
        if isinstance(data, str):
            data = data.encode()
        data = self._buffer + data if self._buffer else data
        messages, offset = [], 0
        while offset < len(data):
            prefix = _read_varint(data, offset)
            if prefix is None:
                break
            size, start = prefix
            if start + size > len(data):
                break
            try:
                raw = msgspec.msgpack.decode(data[start : start + size])
            except msgspec.DecodeError as error:
                raise ProtocolError(f"invalid MessagePack hub message: {error}") from None
            messages.append(self._message(raw))
            offset = start + size
        self._buffer = data[offset:]
        return messages

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @staticmethod
    def _message(raw: Any) -> HubMessage:
        if not isinstance(raw, list) or not raw or not isinstance(raw[0], int):
            raise ProtocolError("a MessagePack hub message must be an array starting with its type")
        kind = raw[0]
        try:
            if kind in (MessageType.INVOCATION, MessageType.STREAM_INVOCATION):
                # [type, headers, invocationId, target, arguments, streamIds?]
                return HubMessage(
                    kind,
                    invocation_id=_string(raw[2], "invocationId"),
                    target=_string(raw[3], "target", optional=False),
                    arguments=_tuple(raw[4], "arguments"),
                    stream_ids=_tuple(raw[5] if len(raw) > 5 else None, "streamIds"),
                )
            if kind in (
                MessageType.STREAM_ITEM,
                MessageType.COMPLETION,
                MessageType.CANCEL_INVOCATION,
            ):
                return HubMessage(kind, invocation_id=_string(raw[2], "invocationId"))
            if kind == MessageType.CLOSE:
                return HubMessage(kind, error=_string(raw[1] if len(raw) > 1 else None, "error"))
        except IndexError:
            raise ProtocolError(f"MessagePack hub message of type {kind} is too short") from None
        return HubMessage(kind)

    @staticmethod
    def invocation(target: str, arguments: list) -> bytes:
        return frame_msgpack(msgspec.msgpack.encode([1, {}, None, target, arguments, []]))

    @staticmethod
    def invocation_raw(target: str, encoded_argument: bytes) -> bytes:
        body = msgspec.msgpack.encode([1, {}, None, target, [msgspec.Raw(encoded_argument)], []])
        return frame_msgpack(body)

    @staticmethod
    def encode_argument(value: Any) -> bytes:
        return msgspec.msgpack.encode(value)

    @staticmethod
    def completion(invocation_id: str, result: Any = None, error: str | None = None) -> bytes:
        # [3, headers, invocationId, resultKind (1 error, 2 void, 3 result), result?]
        if error is not None:
            message = [3, {}, invocation_id, 1, error]
        elif result is None:
            message = [3, {}, invocation_id, 2]
        else:
            message = [3, {}, invocation_id, 3, result]
        return frame_msgpack(msgspec.msgpack.encode(message))

    @staticmethod
    def completion_raw(invocation_id: str, encoded_result: bytes) -> bytes:
        body = msgspec.msgpack.encode([3, {}, invocation_id, 3, msgspec.Raw(encoded_result)])
        return frame_msgpack(body)

    @staticmethod
    def ping() -> bytes:
        return frame_msgpack(msgspec.msgpack.encode([6]))

    @staticmethod
    def close(error: str | None = None, allow_reconnect: bool = False) -> bytes:
        return frame_msgpack(msgspec.msgpack.encode([7, error, allow_reconnect]))


HubProtocol = JsonHubProtocol | MessagePackHubProtocol

#: Protocols by the name a handshake asks for.
PROTOCOLS: dict[str, type[JsonHubProtocol] | type[MessagePackHubProtocol]] = {
    "json": JsonHubProtocol,
    "messagepack": MessagePackHubProtocol,
}


def protocol_for(request: HandshakeRequest) -> HubProtocol:
    """A fresh parser/encoder for the requested protocol; ProtocolError if unavailable."""
    factory = PROTOCOLS.get(request.protocol)
    if factory is None:
        raise ProtocolError(f"Requested protocol '{request.protocol}' is not available.")
    if request.version != factory.version:
        raise ProtocolError(
            f"The server does not support version {request.version} of the "
            f"'{request.protocol}' protocol."
        )
    return factory()
