"""HTTP/1.1 for JSON-RPC: POST /jsonrpc, keep-alive, one thread per connection.

A thread per connection keeps a slow activation from blocking a status query on another
connection, as Thunder's worker pool does. Open connections are the "WebServer" entries of
Controller.1.links. Only what the harness needs of HTTP: no chunked bodies, no WebSocket.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import threading

from refthunder.jsonrpc import HttpAnswer, JsonRpcDispatcher

MAX_LINE = 8192
MAX_BODY = 1 << 20
JSONRPC_PATHS = ("/jsonrpc", "/jsonrpc/")


class LinkTable:
    """The open HTTP connections, numbered from 1 like Thunder's channel ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 1
        self._links: dict[int, dict] = {}

    def open(self, remote: str) -> int:
        with self._lock:
            link_id = self._next
            self._next += 1
            self._links[link_id] = {
                "remote": remote,
                "state": "WebServer",
                "activity": False,
                "id": link_id,
            }
            return link_id

    def touch(self, link_id: int) -> None:
        with self._lock:
            if link_id in self._links:
                self._links[link_id]["activity"] = True

    def close(self, link_id: int) -> None:
        with self._lock:
            self._links.pop(link_id, None)

    def report(self) -> list[dict]:
        with self._lock:
            return [dict(link) for link in self._links.values()]


class JsonRpcHttpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        dispatcher: JsonRpcDispatcher,
        idle_timeout_s: float,
        log: logging.Logger,
    ) -> None:
        self.dispatcher = dispatcher
        self.idle_timeout_s = idle_timeout_s
        self.log = log
        self.links = LinkTable()
        super().__init__(address, HttpConnection)


class HttpConnection(socketserver.BaseRequestHandler):
    """One client connection: requests in sequence until close or idle timeout."""

    server: JsonRpcHttpServer

    def handle(self) -> None:
        host, port = self.client_address[:2]
        link_id = self.server.links.open(f"{host}:{port}")
        self.request.settimeout(self.server.idle_timeout_s or None)
        reader = self.request.makefile("rb")
        try:
            while self._one_request(reader, link_id):
                pass
        except (OSError, ValueError):
            pass
        finally:
            self.server.links.close(link_id)
            reader.close()

    def _one_request(self, reader, link_id: int) -> bool:
        """Serve one request; False when the connection is to be closed."""
        line = reader.readline(MAX_LINE)
        if not line or not line.strip():
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            self._send(HttpAnswer(400, "Bad Request", None), False)
            return False
        verb, path, version = parts
        headers: dict[str, str] = {}
        while True:
            header = reader.readline(MAX_LINE)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        length = int(headers.get("content-length", "0") or "0")
        if length < 0 or length > MAX_BODY:
            self._send(HttpAnswer(413, "Request Entity Too Large", None), False)
            return False
        if length and headers.get("expect", "").lower() == "100-continue":
            self.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = reader.read(length) if length else b""
        self.server.links.touch(link_id)
        if path.split("?")[0] not in JSONRPC_PATHS:
            answer = HttpAnswer(404, "Not Found", None)
        elif verb != "POST" or not body:
            answer = HttpAnswer(405, "JSON-RPC only supported via POST request with a body", None)
        else:
            answer = self.server.dispatcher.handle(body)
        self._send(answer, keep_alive)
        return keep_alive

    def _send(self, answer: HttpAnswer, keep_alive: bool) -> None:
        body = answer.body or b""
        head = [
            f"HTTP/1.1 {answer.status} {answer.reason}",
            "Server: reference-thunder (not Thunder)",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        if answer.status != 204:  # RFC 9110: no Content-Length on 204
            head.append(f"Content-Length: {len(body)}")
        if answer.body is not None:
            head.append("Content-Type: application/json")
        try:
            self.request.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            return
        if not keep_alive:
            try:
                self.request.shutdown(socket.SHUT_WR)
            except OSError:
                return
