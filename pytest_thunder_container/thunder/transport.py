"""JSON-RPC to Thunder: its errors, and the ways there (HTTP from the host, wget on the target)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pytest_thunder_container.errors import ConsoleError, ThunderContainerError
from pytest_thunder_container.shell.protocol import CommandResult, Shell

SHOWN_BYTES = 200
# A serial console's line discipline keeps at most 4095 bytes of one line; a longer (quoted)
# request body goes through a file on the target instead of the command line.
_INLINE_BODY_LIMIT = 1024
# wget runs without -T (see ConsoleTransport), so the shell's timeout is the only one: leave room
# for the command's echo on a slow console.
_CONSOLE_MARGIN_S = 2.0
_T = TypeVar("_T")
_HTTP_ERROR = re.compile(r"server returned error: HTTP/[0-9.]+ (\d{3})([^\r\n]*)")


# Core error numbers, the same in R4.4 (core/Portability.h) and R5 (core/Errors.h); the usual ones.
_CORE_ERROR_NAMES = {
    1: "ERROR_GENERAL",
    2: "ERROR_UNAVAILABLE",
    5: "ERROR_ILLEGAL_STATE",
    6: "ERROR_OPENING_FAILED",
    11: "ERROR_TIMEDOUT",
    12: "ERROR_INPROGRESS",
    15: "ERROR_INCORRECT_URL",
    19: "ERROR_CLOSING_FAILED",
    22: "ERROR_UNKNOWN_KEY",
    23: "ERROR_INCOMPLETE_CONFIG",
    24: "ERROR_PRIVILIGED_REQUEST",
    30: "ERROR_BAD_REQUEST",
    31: "ERROR_PENDING_CONDITIONS",
    43: "ERROR_NOT_EXIST",
    44: "ERROR_NOT_SUPPORTED",
    46: "ERROR_HIBERNATED",
}
_HINTS = {
    2: "the plugin is not active: activate it first",
    22: "no such key: is a plugin with that callsign configured in /etc/Thunder/plugin/?",
    -32601: "this Thunder has no such method (R4.4 and R5 name some Controller methods apart)",
}


class ThunderUnreachable(ThunderContainerError):
    """Thunder's JSON-RPC endpoint can't be reached, or what answers there is not Thunder."""


class HttpStatusError(ThunderUnreachable):
    """The web server answered a non-2xx status; `body` may still hold a JSON-RPC error."""

    def __init__(self, message: str, status: int, body: bytes) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ThunderError(ThunderContainerError):
    """Thunder answered a JSON-RPC call with an error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        self.method = method
        self.code = code
        self.core_code = core_code_of(code)
        self.message = message
        core = ""
        if self.core_code is not None:
            name = _CORE_ERROR_NAMES.get(self.core_code, "core error")
            core = f" = {name} {self.core_code}"
        hint = _HINTS.get(code) or _HINTS.get(self.core_code or 0)
        super().__init__(
            f"Thunder {method} failed: {message!r} (JSON-RPC error {code}{core})"
            + (f"; {hint}" if hint else "")
        )


def core_code_of(code: int) -> int | None:
    """Thunder's core error number inside a JSON-RPC error code, if it carries one."""
    if 0 < code < 500:
        return code  # R4.4 sends core numbers as they are (core/JSONRPC.h, SetError)
    if -31500 < code < -31000:
        return -31000 - code  # R5 sends ApplicationErrorCodeBase (-31000) minus the core number
    return None  # JSON-RPC's own -326xx/-32000, COM-RPC errors (+500), custom codes


def decode_reply(raw: bytes) -> dict[str, Any] | None:
    """The decoded JSON-RPC response, or None when `raw` is not one."""
    try:
        reply = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(reply, dict) or "id" not in reply:
        return None
    if "result" not in reply and "error" not in reply:
        return None
    return reply


def excerpt(data: bytes | str) -> str:
    """The first bytes of an answer, quoted, for an error message."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    more = f" ... ({len(data)} bytes in all)" if len(data) > SHOWN_BYTES else ""
    return repr(text[:SHOWN_BYTES]) + more


class JsonRpcTransport(Protocol):
    """Carries one JSON-RPC request body to Thunder and brings back the answer's body."""

    @property
    def endpoint(self) -> str: ...

    def post(self, body: bytes, timeout: float) -> bytes: ...


