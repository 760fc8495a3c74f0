"""Parity (TC-PAR-*): a plugin answers the same in Container mode as in Local mode.

The scenario (scenario.py) runs once per mode on the same target, recording a transcript of
requests and answers; diff.py compares the two transcripts field by field.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pytest_thunder_container.conformance.leftovers import Leftovers
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.parity.diff import ParityResult, compare, html_diff, side_by_side
from pytest_thunder_container.parity.scenario import (
    EMPTY,
    SECTIONS,
    Call,
    Exchange,
    ParityTranscript,
    Problem,
    Scenario,
    masked,
    values_at,
)
from pytest_thunder_container.thunder.client import ThunderClient, ThunderError, ThunderStateTimeout

if TYPE_CHECKING:
    from pytest_thunder_container.conformance.failed_activation import ActivationFailure

MODES = ("Local", "Container")
STATE_TIMEOUT = 120.0  # an emulated container start is about 7 s; a loaded host is slower
SETTLE_TIMEOUT = 10.0  # Thunder may still be deleting the container when it says Deactivated


class ModeSwitch(Protocol):
    """What parity needs of a deployment (deploy.ContainerDeployment)."""

    @property
    def callsign(self) -> str: ...

    def use_local(self) -> None: ...

    def use_container(self) -> None: ...

    def runc_witness(self, seconds_ago: float) -> ActivationFailure | None:
        """After a failed container activation: a leaked container, the runc call too slow."""
        ...


@dataclass
class _Recorder:
    scenario: Scenario
    exchanges: list[Exchange] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        section: str,
        request: str,
        response: dict[str, Any],
        params: Any = None,
        expect: str = "any",
        compared: Any = None,
    ) -> dict[str, Any]:
        """Record an answer; `compared` replaces the masked answer as what the modes must share."""
        if compared is None:
            compared = masked(response, request, self.scenario.volatile)
        self.exchanges.append(Exchange(section, request, response, compared, params))
        unmet = _unmet(expect, response)
        if unmet:
            self.problem(section, request, f"expected {unmet}, got {_compact(response)}")
        return response

    def skipped(self, section: str, request: str, reason: str) -> None:
        """A call the scenario leaves out on this Thunder: never a problem or a difference."""
        response = {"skipped": reason}
        self.exchanges.append(Exchange(section, request, response, response))

    def problem(self, section: str, request: str, message: str) -> None:
        self.problems.append(Problem(section, request, message))


def run_scenario(
    scenario: Scenario,
    mode: str,
    deployment: ModeSwitch,
    thunder: ThunderClient,
    *,
    leftovers: Callable[[], Leftovers],
    timeout_factor: float = 1.0,
) -> ParityTranscript:
    """Switch the plugin to `mode`, make the scenario's calls, look at Controller, cycle it."""
    if mode not in MODES:
        raise ThunderContainerError(f"parity mode {mode!r}: use one of {', '.join(MODES)}")
    callsign, rec = scenario.callsign, _Recorder(scenario)
    switch = deployment.use_local if mode == "Local" else deployment.use_container
    done = rec.add(
        "controller",
        "Controller.1.activate",
        _outcome(switch),
        {"callsign": callsign},
        expect="result",
    )
    _state(
        rec,
        "controller",
        "Controller state after activation",
        thunder,
        callsign,
        "Activated",
        wait="result" in done,
    )
    saved: dict[str, Any] = {}
    version = _version(thunder) if any(call.since for call in scenario.calls) else None
    for call in scenario.calls:
        why = call.skipped_because(thunder.dialect, version)
        if why:
            rec.skipped("methods", call.method, why)
            continue
        for method in _methods(call, saved):
            answer = rec.add(
                "methods",
                method,
                _outcome(lambda m=method, c=call: thunder.call(m, c.params)),
                call.params,
                call.expect,
            )
            if call.save and "result" in answer:
                saved[call.save] = answer["result"]
    rec.add(
        "controller",
        "Controller.1.subsystems",
        _outcome(lambda: thunder.call("Controller.1.subsystems")),
    )
    _links(rec, thunder, callsign)
    settle = SETTLE_TIMEOUT * timeout_factor
    _deactivate(rec, "after the calls", thunder, callsign, leftovers, settle)
    for cycle in range(1, scenario.cycles + 1):
        request, asked = f"cycle {cycle}: Controller.1.activate", time.monotonic()
        done = rec.add(
            "cycles",
            request,
            _outcome(lambda: thunder.activate(callsign, timeout=STATE_TIMEOUT)),
            {"callsign": callsign},
            expect="result",
        )
        if "result" not in done and mode == "Container":
            _witness(rec, request, deployment, time.monotonic() - asked)
        _state(
            rec,
            "cycles",
            f"cycle {cycle}: state after activate",
            thunder,
            callsign,
            "Activated",
            wait="result" in done,
        )
        _deactivate(rec, f"cycle {cycle}", thunder, callsign, leftovers, settle)
    return ParityTranscript(
        mode, callsign, thunder.dialect, tuple(rec.exchanges), tuple(rec.problems), version
    )


def _witness(rec: _Recorder, request: str, deployment: ModeSwitch, seconds_ago: float) -> None:
    """Say what runc showed after a failed container activation (a leak, a call past Thunder's
    limit): a cycle that fails under load must not read like a plugin that diverges."""
    try:
        found = deployment.runc_witness(seconds_ago)
    except ThunderContainerError:
        found = None
    if found is not None:
        rec.problem("cycles", request, found.describe())


