"""Payload shapes of real Thunder R4.4 and R5, and a local HTTP server that replays them.

Sources (facts, not code): rdkcentral/Thunder tags R4.4.3 and R5.3.0 -- Controller.cpp,
PluginServer.h (HTTP status of JSON-RPC answers), core/JSONRPC.h (SetError: error codes and texts),
plugins/MetaData.cpp (R4.4 lowercase states), plugins/IController.h and doc/ControllerPlugin.md.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

R4_4 = "R4.4"
R5 = "R5"
ERROR_GENERAL = 1
ERROR_UNAVAILABLE = 2
ERROR_UNKNOWN_KEY = 22
# R5.3 texts from SetError; R4.4 sends ErrorToString (the constant's name), or its own text.
R5_TEXTS = {ERROR_UNAVAILABLE: "The service is not active."}
R4_4_TEXTS = {ERROR_UNAVAILABLE: "Service is not active"}
CORE_NAMES = {ERROR_GENERAL: "ERROR_GENERAL", ERROR_UNKNOWN_KEY: "ERROR_UNKNOWN_KEY"}
UNKNOWN_METHOD = {"code": -32601, "message": "Unknown method."}
SETTABLE_STATES = {"Deactivated", "Deactivation", "Precondition", "Unavailable"}
VERSIONS = {
    R4_4: {"hash": "engineering_build_for_debug_purpose_only", "major": 4, "minor": 4, "patch": 3},
    R5: {"hash": "a" * 64, "major": 5, "minor": 3, "patch": 0},
}
PROCESSINFO_R4_4 = {"threads": [1234, 1235], "pending": 0, "occupation": 2}
SUBSYSTEMS = [
    {"subsystem": "Platform", "active": True},
    {"subsystem": "Network", "active": True},
    {"subsystem": "Security", "active": False},
    {"subsystem": "Decryption", "active": False},
]
WEB_LINK = {"remote": "127.0.0.1:53412", "state": "WebServer", "activity": True, "id": 1}
COMRPC_LINK = {
    "remote": "/tmp/communicator",
    "state": "COMRPC",
    "activity": True,
    "id": 7,
    "name": "WPEFramework::Communicator",
}
OCDM_CONFIGURATION = {
    "connector": "/tmp/ocdm",
    "root": {"mode": "Container", "configuration": {"containertype": "runc"}},
}
OCDM_DRMS = [{"name": "PlayReady", "keysystems": ["com.microsoft.playready"]}]


def error_object(dialect: str, core: int, text: str | None = None) -> dict[str, Any]:
    """A JSON-RPC error for a core error number: R5 -31000-core, R4.4 the raw number."""
    texts = R5_TEXTS if dialect == R5 else R4_4_TEXTS
    message = text or texts.get(core) or CORE_NAMES[core]
    return {"code": -31000 - core if dialect == R5 else core, "message": message}


def plugin_entry(dialect: str, callsign: str, state: str, configuration: Any) -> dict[str, Any]:
    """One plugin's Controller entry: R5 `services` or R4.4 `status` (state in lowercase)."""
    if dialect == R5:
        return {
            "callsign": callsign,
            "locator": f"libThunder{callsign}.so",
            "classname": callsign,
            "module": f"Plugin_{callsign}",
            "state": state,
            "startmode": "Deactivated",
            "resumed": False,
            "version": {"hash": "b" * 64, "major": 1, "minor": 0, "patch": 0},
            "configuration": configuration,
            "observers": 0,
            "processedrequests": 0,
            "processedobjects": 0,
        }
    return {
        "callsign": callsign,
        "locator": f"libWPEFramework{callsign}.so",
        "classname": callsign,
        "autostart": False,
        "precondition": ["Platform"],
        "configuration": configuration,
        "state": state.lower(),
        "processedrequests": 2,
        "processedobjects": 0,
        "observers": 0,
        "module": f"Plugin_{callsign}",
        "version": {"hash": "custom", "major": 1, "minor": 0, "patch": 0},
    }


Reply = tuple[int, bytes]


