"""Thunder's Controller over JSON-RPC in both API generations (R4.4, R5), in R5's names."""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.thunder.transport import (
    ConsoleTransport,
    HttpStatusError,
    HttpTransport,
    JsonRpcTransport,
    ThunderError,
    ThunderUnreachable,
    core_code_of,
    decode_reply,
    excerpt,
)
from pytest_thunder_container.waits import Deadline

__all__ = [
    "R4_4",
    "R5",
    "STATES",
    "ConsoleTransport",
    "HttpTransport",
    "ThunderClient",
    "ThunderError",
    "ThunderStateTimeout",
    "ThunderUnreachable",
    "core_code_of",
    "normalise_state",
]

R4_4 = "R4.4"
R5 = "R5"
STATES = (
    "Activated",
    "Activation",
    "Deactivated",
    "Deactivation",
    "Destroyed",
    "Hibernated",
    "Precondition",
    "Resumed",
    "Suspended",
    "Unavailable",
)
_STATE_BY_LOWER = {name.lower(): name for name in STATES}
# Thunder reports a plugin with IStateControl as Resumed or Suspended instead of Activated.
_ACTIVATED_STATES = frozenset({"Activated", "Resumed", "Suspended"})
_POLL_INTERVAL_S = 0.2
RuncWindow = Callable[[], AbstractContextManager[object]]


def normalise_state(state: str) -> str:
    """A plugin state in R5's spelling (R4.4 reports `activated`, R5 `Activated`)."""
    return _STATE_BY_LOWER.get(state.lower(), state)


