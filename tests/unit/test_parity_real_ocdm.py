"""Parity against what real Thunder and OCDM answer (R5.3.0, R4.4.7 with OCDM-Clearkey), no QEMU.

The fake Controller below answers as the sources say: OCDMJsonRpc.cpp (drms, keysystems; an
unknown DRM answers []), IOCDM.h's JOpenCDM (systems, designators@<DRM system>) from R5.2.0, and
PluginServer.h's links (named after the communicator, never the plugin; numbered per connection).
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.conformance.failed_activation import ActivationFailure
from pytest_thunder_container.conformance.leftovers import Leftovers
from pytest_thunder_container.parity.diff import compare, side_by_side
from pytest_thunder_container.parity.run import run_parity, run_scenario
from pytest_thunder_container.parity.scenario import (
    Call,
    Scenario,
    default_scenarios,
    version_key,
)
from pytest_thunder_container.thunder.client import ThunderError

CLEARKEY = ["org.chromium.externalclearkey", "org.w3.clearkey"]


class RealOcdm:
    """Controller and OCDM answers of one real Thunder version, Local or Container alike."""

    def __init__(self, version: str | None, *, drms: list[str] | None = None) -> None:
        self.version_answer = version
        self.dialect = "R4.4" if version and version.startswith("4.") else "R5"
        self.drms = ["ClearKey"] if drms is None else drms
        self.asked: list[str] = []
        self.active = False
        self.hosts_linked = 1  # a plugin host links once over COM-RPC, in Local and Container mode
        self._ids = itertools.count(7)
        self.activations = 0
        self.refused: set[int] = set()  # activations that fail (1 is the mode switch)

    # What run_scenario asks of a ThunderClient
    def version(self) -> str | None:
        return self.version_answer

    def call(self, method: str, params: Any = None) -> Any:
        self.asked.append(method)
        name, _, index = method.removeprefix("OCDM.1.").partition("@")
        designators = CLEARKEY if index in self.drms else []
        if name == "drms":
            return [{"name": drm, "keysystems": CLEARKEY} for drm in self.drms]
        if name == "keysystems":
            return designators
        if name in ("systems", "designators") and self.has_jopencdm():
            return list(self.drms) if name == "systems" else designators
        if method == "Controller.1.subsystems":
            return [{"subsystem": "Decryption", "active": self.active}]
        raise ThunderError(method, -32601, "Unknown method.")

    def has_jopencdm(self) -> bool:
        return (version_key(self.version_answer or "") or (0, 0, 0)) >= (5, 2, 0)

    def links(self) -> list[dict[str, Any]]:
        web = {"remote": "127.0.0.1:40000", "state": "JSONRPC", "activity": True, "id": 1}
        if self.dialect == "R4.4":
            name, remote = "WPEFramework::Communicator", "OCDM@{}"
        else:
            name, remote = "/", "{}"
        comrpc = [
            {"remote": remote.format(n), "state": "COMRPC", "activity": True, "id": n, "name": name}
            for n in itertools.islice(self._ids, self.hosts_linked if self.active else 0)
        ]
        return [web, *comrpc]

    def activate(self, callsign: str, timeout: float | None = None) -> None:
        self.activations += 1
        if self.activations in self.refused:
            raise ThunderError("Controller.1.activate", -31006, "ERROR_OPENING_FAILED")
        self.active = True

    def deactivate(self, callsign: str, timeout: float | None = None) -> None:
        self.active = False

    def state(self, callsign: str) -> str:
        return "Activated" if self.active else "Deactivated"

    def wait_for_state(self, callsign: str, state: str, timeout: float) -> None:
        assert self.state(callsign) == state


@dataclasses.dataclass
class Switch:
    thunder: RealOcdm
    callsign: str = "OCDM"
    witnessed: list[float] = dataclasses.field(default_factory=list)

    def use_local(self) -> None:
        self.thunder.activate(self.callsign)

    def use_container(self) -> None:
        self.thunder.activate(self.callsign)

    def runc_witness(self, seconds_ago: float) -> ActivationFailure | None:
        self.witnessed.append(seconds_ago)
        slow = "runc create finished 2.4 s after the activation began, past Thunder's limit"
        return ActivationFailure("Deactivated", False, (slow,), 2000)


def nothing_left() -> Leftovers:
    return Leftovers((), ())


def run(scenario: Scenario, thunder: RealOcdm, mode: str = "Container") -> Any:
    return run_scenario(scenario, mode, Switch(thunder), thunder, leftovers=nothing_left)  # type: ignore[arg-type]


def ocdm(cycles: int = 1) -> Scenario:
    return dataclasses.replace(default_scenarios()["OCDM"], cycles=cycles)


def answers(transcript: Any) -> dict[str, Any]:
    return {e.request: e.response for e in transcript.exchanges if e.section == "methods"}


@pytest.mark.parametrize("version", ["5.3.0", "4.4.7"])
def test_parity_holds_on_what_real_ocdm_answers(tmp_path: Path, version: str) -> None:
    thunder = RealOcdm(version)
    result = run_parity(
        ocdm(),
        Switch(thunder),
        thunder,
        leftovers=nothing_left,
        results=tmp_path,  # type: ignore[arg-type]
    )
    for requirement in ("TC-PAR-001", "TC-PAR-002", "TC-PAR-003"):
        passed, message = result.verdict(requirement)
        assert passed, message
    got = answers(result.container)
    assert got["OCDM.1.keysystems@ClearKey"] == {"result": CLEARKEY}
    assert got["OCDM.1.keysystems@NoSuchDrm"] == {"result": []}
    assert result.container.version == version


def test_a_call_since_a_newer_thunder_is_skipped_and_said_in_the_transcript() -> None:
    old, new = RealOcdm("4.4.7"), RealOcdm("5.3.0")
    skipped, made = answers(run(ocdm(), old)), answers(run(ocdm(), new))
    assert skipped["OCDM.1.systems"] == {
        "skipped": "needs Thunder 5.2.0 or later; this Thunder is 4.4.7"
    }
    assert "skipped" in skipped["OCDM.1.designators@{drm}"]
    assert not any(m.startswith(("OCDM.1.systems", "OCDM.1.designators")) for m in old.asked)
    assert made["OCDM.1.systems"] == {"result": ["ClearKey"]}
    assert made["OCDM.1.designators@ClearKey"] == {"result": CLEARKEY}


def test_a_thunder_whose_version_cant_be_read_skips_the_gated_calls_saying_why() -> None:
    transcript = run(ocdm(), RealOcdm(None))
    assert answers(transcript)["OCDM.1.systems"] == {
        "skipped": "needs Thunder 5.2.0 or later; this Thunder's version can't be read"
    }
    assert not transcript.problems


def test_skipped_calls_are_the_same_in_both_modes_not_a_difference() -> None:
    thunder = RealOcdm("4.4.7")
    result = compare(ocdm(), run(ocdm(), thunder, "Local"), run(ocdm(), thunder))
    assert result.verdict("TC-PAR-001")[0], result.verdict("TC-PAR-001")[1]
    assert "Thunder 4.4.7" in side_by_side(result, "methods")


def test_the_dialect_gate_still_works_and_is_said_too() -> None:
    scenario = Scenario("OCDM", (Call("OCDM.1.drms", dialects=("R4.4",)),), cycles=0)
    on_r5 = RealOcdm("5.3.0")
    assert answers(run(scenario, on_r5))["OCDM.1.drms"] == {
        "skipped": "only on R4.4; this Thunder is R5"
    }
    assert "OCDM.1.drms" not in on_r5.asked
    assert "result" in answers(run(scenario, RealOcdm("4.4.7")))["OCDM.1.drms"]


@pytest.mark.parametrize(
    ("text", "key"),
    [("5.2.0", (5, 2, 0)), ("4.4.7", (4, 4, 7)), ("R4.4.7-rc1", (4, 4, 7)), ("5.3", (5, 3, 0))],
)
def test_version_key_reads_what_thunder_says(text: str, key: tuple[int, int, int]) -> None:
    assert version_key(text) == key


def test_version_key_of_no_version_is_none() -> None:
    assert version_key("reference-thunder-not-a-real-build") is None


def test_an_unknown_drm_answered_with_an_error_is_a_problem() -> None:
    thunder = RealOcdm("5.3.0")
    real_call = thunder.call

    def refusing(method: str, params: Any = None) -> Any:
        if method.endswith("@NoSuchDrm"):
            raise ThunderError(method, -31030, "ERROR_BAD_REQUEST")
        return real_call(method, params)

    thunder.call = refusing  # type: ignore[method-assign]
    problems = [p.message for p in run(ocdm(), thunder).problems]
    assert problems == [
        'expected a result, got {"error": {"code": -31030, "message": "ERROR_BAD_REQUEST"}}'
    ]


def test_no_drm_installed_is_a_problem_although_both_modes_agree() -> None:
    thunder = RealOcdm("5.3.0", drms=[])
    result = compare(ocdm(), run(ocdm(), thunder, "Local"), run(ocdm(), thunder))
    assert not result.differences
    passed, message = result.verdict("TC-PAR-001")
    assert not passed
    assert "OCDM.1.drms: expected a non-empty result" in message
    assert "OCDM.1.systems: expected a non-empty result" in message


def test_an_empty_expectation_refuses_a_non_empty_result() -> None:
    scenario = Scenario("OCDM", (Call("OCDM.1.keysystems@ClearKey", expect="empty"),), cycles=0)
    (problem,) = run(scenario, RealOcdm("5.3.0")).problems
    assert problem.message.startswith("expected an empty result, got")


def test_links_are_compared_by_their_number_not_their_names_or_ids() -> None:
    thunder = RealOcdm("4.4.7")
    result = compare(ocdm(), run(ocdm(), thunder, "Local"), run(ocdm(), thunder))
    assert result.verdict("TC-PAR-002")[0], result.verdict("TC-PAR-002")[1]
    links = [e for e in result.container.exchanges if e.request == "Controller.1.links"]
    assert links[0].compared == {"result": {"COMRPC links": 1}}
    # The links themselves stay in the transcript as evidence.
    assert links[0].response["result"][0]["name"] == "WPEFramework::Communicator"


def test_a_container_with_another_number_of_comrpc_links_fails_controller_parity() -> None:
    thunder = RealOcdm("5.3.0")
    local = run(ocdm(), thunder, "Local")
    thunder.hosts_linked = 2
    passed, message = compare(ocdm(), local, run(ocdm(), thunder)).verdict("TC-PAR-002")
    assert not passed
    assert "Controller.1.links: result.COMRPC links: Local 1 / Container 2" in message


def test_no_comrpc_link_while_the_plugin_is_up_is_a_problem() -> None:
    thunder = RealOcdm("5.3.0")
    thunder.hosts_linked = 0
    (problem,) = [p for p in run(ocdm(), thunder).problems if p.section == "controller"]
    assert problem.message == (
        "no COMRPC link while OCDM is up: its plugin host is not linked to Thunder"
    )


@pytest.mark.parametrize("mode", ["Container", "Local"])
def test_a_failed_cycle_activation_in_a_container_says_what_runc_showed(mode: str) -> None:
    thunder = RealOcdm("5.3.0")
    thunder.refused = {2}  # the mode switch activates; the first cycle's activation fails
    switch = Switch(thunder)
    transcript = run_scenario(ocdm(cycles=2), mode, switch, thunder, leftovers=nothing_left)  # type: ignore[arg-type]
    said = [p.message for p in transcript.problems if p.request == "cycle 1: Controller.1.activate"]
    if mode == "Local":
        assert switch.witnessed == []
        assert not any("runc" in message for message in said)
    else:
        assert len(switch.witnessed) == 1 and switch.witnessed[0] >= 0
        assert any("past Thunder's limit" in message for message in said), said
    # Only the failed cycle is witnessed: cycle 2 activates.
    assert not [p for p in transcript.problems if p.request.startswith("cycle 2")]
