"""The communicator: a Unix stream socket where plugin hosts announce themselves.

Real Thunder serves binary COM-RPC here; the reference speaks the frames of refthunder.frames.
A host connects, sends Announce with the exchange id it was given (-x); the activation waiting
for that id takes the connection over as a Link. Announced links are what Controller.1.links
reports with state "COMRPC".
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable

from refthunder import frames

UCRED = struct.Struct("3i")  # struct ucred {pid, uid, gid} of SO_PEERCRED


class Link:
    """One announced plugin host on the communicator."""

    def __init__(
        self, sock: socket.socket, buffer: frames.FrameBuffer, announce: dict, remote: str
    ) -> None:
        self.sock = sock
        self.buffer = buffer
        self.announce = announce
        self.remote = remote
        self.exchange_id = int(announce.get("exchange", 0))
        self.callsign = str(announce.get("callsign", ""))
        self.peer_pid = _peer_pid(sock)
        self.closed = threading.Event()
        self._send_lock = threading.Lock()

    def send(self, command: int, payload: dict) -> None:
        with self._send_lock:
            frames.send_frame(self.sock, command, payload)

    def receive(self, timeout: float) -> tuple[int, dict]:
        return frames.receive_frame(self.sock, self.buffer, timeout)

    def watch(self, on_closed: Callable[[Link], None], log: logging.Logger) -> None:
        """From now on a thread reads the link until the host goes away, then calls on_closed."""

        def run() -> None:
            try:
                while True:
                    command, _ = frames.receive_frame(self.sock, self.buffer, None)
                    log.info(
                        "communicator: unexpected %s frame from '%s'",
                        frames.COMMAND_NAMES.get(command, hex(command)),
                        self.callsign,
                    )
            except (OSError, EOFError, frames.FrameError):
                pass
            self.closed.set()
            on_closed(self)

        threading.Thread(target=run, name=f"link-{self.callsign}", daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.closed.set()


class PendingAnnounce:
    """An activation waiting for the host it started to announce exchange id `exchange_id`."""

    def __init__(self, exchange_id: int) -> None:
        self.exchange_id = exchange_id
        self.link: Link | None = None
        self.arrived = threading.Event()


class CommunicatorServer:
    """Accepts hosts on the communicator socket and hands each to the activation expecting it."""

    def __init__(
        self, path: str, mode: int | None, announce_timeout_s: float, log: logging.Logger
    ) -> None:
        self.path = path
        self.mode = mode
        self.announce_timeout_s = announce_timeout_s
        self.log = log
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._pending: dict[int, PendingAnnounce] = {}
        self._links: dict[int, Link] = {}
        # RemoteConnection ids start at 1 and count every connection Thunder sets up.
        self._next_exchange_id = 1

    def open(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        if self.mode is not None:
            os.chmod(self.path, self.mode)
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, name="communicator", daemon=True).start()
        self.log.info(
            "communicator: listening on %s (mode %s)",
            self.path,
            oct(self.mode) if self.mode is not None else "default",
        )

    def close(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def next_exchange_id(self) -> int:
        with self._lock:
            value = self._next_exchange_id
            self._next_exchange_id += 1
            return value

    def expect(self, exchange_id: int) -> PendingAnnounce:
        pending = PendingAnnounce(exchange_id)
        with self._lock:
            self._pending[exchange_id] = pending
        return pending

    def forget(self, pending: PendingAnnounce) -> None:
        with self._lock:
            self._pending.pop(pending.exchange_id, None)

    def links(self) -> list[Link]:
        with self._lock:
            return [link for link in self._links.values() if not link.closed.is_set()]

    def drop(self, link: Link) -> None:
        with self._lock:
            if self._links.get(link.exchange_id) is link:
                del self._links[link.exchange_id]

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._greet, args=(connection,), name="announce", daemon=True
            ).start()

    def _greet(self, connection: socket.socket) -> None:
        buffer = frames.FrameBuffer()
        try:
            command, payload = frames.receive_frame(connection, buffer, self.announce_timeout_s)
        except (OSError, EOFError, TimeoutError, frames.FrameError) as error:
            self.log.info("communicator: connection closed before an Announce (%s)", error)
            connection.close()
            return
        if command != frames.ANNOUNCE:
            self.log.info("communicator: first frame was not an Announce; closing")
            connection.close()
            return
        link = Link(connection, buffer, payload, self.path)
        with self._lock:
            pending = self._pending.pop(link.exchange_id, None)
            if pending is not None:
                self._links[link.exchange_id] = link
        if pending is None:
            self.log.info(
                "communicator: Announce with unexpected exchange id %d from '%s'; closing",
                link.exchange_id,
                link.callsign,
            )
            connection.close()
            return
        self.log.info(
            "communicator: announce from '%s' (class %s, interface %s, exchange %d, pid %s)",
            link.callsign,
            payload.get("classname"),
            payload.get("interface"),
            link.exchange_id,
            link.peer_pid,
        )
        pending.link = link
        pending.arrived.set()


def _peer_pid(sock: socket.socket) -> int | None:
    """The host's pid as this process sees it (SO_PEERCRED translates across pid namespaces)."""
    try:
        pid, _, _ = UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, UCRED.size))
    except OSError:
        return None
    return pid or None