class HttpTransport:
    """POSTs to Thunder's /jsonrpc over one kept-alive HTTP connection."""

    def __init__(self, url: str, *, timeout_factor: float = 1.0) -> None:
        parts = urlsplit(url)
        try:
            port = parts.port or 80
        except ValueError:
            port = 0
        if parts.scheme != "http" or not parts.hostname or not port:
            raise ThunderContainerError(
                f"Thunder JSON-RPC URL {url!r} is not of the form http://HOST[:PORT]/jsonrpc; "
                "pass e.g. --thunder-jsonrpc=http://192.168.0.20:9998/jsonrpc"
            )
        self._url = url
        self._factor = timeout_factor
        self._host = parts.hostname
        self._port = port
        self._path = parts.path or "/jsonrpc"
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return self._url

    def post(self, body: bytes, timeout: float) -> bytes:
        """POST one request; `timeout` is nominal, multiplied here by the timeout factor."""
        timeout *= self._factor
        with self._lock:
            reused = self._connection is not None
            try:
                return self._exchange(body, timeout)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if not reused:
                    raise self._unreachable(exc, timeout) from exc
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                raise self._unreachable(exc, timeout) from exc
            # Thunder drops idle kept-alive connections; the stale one failed before any answer,
            # so the request is sent once more on a fresh connection.
            try:
                return self._exchange(body, timeout)
            except (http.client.HTTPException, OSError) as exc:
                self.close()
                raise self._unreachable(exc, timeout) from exc

    def close(self) -> None:
        """Drop the kept-alive connection (the next post opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _exchange(self, body: bytes, timeout: float) -> bytes:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        connection = self._connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        connection.request("POST", self._path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        if 200 <= response.status < 300:
            return data
        raise HttpStatusError(
            f"Thunder JSON-RPC at {self._url} answered HTTP {response.status} {response.reason}: "
            f"{excerpt(data)}. Is {self._path} Thunder's JSON-RPC path and port {self._port} "
            "Thunder's? Pass the right endpoint with --thunder-jsonrpc=URL.",
            response.status,
            data,
        )

    def _unreachable(self, exc: BaseException, timeout: float) -> ThunderUnreachable:
        if isinstance(exc, TimeoutError):
            what = f"no answer within {timeout:.1f} s"
        elif isinstance(exc, ConnectionRefusedError):
            what = "connection refused"
        else:
            what = f"{type(exc).__name__}: {exc}"
        return ThunderUnreachable(
            f"Thunder JSON-RPC at {self._url}: {what}. Is Thunder running on the target, "
            f"listening on port {self._port}? Pass the right endpoint with "
            "--thunder-jsonrpc=URL (e.g. http://<target-ip>:9998/jsonrpc)."
        )


class ConsoleTransport:
    """POSTs with the target's busybox wget through a shell, for targets without a network.

    No `-T`: busybox built without FEATURE_WGET_TIMEOUT crashes on it, so the shell's timeout
    bounds the call.
    """

    def __init__(
        self, shell: Shell, port: int = 80, host: str = "127.0.0.1", path: str = "/jsonrpc"
    ) -> None:
        if not 0 < port < 65536 or not host or not path.startswith("/"):
            raise ThunderContainerError(
                f"Thunder JSON-RPC endpoint host={host!r} port={port!r} path={path!r} is not "
                "usable: give a host, a port 1-65535 and a path starting with '/' (e.g. /jsonrpc)"
            )
        self._shell = shell
        self._url = f"http://{host}:{port}{path}"
        self._host = host
        self._port = port
        self._requests = 0

    @property
    def endpoint(self) -> str:
        return f"{self._url} (wget on the target)"

    def post(self, body: bytes, timeout: float) -> bytes:
        self._requests += 1
        shell_timeout = timeout + _CONSOLE_MARGIN_S
        body_file = ""
        post_data = shlex.quote(body.decode("utf-8"))
        if len(post_data) > _INLINE_BODY_LIMIT:
            body_file = f"/tmp/thunder-jsonrpc-{os.getpid()}-{self._requests}.json"
            self._on_console(lambda: self._shell.put(body, body_file), shell_timeout)
            post_data = f'"$(cat {shlex.quote(body_file)})"'
        wget = (
            f"wget -q -O - --header {shlex.quote('Content-Type: application/json')} "
            f"--post-data {post_data} {shlex.quote(self._url)}"
        )
        cleanup = f" rm -f {shlex.quote(body_file)};" if body_file else ""
        # The echo ends the answer's line (Thunder's body has no newline) before the console's
        # own markers; the subshell hands back wget's exit code.
        command = f"({wget}; rc=$?;{cleanup} echo; exit $rc)"
        result = self._on_console(lambda: self._shell.run(command, shell_timeout), shell_timeout)
        if result.returncode == 0:
            return result.stdout.strip().encode("utf-8")
        raise self._failure(result)

    def _on_console(self, action: Callable[[], _T], timeout: float) -> _T:
        try:
            return action()
        except ConsoleError as exc:
            raise ThunderUnreachable(
                f"Thunder JSON-RPC at {self.endpoint}: the console command failed "
                f"(time allowed {timeout:.1f} s): {exc}. Is Thunder running and answering on "
                f"{self._host}:{self._port}?"
            ) from exc

    def _failure(self, result: CommandResult) -> ThunderUnreachable:
        said = result.stdout.strip()
        where = f"Thunder JSON-RPC at {self.endpoint}"
        status = _HTTP_ERROR.search(said)
        if status:
            return HttpStatusError(
                f"{where} answered HTTP {status[1]}{status[2]} (wget said {excerpt(said)}); "
                "busybox wget hides the body of such answers. Is the port and path Thunder's?",
                int(status[1]),
                b"",
            )
        if "can't connect" in said or "Connection refused" in said:
            fix = f"Is Thunder running on the target and listening on {self._host}:{self._port}?"
        elif result.returncode == 127 or "not found" in said:
            fix = "The target has no wget: JSON-RPC through the console needs busybox wget."
        elif "unrecognized option" in said or "invalid option" in said:
            fix = "The target's wget lacks --post-data/--header (busybox WGET_LONG_OPTIONS)."
        else:
            fix = f"Is Thunder answering on {self._host}:{self._port}?"
        return ThunderUnreachable(
            f"{where}: wget exited {result.returncode}: {excerpt(said)}. {fix} With a network "
            "on the target, pass --thunder-jsonrpc=URL instead."
        )