class ThunderStateTimeout(ThunderContainerError, TimeoutError):
    """A plugin did not reach the wanted state in time."""

    def __init__(self, message: str, expected: str, last_seen: str | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.last_seen = last_seen


class ThunderClient:
    """Thunder's Controller API; the dialect is detected on first use, never assumed."""

    def __init__(
        self,
        transport: JsonRpcTransport | str,
        *,
        timeout: float = 30.0,
        timeout_factor: float = 1.0,
        runc_window: RuncWindow = contextlib.nullcontext,
    ) -> None:
        """`transport` is a JSON-RPC URL (http://host:port/jsonrpc) or any transport;
        `runc_window` is held around each call that makes Thunder run runc against its time
        limit (the target's, see Target.runc_window)."""
        if timeout <= 0 or timeout_factor <= 0:
            raise ThunderContainerError(
                f"Thunder timeout {timeout!r} s and timeout factor {timeout_factor!r} must both "
                "be positive (see --thunder-timeout-factor)"
            )
        if isinstance(transport, str):
            transport = HttpTransport(transport, timeout_factor=timeout_factor)
        self._transport = transport
        self._timeout = timeout
        self._timeout_factor = timeout_factor
        self._ids = itertools.count(1)
        self._dialect: str | None = None
        self._version: str | None = None
        self.runc_window = runc_window

    @property
    def endpoint(self) -> str:
        return self._transport.endpoint

    @property
    def dialect(self) -> str:
        """`R4.4` or `R5`, detected from which Controller methods exist."""
        if self._dialect is None:
            self._dialect = self._detect_dialect()
        return self._dialect

    def call(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        """One JSON-RPC call; returns its result or raises ThunderError / ThunderUnreachable."""
        # Timeouts stay nominal down to the transport, which applies the factor where it waits.
        seconds = self._timeout if timeout is None else timeout
        return self._call(method, params, seconds)

    def activate(self, callsign: str, timeout: float | None = None) -> None:
        with self.runc_window():
            self.call("Controller.1.activate", {"callsign": _checked(callsign)}, timeout)

    def deactivate(self, callsign: str, timeout: float | None = None) -> None:
        with self.runc_window():
            self.call("Controller.1.deactivate", {"callsign": _checked(callsign)}, timeout)

    def state(self, callsign: str) -> str:
        """The plugin's state in R5 spelling (Activated, Deactivated, ...)."""
        return str(self.status(callsign).get("state", ""))

    def status(self, callsign: str) -> dict[str, Any]:
        """The plugin's Controller entry, its state in R5 spelling."""
        return self._status(callsign, self._timeout)

    def plugins(self) -> list[dict[str, Any]]:
        """Every plugin's Controller entry, states in R5 spelling."""
        method = f"Controller.1.{self._status_property()}"
        return [_normalised(entry) for entry in self._entries(method, self.call(method))]

    def configuration(self, callsign: str) -> dict[str, Any]:
        method = f"Controller.1.configuration@{_checked(callsign)}"
        result = self.call(method)
        if isinstance(result, str):  # an opaque value some builds hand back as text
            try:
                result = json.loads(result) if result.strip() else None
            except ValueError:
                raise self._unexpected(method, result) from None
        if result is None:  # a plugin without a configuration section answers null
            return {}
        if not isinstance(result, dict):
            raise self._unexpected(method, result)
        return result

    def set_configuration(self, callsign: str, configuration: dict[str, Any]) -> None:
        """Replace a plugin's configuration (Thunder accepts it only while it is not active)."""
        if not isinstance(configuration, dict):
            raise ThunderContainerError(
                f"configuration for {callsign!r} must be a JSON object (dict), "
                f"got {type(configuration).__name__}"
            )
        self.call(f"Controller.1.configuration@{_checked(callsign)}", configuration)

    def subsystems(self) -> dict[str, bool]:
        method = "Controller.1.subsystems"
        entries = self._entries(method, self.call(method))
        return {str(entry.get("subsystem")): bool(entry.get("active")) for entry in entries}

    def links(self) -> list[dict[str, Any]]:
        method = "Controller.1.links"
        return self._entries(method, self.call(method))

    def version(self) -> str | None:
        """Thunder's own version (`major.minor.patch`), or None where it can't be read. Once
        read it is kept: a Thunder that died during an activation still has a version, and the
        diagnosis of that activation needs it (runc's time limit depends on it)."""
        if self._version is None:
            self._version = self._read_version()
        return self._version

    def _read_version(self) -> str | None:
        # R4.4 and R5.0-5.2 have `version`; R5.3 renamed it `framework`, keeping `version` as alias.
        methods = ["Controller.1.version"]
        if self.dialect == R5:
            methods.insert(0, "Controller.1.framework")
        for method in methods:
            try:
                result = self.call(method)
            except ThunderError:
                continue
            if isinstance(result, str) and result.lstrip().startswith("{"):
                # R4.4's `version` is opaque (IController.h): its JSON can come back as text.
                with contextlib.suppress(ValueError):
                    result = json.loads(result)
            if isinstance(result, dict) and all(
                isinstance(result.get(part), int) for part in ("major", "minor", "patch")
            ):
                return f"{result['major']}.{result['minor']}.{result['patch']}"
            if isinstance(result, str) and result:
                return result
        return None

    def wait_for_state(self, callsign: str, state: str, timeout: float) -> None:
        """Poll until the plugin is in `state`; Activated also accepts Resumed and Suspended."""
        wanted = normalise_state(state)
        if wanted not in STATES:
            raise ThunderContainerError(
                f"{state!r} is not a Thunder plugin state; use one of {', '.join(STATES)}"
            )
        accepted = _ACTIVATED_STATES if wanted == "Activated" else frozenset({wanted})
        deadline = Deadline(timeout, self._timeout_factor)
        last_seen: str | None = None
        last_error: ThunderContainerError | None = None
        while True:
            # Nominal: the transport applies the factor to each call.
            call_budget = min(self._timeout, max(deadline.left(), 0.1))
            try:
                last_seen = str(self._status(callsign, call_budget).get("state"))
                last_error = None
            except (ThunderError, ThunderUnreachable) as exc:
                last_error = exc
            if last_seen in accepted and last_error is None:
                return
            if deadline.expired():
                break
            time.sleep(min(_POLL_INTERVAL_S, deadline.left() * deadline.factor))
        raise ThunderStateTimeout(
            f"Thunder plugin {callsign!r} did not reach state {wanted} within "
            f"{deadline.describe()}; last seen: {last_seen!r}"
            + (f"; last error: {last_error}" if last_error else ""),
            wanted,
            last_seen,
        )

    def _status(self, callsign: str, seconds: float) -> dict[str, Any]:
        wanted = _checked(callsign)
        method = f"Controller.1.{self._status_property()}@{wanted}"
        entries = self._entries(method, self._call(method, None, seconds))
        matching = [entry for entry in entries if entry.get("callsign") == wanted] or entries
        if len(matching) != 1:
            raise self._unexpected(method, entries)
        return _normalised(matching[0])

    def _status_property(self) -> str:
        # R4.4 has only `status` (an array); R5 has `services` (an object when one), and keeps
        # `status` as a deprecated alias.
        return "services" if self.dialect == R5 else "status"

    def _detect_dialect(self) -> str:
        """Ask for what exists in one generation only, then fall back to the state's spelling."""
        tried: list[str] = []
        for method, dialect in (
            ("Controller.1.services@Controller", R5),
            ("Controller.1.processinfo", R4_4),
        ):
            try:
                self.call(method)
            except ThunderError as exc:
                tried.append(f"{method}: {exc.message!r} ({exc.code})")
                continue
            return dialect
        method = "Controller.1.status@Controller"
        try:
            entries = self._entries(method, self.call(method))
        except ThunderError as exc:
            tried.append(f"{method}: {exc.message!r} ({exc.code})")
            code = exc.code
        else:
            states = [e.get("state") for e in entries if isinstance(e.get("state"), str)]
            if states and states[0]:
                return R4_4 if states[0].islower() else R5
            tried.append(f"{method}: no state in {excerpt(json.dumps(entries))}")
            code = 0
        raise ThunderError(
            "Controller (dialect detection)",
            code,
            f"can't tell whether Thunder at {self._transport.endpoint} is R4.4 or R5; "
            + "; ".join(tried),
        )

    def _call(self, method: str, params: Any, seconds: float) -> Any:
        request_id = next(self._ids)
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:  # a getter must get no params at all
            request["params"] = params
        try:
            body = json.dumps(request, separators=(",", ":")).encode("ascii")
        except (TypeError, ValueError) as exc:
            raise ThunderContainerError(
                f"params of Thunder {method} can't be sent as JSON ({exc}): {params!r:.200}"
            ) from None
        try:
            raw = self._transport.post(body, seconds)
        except HttpStatusError as exc:
            # Thunder answers JSON-RPC errors with 202 (R4.4, R5.0) or 200 (R5.1+), and a
            # malformed request with 400; the body holds the JSON-RPC error either way.
            if exc.body and decode_reply(exc.body) is not None:
                raw = exc.body
            elif exc.status == 202:
                raise ThunderError(
                    method, 0, f"Thunder reported an error (HTTP 202) that was not shown: {exc}"
                ) from exc
            else:
                raise
        reply = decode_reply(raw)
        if reply is None:
            raise ThunderUnreachable(
                f"Thunder JSON-RPC at {self._transport.endpoint} answered {method} with "
                f"something that is not a JSON-RPC response: {excerpt(raw)}. Is that port "
                "Thunder's? Pass the right endpoint with --thunder-jsonrpc=URL."
            )
        reply_id = reply.get("id")
        error = reply.get("error")
        id_ok = reply_id == request_id and not isinstance(reply_id, bool)
        if error is not None and (id_ok or reply_id is None):
            if not isinstance(error, dict) or not isinstance(error.get("code"), int):
                raise self._unexpected(method, reply)
            raise ThunderError(method, error["code"], str(error.get("message", "")))
        if not id_ok:
            raise ThunderUnreachable(
                f"Thunder JSON-RPC at {self._transport.endpoint} answered request id "
                f"{request_id} ({method}) with id {reply_id!r}: {excerpt(raw)}"
            )
        return reply.get("result")

    def _entries(self, method: str, result: Any) -> list[dict[str, Any]]:
        """A list of objects, from a list or from R5's single object in place of a list."""
        entries = [result] if isinstance(result, dict) else result
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise self._unexpected(method, result)
        return entries

    def _unexpected(self, method: str, what: Any) -> ThunderUnreachable:
        return ThunderUnreachable(
            f"Thunder JSON-RPC at {self._transport.endpoint} answered {method} with an "
            f"unexpected shape: {excerpt(json.dumps(what))}"
        )


def _normalised(entry: dict[str, Any]) -> dict[str, Any]:
    state = entry.get("state")
    return {**entry, "state": normalise_state(state)} if isinstance(state, str) else dict(entry)


def _checked(callsign: str) -> str:
    if not isinstance(callsign, str) or not callsign.strip():
        raise ThunderContainerError(
            f"Thunder callsign {callsign!r} must be a non-empty string (e.g. 'OCDM')"
        )
    return callsign


def connect(
    url: str | None,
    shell: Any,
    *,
    port: int = 80,
    timeout_factor: float = 1.0,
    wait: float = 60.0,
    network_grace: float = 20.0,
    runc_window: RuncWindow = contextlib.nullcontext,
) -> ThunderClient:
    """A client that answers: over HTTP when `url` is reachable, else through the console.

    Thunder may still be starting and the target's network still coming up, so HTTP is tried
    for `network_grace` seconds before the console (which needs no network) is accepted.
    """
    deadline = Deadline(wait, timeout_factor)
    http_deadline = Deadline(min(wait, network_grace), timeout_factor)
    http = (
        None
        if url is None
        else ThunderClient(
            HttpTransport(url, timeout_factor=timeout_factor),
            timeout_factor=timeout_factor,
            runc_window=runc_window,
        )
    )
    console = ThunderClient(
        ConsoleTransport(shell, port=port), timeout_factor=timeout_factor, runc_window=runc_window
    )
    # What each way there answered last: the user's URL may be the wrong one, not the console.
    last: dict[str, ThunderContainerError] = {}
    while True:
        candidates = [http] if http is not None else []
        if http is None or http_deadline.expired():
            candidates.append(console)
        for client in candidates:
            try:
                client.call("Controller.1.subsystems", timeout=5.0)
            except (ThunderUnreachable, ThunderError) as error:
                last[client.endpoint] = error
                continue
            return client
        if deadline.expired():
            over = " or ".join(client.endpoint for client in candidates)
            said = "; ".join(f"[{endpoint}] {error}" for endpoint, error in last.items())
            raise ThunderUnreachable(
                f"Thunder did not answer within {deadline.real:.0f} s over {over}: {said}"
            )
        time.sleep(0.5)
