"""End to end on rpi3: parity holds with the tutorial's bundle, and fails, pointing at the method,
with a bundle whose container can't see OCDM's DRM systems.

The parity code runs directly on the session's target (one boot): first the package's scenario
with the normal bundle, then the same calls with a private tmpfs over OCDM's data directory in
the container (read off the host's own -d argument). Real OCDM loads its DRM systems (ClearKey's
.drm) from there: the host starts and announces itself, and then lists no DRM system, where the
out-of-process baseline lists ClearKey.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.conformance.leftovers import leftovers
from pytest_thunder_container.parity.diff import ParityResult
from pytest_thunder_container.parity.run import run_parity
from pytest_thunder_container.parity.scenario import SECTIONS, scenario_for
from pytest_thunder_container.settings import Settings
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import ContainerDeployment

pytestmark = pytest.mark.e2e


def hiding_the_drm_systems(config: dict[str, Any], data_directory: str) -> dict[str, Any]:
    """The bundle with an empty tmpfs over the plugin's data directory inside the container."""
    hidden = {
        "destination": data_directory.rstrip("/"),
        "type": "tmpfs",
        "source": "tmpfs",
        "options": ["nosuid", "nodev", "mode=755"],
    }
    divergent = copy.deepcopy(config)
    divergent["mounts"] = [*config["mounts"], hidden]
    return divergent


def data_directory(deployment: ContainerDeployment) -> str:
    paths = deployment.search_paths
    assert paths is not None, "the host's -v/-p/-d were read at deployment"
    data = [path.directory for path in paths.paths if path.kind == "data"]
    assert data, f"the host names no data path: {paths.describe()}"
    return data[-1]


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


def test_parity_passes_and_a_bundle_hiding_the_drm_systems_fails_it(
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_target: Target,
    thunder_settings: Settings,
    thunder_results: Path,
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
        hiding_the_drm_systems(good, data_directory(thunder_deployment)), label="hides-drm-systems"
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
    # The baseline lists ClearKey; the container lists nothing, and so never gets the follow-up
    # questions about ClearKey's key systems.
    drms = {d.path: d for d in divergent.differences if d.request == "OCDM.1.drms"}
    assert set(drms) == {"result[0]"}, message
    assert (
        '"name": "ClearKey"' in drms["result[0]"].local
        and drms["result[0]"].container == "<absent>"
    )
    followups = {d.request for d in divergent.differences}
    assert {"OCDM.1.keysystems@ClearKey", "OCDM.1.systems"} <= followups, message
    diff = (thunder_results / "e2e-parity-divergent" / "parity" / "OCDM-diff.txt").read_text()
    assert "!! OCDM.1.drms" in diff
