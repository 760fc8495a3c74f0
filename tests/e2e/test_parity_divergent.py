"""End to end on rpi3: parity holds with the tutorial's bundle, and fails, pointing at the method,
with a bundle that hides /tmp/ocdm from Thunder while the communicator stays reachable.

The parity code runs directly on the session's target (one boot): first the package's scenario
with the normal bundle, then the same calls with a private tmpfs on /tmp in the container and
bind mounts of just the communicator and the message dispatcher folder. The host starts and
announces itself, but OCDM's implementation listens on a /tmp/ocdm Thunder can't see.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.conformance.assessment import ThunderEnvironment
from pytest_thunder_container.conformance.leftovers import leftovers
from pytest_thunder_container.parity.diff import ParityResult
from pytest_thunder_container.parity.run import run_parity
from pytest_thunder_container.parity.scenario import SECTIONS, scenario_for
from pytest_thunder_container.settings import Settings
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import ContainerDeployment

pytestmark = pytest.mark.e2e


def hiding_tmp(config: dict[str, Any], environment: ThunderEnvironment) -> dict[str, Any]:
    """The bundle with a private /tmp: only the communicator and the message files bound in."""
    dispatcher = environment.variables.get("MESSAGE_DISPATCHER_CONFIG", "/tmp/MessageDispatcher")
    private = [
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"],
        },
        {
            "destination": environment.connector,
            "type": "bind",
            "source": environment.connector,
            "options": ["bind", "rw"],
        },
        {
            "destination": dispatcher.split("|")[0].rstrip("/"),
            "type": "bind",
            "source": dispatcher.split("|")[0].rstrip("/"),
            "options": ["rbind", "rw"],
        },
    ]
    divergent = copy.deepcopy(config)
    divergent["mounts"] = private + [m for m in config["mounts"] if m["destination"] != "/tmp"]
    return divergent


def run(
    deployment: ContainerDeployment,
    thunder: ThunderClient,
    target: Target,
    settings: Settings,
    results: Path,
    cycles: int | None = None,
) -> ParityResult:
    scenario = scenario_for(deployment.callsign, None)
    assert scenario is not None, "the package ships a scenario for OCDM"
    if cycles is not None:
        scenario = dataclasses.replace(scenario, cycles=cycles)
    return run_parity(
        scenario,
        deployment,
        thunder,
        leftovers=lambda: leftovers(target.console, deployment.callsign),
        results=results,
        timeout_factor=settings.timeout_factor,
    )


def test_parity_passes_and_a_bundle_hiding_tmp_ocdm_fails_it(
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_target: Target,
    thunder_settings: Settings,
    thunder_results: Path,
    thunder_environment_of_host: ThunderEnvironment,
) -> None:
    normal = run(
        thunder_deployment,
        thunder_jsonrpc,
        thunder_target,
        thunder_settings,
        thunder_results / "e2e-parity-normal",
    )
    for requirement in SECTIONS.values():
        passed, message = normal.verdict(requirement)
        assert passed, f"{requirement} with the tutorial's bundle: {message}"

    good = thunder_deployment.config
    thunder_deployment.deactivate()
    thunder_deployment.write_config(
        hiding_tmp(good, thunder_environment_of_host), label="hides-tmp-ocdm"
    )
    try:
        divergent = run(
            thunder_deployment,
            thunder_jsonrpc,
            thunder_target,
            thunder_settings,
            thunder_results / "e2e-parity-divergent",
            cycles=1,
        )
    finally:
        thunder_deployment.deactivate()
        thunder_deployment.write_config(good, label="restored")

    activation = divergent.container.exchanges[:2]
    assert [e.response for e in activation] == [{"result": None}, {"result": "Activated"}], (
        "the host in the divergent bundle should still start and announce itself"
    )
    passed, message = divergent.verdict("TC-PAR-001")
    assert not passed
    drms = {d.path: d for d in divergent.differences if d.request == "OCDM.1.drms"}
    assert set(drms) == {"result", "error"}, message
    assert drms["error"].local == "<absent>" and drms["result"].container == "<absent>"
    diff = (thunder_results / "e2e-parity-divergent" / "parity" / "OCDM-diff.txt").read_text()
    assert "!! OCDM.1.drms" in diff
