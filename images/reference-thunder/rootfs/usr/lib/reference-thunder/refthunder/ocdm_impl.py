"""The reference OCDM implementation: answers DRM queries on a Unix socket (the `connector`).

It runs in the plugin host (Local/Container) or inside the daemon (mode Off). Like real
OpenCDMi it listens on the plugin configuration's `connector` (default /tmp/ocdm) and sets
OPEN_CDM_SERVER. The line protocol on the socket is the reference's own: one JSON request per
line ({"method": "systems"|"designators"|"sessions", "params": {...}}), one JSON answer per
line ({"result": ...} or {"error": {"code": <Thunder core code>, "message": ...}}).
Imports only os, json and socket: it is loaded by the plugin host.
"""

from __future__ import annotations

import json
import os
import socket

DEFAULT_CONNECTOR = "/tmp/ocdm"
DEFAULT_SYSTEMS = ({"name": "PlayReady", "designators": ["com.microsoft.playready"]},)
IMPLEMENTATION_CLASS = "OCDMImplementation"

# Thunder core error codes (Source/core/Portability.h) carried back to the daemon.
ERROR_UNKNOWN_KEY = 22
ERROR_BAD_REQUEST = 30
ERROR_UNKNOWN_METHOD = 53

MAX_REQUEST_BYTES = 65536


def connector_path(configuration: dict) -> str:
    """Where the implementation listens: `connector` of the plugin configuration."""
    value = configuration.get("connector") if isinstance(configuration, dict) else None
    return value if isinstance(value, str) and value else DEFAULT_CONNECTOR


def configured_systems(configuration: dict) -> list[dict]:
    """The DRM systems from `systems[{name, designators}]`, else PlayReady."""
    systems = configuration.get("systems") if isinstance(configuration, dict) else None
    result = []
    for entry in systems if isinstance(systems, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            designators = entry.get("designators")
            names = (
                [d for d in designators if isinstance(d, str)]
                if isinstance(designators, list)
                else []
            )
            result.append({"name": entry["name"], "designators": names})
    return result or [dict(system) for system in DEFAULT_SYSTEMS]


class OcdmImplementation:
    """Listens on the connector and answers systems/designators/sessions requests."""

    def __init__(self, configuration: dict) -> None:
        self.path = connector_path(configuration)
        self.systems = configured_systems(configuration)
        self.listener: socket.socket | None = None
        self._inode: int | None = None

    def open(self) -> None:
        """Bind and listen on the connector; raise OSError with a readable reason if impossible."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise OSError(f"cannot listen on {self.path}: {error.strerror}") from error
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self.path)
            listener.listen(8)
        except OSError as error:
            listener.close()
            raise OSError(f"cannot listen on {self.path}: {error.strerror}") from error
        self.listener = listener
        self._inode = os.stat(self.path).st_ino
        os.environ["OPEN_CDM_SERVER"] = self.path

    def close(self) -> None:
        """Stop listening and remove the socket file if it is still ours."""
        if self.listener is None:
            return
        try:  # noqa: SIM105 (contextlib would cost the plugin host an import)
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.listener = None
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        if os.environ.get("OPEN_CDM_SERVER") == self.path:
            del os.environ["OPEN_CDM_SERVER"]

    def serve(self, connection: socket.socket, timeout: float) -> None:
        """Answer every request line of one client connection, then close it."""
        connection.settimeout(timeout)
        pending = b""
        try:
            while True:
                data = connection.recv(4096)
                if not data:
                    return
                pending += data
                if len(pending) > MAX_REQUEST_BYTES:
                    return
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    connection.sendall(json.dumps(self.answer_line(line)).encode() + b"\n")
        except OSError:
            return
        finally:
            connection.close()

    def answer_line(self, line: bytes) -> dict:
        try:
            request = json.loads(line.decode())
        except ValueError:
            return _error(ERROR_BAD_REQUEST, "request is not JSON")
        if not isinstance(request, dict):
            return _error(ERROR_BAD_REQUEST, "request is not a JSON object")
        params = request.get("params")
        return self.answer(str(request.get("method")), params if isinstance(params, dict) else {})

    def answer(self, method: str, params: dict) -> dict:
        """IContentDecryption in miniature: Systems(), Designators(system), Sessions(system)."""
        if method == "systems":
            return {"result": [system["name"] for system in self.systems]}
        if method in ("designators", "sessions"):
            name = params.get("system")
            system = next((s for s in self.systems if s["name"] == name), None)
            if method == "sessions" and name is None:
                return {"result": []}
            if system is None:
                return _error(ERROR_UNKNOWN_KEY, f"unknown DRM system {name!r}")
            return {"result": list(system["designators"]) if method == "designators" else []}
        return _error(ERROR_UNKNOWN_METHOD, f"unknown method {method!r}")


def _error(code: int, message: str) -> dict:
    return {"error": {"code": code, "message": message}}
