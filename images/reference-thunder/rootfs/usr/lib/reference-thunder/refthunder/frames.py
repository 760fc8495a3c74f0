"""Frames of the reference communicator: a varint length, a command byte, a JSON payload.

Shared by the daemon and the plugin host, so it imports only json, socket and time. The frame
layout is the reference's own (real Thunder speaks binary COM-RPC here).
"""

from __future__ import annotations

import json
import socket
import time

ANNOUNCE = 0x01  # host -> daemon: who I am (instance, interface, exchange, version, kind, ...)
SETUP = 0x02  # daemon -> host: the plugin's configuration and the host's timing
INITIALIZE = 0x03  # daemon -> host: bring the implementation up
INITIALIZED = 0x04  # host -> daemon: {"error": null} or {"error": "why not"}
DEINITIALIZE = 0x05  # daemon -> host: tear the implementation down and exit

COMMAND_NAMES = {
    ANNOUNCE: "Announce",
    SETUP: "Setup",
    INITIALIZE: "Initialize",
    INITIALIZED: "Initialized",
    DEINITIALIZE: "Deinitialize",
}

MAX_FRAME_BYTES = 1 << 20


class FrameError(Exception):
    """The byte stream is not a sequence of reference communicator frames."""


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer as little-endian base-128 groups (7 bits per byte)."""
    if value < 0:
        raise ValueError(f"varint must not be negative: {value}")
    out = bytearray()
    while True:
        group = value & 0x7F
        value >>= 7
        if value:
            out.append(group | 0x80)
        else:
            out.append(group)
            return bytes(out)


def encode_frame(command: int, payload: dict) -> bytes:
    """One frame: varint(len(command byte + payload)), command byte, UTF-8 JSON payload."""
    body = bytes([command]) + json.dumps(payload, separators=(",", ":")).encode()
    return encode_varint(len(body)) + body


class FrameBuffer:
    """Accumulates received bytes and hands out complete frames."""

    def __init__(self) -> None:
        self._data = bytearray()

    def feed(self, data: bytes) -> None:
        self._data.extend(data)

    def pop(self) -> tuple[int, dict] | None:
        """The next complete frame as (command, payload), or None if more bytes are needed."""
        length = 0
        shift = 0
        for index, byte in enumerate(self._data):
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                start = index + 1
                break
            if shift > 28:
                raise FrameError("frame length varint is longer than 4 bytes")
        else:
            return None
        if length == 0 or length > MAX_FRAME_BYTES:
            raise FrameError(f"frame length {length} is out of range")
        if len(self._data) < start + length:
            return None
        body = bytes(self._data[start : start + length])
        del self._data[: start + length]
        try:
            payload = json.loads(body[1:].decode()) if len(body) > 1 else {}
        except ValueError as error:
            raise FrameError(f"frame payload is not JSON: {error}") from error
        if not isinstance(payload, dict):
            raise FrameError("frame payload is not a JSON object")
        return body[0], payload


def receive_frame(
    sock: socket.socket, buffer: FrameBuffer, timeout: float | None
) -> tuple[int, dict]:
    """Block until one frame arrives; raise TimeoutError after `timeout` s, EOFError on close."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        frame = buffer.pop()
        if frame is not None:
            return frame
        if deadline is None:
            sock.settimeout(None)
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame within the time allowed")
            sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError as error:
            raise TimeoutError("no frame within the time allowed") from error
        if not data:
            raise EOFError("the peer closed the channel")
        buffer.feed(data)


def send_frame(sock: socket.socket, command: int, payload: dict) -> None:
    sock.sendall(encode_frame(command, payload))
