"""JSON-RPC 2.0 envelopes: parse a request, route it to Controller or a plugin, build the answer.

HTTP statuses as real Thunder's WebRequestJob (Source/Thunder/PluginServer.h): R5 answers 200
also for JSON-RPC errors and 400 with a -31050 (ERROR_PARSE_FAILURE) error body for a body that
is not JSON; R4.4 answers 202 for JSON-RPC errors and 202 without a body for an unparsable one.
A notification (no id) gets 204 without a body.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from refthunder.controller import CALLSIGN, Controller
from refthunder.rpcerrors import (
    ERROR_BAD_REQUEST,
    ERROR_INVALID_SIGNATURE,
    ERROR_NOT_EXIST,
    ERROR_PARSE_FAILURE,
    ERROR_UNKNOWN_METHOD,
    R5,
    ThunderError,
    jsonrpc_error,
)
from refthunder.services import ServiceRegistry

QUIET_METHODS = ("services", "status", "links", "subsystems", "processinfo", "configuration")


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    reason: str
    body: bytes | None


@dataclass(frozen=True)
class Designator:
    callsign: str
    version: str | None
    method: str
    index: str | None


def parse_designator(text: str) -> Designator:
    """'Callsign[.version].method[@index]' as Core::JSONRPC::Message splits it."""
    head, at, index = text.partition("@")
    parts = head.split(".")
    if len(parts) == 3:
        callsign, version, method = parts
    elif len(parts) == 2:
        callsign, version, method = parts[0], None, parts[1]
    else:
        callsign, version, method = "", None, head
    return Designator(callsign, version, method, index if at else None)


class JsonRpcDispatcher:
    """Turns one HTTP request body into one HTTP answer."""

    def __init__(
        self,
        generation: str,
        controller: Controller,
        registry: ServiceRegistry,
        log: logging.Logger,
    ) -> None:
        self.generation = generation
        self.controller = controller
        self.registry = registry
        self.log = log

    def handle(self, body: bytes) -> HttpAnswer:
        try:
            request = json.loads(body.decode("utf-8"))
            if not isinstance(request, dict):
                raise ValueError("the JSON-RPC message is not an object")
        except (ValueError, UnicodeDecodeError) as error:
            self.log.info("jsonrpc: unparsable request (%s)", error)
            if self.generation != R5:
                return HttpAnswer(202, "Failed to parse JSONRPC message", None)
            answer = {
                "jsonrpc": "2.0",
                "id": None,
                "error": jsonrpc_error(R5, ThunderError(ERROR_PARSE_FAILURE, text=str(error))),
            }
            return HttpAnswer(400, "JSON was incorrectly formatted", json.dumps(answer).encode())
        has_id = "id" in request
        started = time.monotonic()
        designator = parse_designator(str(request.get("method", "")))
        has_params = request.get("params") is not None
        try:
            result = self.route(designator, request.get("params"), has_params)
            answer: dict = {"jsonrpc": "2.0", "id": request.get("id"), "result": result}
            failed = False
        except ThunderError as error:
            answer = {
                "jsonrpc": "2.0",
                "id": request.get("id"),
                "error": jsonrpc_error(self.generation, error),
            }
            failed = True
        elapsed_ms = (time.monotonic() - started) * 1000
        if failed or designator.method not in QUIET_METHODS:
            outcome = json.dumps(answer.get("error") if failed else answer.get("result"))
            self.log.info(
                "jsonrpc: %s %s -> %s (%.0f ms)",
                request.get("method"),
                json.dumps(request.get("params")),
                outcome[:300],
                elapsed_ms,
            )
        if not has_id:
            return HttpAnswer(
                204, "A JSONRPC Notification was send to the server. Processed it..", None
            )
        payload = json.dumps(answer).encode()
        if not failed:
            return HttpAnswer(200, "JSONRPC executed succesfully", payload)
        code = answer["error"]["code"]
        return HttpAnswer(
            200 if self.generation == R5 else 202, f"Failure on JSONRPC: {code}", payload
        )

    def route(self, designator: Designator, params: object, has_params: bool) -> object:
        if designator.version not in (None, "1"):
            raise ThunderError(ERROR_INVALID_SIGNATURE)
        if designator.callsign in ("", CALLSIGN):
            if not designator.method:
                raise ThunderError(ERROR_UNKNOWN_METHOD)
            return self.controller.invoke(designator.method, designator.index, params, has_params)
        service = self.registry.get(designator.callsign)
        if service is None:
            # R5.3 ServiceMap::FromIdentifier gives ERROR_NOT_EXIST, R4.4 ERROR_BAD_REQUEST.
            raise ThunderError(ERROR_NOT_EXIST if self.generation == R5 else ERROR_BAD_REQUEST)
        return service.invoke(designator.method, designator.index, params, has_params)
