"""A one-shot HTTP server on one address: registered blobs served once, expected uploads taken once.

It never maps a URL to the file system: a URL path is a random token, good for one request.
"""

from __future__ import annotations

import secrets
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from pytest_thunder_container.errors import TargetError


class _Exchange:
    """The blobs on offer and the uploads expected, each usable once (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offered: dict[str, bytes] = {}
        self._expected: dict[str, int] = {}
        self._received: dict[str, bytes] = {}

    def offer(self, data: bytes) -> str:
        path = "/" + secrets.token_urlsafe(24)
        with self._lock:
            self._offered[path] = data
        return path

    def expect(self, limit: int) -> str:
        path = "/" + secrets.token_urlsafe(24)
        with self._lock:
            self._expected[path] = limit
        return path

    def take_offer(self, path: str) -> bytes | None:
        with self._lock:
            return self._offered.pop(path, None)

    def take_expected(self, path: str) -> int | None:
        with self._lock:
            return self._expected.pop(path, None)

    def deliver(self, path: str, data: bytes) -> None:
        with self._lock:
            self._received[path] = data

    def received(self, path: str) -> bytes | None:
        with self._lock:
            return self._received.get(path)


class _Handler(BaseHTTPRequestHandler):
    """GET of an offered token, POST to an expected one; anything else is 404."""

    server: _Server
    protocol_version = "HTTP/1.0"

    def setup(self) -> None:
        self.timeout = self.server.io_timeout
        super().setup()

    def do_GET(self) -> None:
        data = self.server.exchange.take_offer(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        limit = self.server.exchange.take_expected(self.path)
        if limit is None:
            self.send_error(404)
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > limit:
            self.send_error(413 if length.isdigit() else 411)
            return
        data = self.rfile.read(int(length))
        if len(data) != int(length):
            self.send_error(400, "short body")
            return
        self.server.exchange.deliver(self.path, data)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the transfer records say what happened."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a target that stalls must not hold up the harness

    def __init__(self, address: str, port: int, io_timeout: float) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.exchange = _Exchange()
        self.io_timeout = io_timeout
        super().__init__((address, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer would look the host name up in DNS: slow, and of no use here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class OneShotServer:
    """An HTTP server on one address, serving only registered blobs, each once; for one transfer."""

    def __init__(self, address: str, port: int = 0, *, io_timeout: float = 60.0) -> None:
        try:
            self._server = _Server(address, port, io_timeout)
        except OSError as error:
            raise TargetError(
                f"can't serve files on {address}:{port} ({error.strerror}): give an address of "
                "this host that the target can reach (--thunder-host-address)"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def offer(self, data: bytes) -> str:
        """Serve `data` once; returns the URL path (`/<token>`)."""
        return self._server.exchange.offer(data)

    def expect_upload(self, limit: int) -> str:
        """Accept one POST of at most `limit` bytes; returns the URL path."""
        return self._server.exchange.expect(limit)

    def uploaded(self, path: str) -> bytes | None:
        """The body POSTed to `path`, or None."""
        return self._server.exchange.received(path)

    def url(self, path: str, host: str) -> str:
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.address[1]}{path}"

    def __enter__(self) -> OneShotServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