def _unmet(expect: str, response: dict[str, Any]) -> str | None:
    """What the answer should have been, when it isn't what `expect` asks for."""
    if expect == "error":
        return None if "error" in response else "an error"
    if expect == "any":
        return None
    if "result" not in response:
        return "a result"
    if expect == "empty" and response["result"] not in EMPTY:
        return "an empty result"
    if expect == "non-empty" and response["result"] in EMPTY:
        return "a non-empty result (two empty answers agree without proving anything)"
    return None


def _version(thunder: ThunderClient) -> str | None:
    try:
        return thunder.version()
    except ThunderContainerError:
        return None


def _methods(call: Call, saved: dict[str, Any]) -> list[str]:
    if call.foreach is None:
        return [call.method]
    loop = call.foreach
    names = [value for _, value in values_at(saved.get(loop.saved), loop.path)]
    return [call.method.replace("{" + loop.name + "}", str(name)) for name in names]


def _deactivate(
    rec: _Recorder,
    label: str,
    thunder: ThunderClient,
    callsign: str,
    leftovers: Callable[[], Leftovers],
    settle: float,
) -> None:
    done = rec.add(
        "cycles",
        f"{label}: Controller.1.deactivate",
        _outcome(lambda: thunder.deactivate(callsign, timeout=STATE_TIMEOUT)),
        {"callsign": callsign},
        expect="result",
    )
    _state(
        rec,
        "cycles",
        f"{label}: state after deactivate",
        thunder,
        callsign,
        "Deactivated",
        wait="result" in done,
    )
    left = leftovers()
    deadline = time.monotonic() + settle
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = leftovers()
    # Host pids change on every start: only the hosts' names are recorded.
    rec.add(
        "cycles",
        f"{label}: left behind",
        {
            "result": {
                "containers": list(left.containers),
                "hosts": [host.name for host in left.hosts],
            }
        },
    )
    if left:
        rec.problem("cycles", f"{label}: left behind", left.describe())


def _state(
    rec: _Recorder,
    section: str,
    request: str,
    thunder: ThunderClient,
    callsign: str,
    wanted: str,
    *,
    wait: bool,
) -> None:
    """Record the state reached; wait for it only when Thunder said the request succeeded."""
    state: str | None
    try:
        if wait:
            thunder.wait_for_state(callsign, wanted, STATE_TIMEOUT)
            state = wanted
        else:
            state = thunder.state(callsign)
    except ThunderStateTimeout as error:
        state = error.last_seen
    except ThunderContainerError as error:
        state = f"unknown ({error})"
    rec.add(section, request, {"result": state})
    if state != wanted and not (wanted == "Activated" and state in ("Resumed", "Suspended")):
        rec.problem(section, request, f"{callsign} is {state!r}, expected {wanted}")


def _links(rec: _Recorder, thunder: ThunderClient, callsign: str) -> None:
    """Record Controller's COM-RPC links while the plugin is up; only their number is compared.

    Thunder names a link after its own communicator (R4.4 "WPEFramework::Communicator", R5.2+
    "/"), never the plugin, and numbers it per connection: the count is what both modes share.
    """
    request = "Controller.1.links"
    response = _outcome(
        lambda: [link for link in thunder.links() if str(link.get("state", "")).upper() == "COMRPC"]
    )
    if "result" not in response:
        rec.add("controller", request, response)
        return
    count = len(response["result"])
    rec.add("controller", request, response, compared={"result": {"COMRPC links": count}})
    if count == 0:
        rec.problem(
            "controller",
            request,
            f"no COMRPC link while {callsign} is up: its plugin host is not linked to Thunder",
        )


def _outcome(action: Callable[[], Any]) -> dict[str, Any]:
    """{"result": ...}, {"error": {code, message}} from Thunder, or {"failure": why}."""
    try:
        return {"result": action()}
    except ThunderContainerError as error:
        cause: BaseException | None = error
        while cause is not None:
            if isinstance(cause, ThunderError):
                return {"error": {"code": cause.code, "message": cause.message}}
            if isinstance(cause, ThunderStateTimeout):
                return {
                    "failure": f"state {cause.expected} not reached (last seen {cause.last_seen!r})"
                }
            cause = cause.__cause__
        return {"failure": str(error)}


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def keep(result: ParityResult, results: Path) -> dict[str, Path]:
    """<results>/parity/<callsign>-local.json, -container.json, -diff.txt and -diff.html."""
    folder = results / "parity"
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / result.scenario.callsign
    files = {
        "local": Path(f"{stem}-local.json"),
        "container": Path(f"{stem}-container.json"),
        "diff": Path(f"{stem}-diff.txt"),
        "html": Path(f"{stem}-diff.html"),
    }
    for mode, transcript in (("local", result.local), ("container", result.container)):
        files[mode].write_text(json.dumps(transcript.to_dict(), indent=1, ensure_ascii=False))
    files["diff"].write_text("\n".join(side_by_side(result, s) for s in SECTIONS))
    files["html"].write_text(html_diff(result))
    return files


def run_parity(
    scenario: Scenario,
    deployment: ModeSwitch,
    thunder: ThunderClient,
    *,
    leftovers: Callable[[], Leftovers],
    results: Path,
    timeout_factor: float = 1.0,
) -> ParityResult:
    """The scenario in Local then in Container mode, compared and kept in <results>/parity/."""
    local = run_scenario(
        scenario, "Local", deployment, thunder, leftovers=leftovers, timeout_factor=timeout_factor
    )
    container = run_scenario(
        scenario,
        "Container",
        deployment,
        thunder,
        leftovers=leftovers,
        timeout_factor=timeout_factor,
    )
    result = compare(scenario, local, container)
    keep(result, results)
    return result