class ReplayThunder:
    """A local HTTP server answering Controller calls the way one Thunder generation does."""

    def __init__(self, dialect: str, *, error_status: int | None = None) -> None:
        self.dialect = dialect
        # R4.4 and R5.0 answer JSON-RPC errors with HTTP 202, R5.1+ with 200.
        self.error_status = error_status or (202 if dialect == R4_4 else 200)
        self.states = {"Controller": "Activated", "OCDM": "Deactivated", "WebKitBrowser": "Resumed"}
        self.configurations: dict[str, Any] = {"OCDM": dict(OCDM_CONFIGURATION)}
        self.hidden: set[str] = set()
        self.pending: dict[str, deque[str]] = {}
        self.requests: list[dict[str, Any]] = []
        self.connections = 0
        self.close_each = False
        self.override: Callable[[dict[str, Any]], Reply | None] | None = None
        self.release = threading.Event()
        self.hang = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jsonrpc"

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def methods(self) -> list[str]:
        return [request.get("method", "") for request in self.requests]

    def answer(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self.override and (reply := self.override(request)) is not None:
                return reply
            outcome = self._dispatch(str(request.get("method")), request.get("params"))
        key, value = outcome
        body = {"jsonrpc": "2.0", "id": request.get("id"), key: value}
        status = 200 if key == "result" else self.error_status
        return status, json.dumps(body).encode()

    def _dispatch(self, method: str, params: Any) -> tuple[str, Any]:
        name, _, index = method.partition("@")
        if name in self.hidden:
            return "error", UNKNOWN_METHOD
        if name == "OCDM.1.drms":
            if self.states["OCDM"] not in ("Activated", "Resumed"):
                return "error", error_object(self.dialect, ERROR_UNAVAILABLE)
            return "result", OCDM_DRMS
        status_names = {"Controller.1.status"} | (
            {"Controller.1.services"} if self.dialect == R5 else set()
        )
        if name in status_names:
            return self._status(index)
        if name in ("Controller.1.activate", "Controller.1.deactivate"):
            callsign = (params or {}).get("callsign", "")
            if callsign not in self.states:
                return "error", error_object(self.dialect, ERROR_UNKNOWN_KEY)
            self.states[callsign] = "Activated" if name.endswith(".activate") else "Deactivated"
            return "result", None
        if name == "Controller.1.configuration":
            return self._configuration(index, params)
        simple = {
            "Controller.1.subsystems": SUBSYSTEMS,
            "Controller.1.links": self._links(),
            "Controller.1.version": VERSIONS[self.dialect],
        }
        if self.dialect == R5:
            simple["Controller.1.framework"] = VERSIONS[R5]
        else:
            simple["Controller.1.processinfo"] = PROCESSINFO_R4_4
        if name in simple and not index:
            return "result", simple[name]
        return "error", UNKNOWN_METHOD

    def _status(self, callsign: str) -> tuple[str, Any]:
        if callsign and callsign not in self.states:
            return "error", error_object(self.dialect, ERROR_UNKNOWN_KEY)
        if self.pending.get(callsign):
            self.states[callsign] = self.pending[callsign].popleft()
        wanted = [callsign] if callsign else sorted(self.states)
        entries = [
            plugin_entry(self.dialect, name, self.states[name], self.configurations.get(name))
            for name in wanted
        ]
        # R5's services leaves out the array when it holds one entry; R4.4 always sends one.
        if self.dialect == R5 and len(entries) == 1:
            return "result", entries[0]
        return "result", entries

    def _configuration(self, callsign: str, params: Any) -> tuple[str, Any]:
        if callsign not in self.states:
            return "error", error_object(self.dialect, ERROR_UNKNOWN_KEY)
        if params is None:
            return "result", self.configurations.get(callsign)
        if self.states[callsign] not in SETTABLE_STATES:
            return "error", error_object(self.dialect, ERROR_GENERAL)
        self.configurations[callsign] = params
        return "result", None

    def _links(self) -> list[dict[str, Any]]:
        links = [dict(WEB_LINK)]
        if self.states.get("OCDM") == "Activated":
            links.append(dict(COMRPC_LINK))
        return links


def _handler_for(replay: ReplayThunder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # answer at once, as a small-request server should

        def setup(self) -> None:
            super().setup()
            replay.connections += 1

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if replay.hang:
                replay.release.wait(30)
                return
            try:
                request = json.loads(body)
            except ValueError:
                request = {"unparsed": body.decode("utf-8", "replace")}
            status, answer = replay.answer(request)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            if replay.close_each:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
