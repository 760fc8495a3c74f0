"""LIFE: the container comes and goes with the plugin, and a leftover doesn't stop it."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_thunder_container.conformance.leftovers import leftovers, plant_leftover_container
from pytest_thunder_container.plugin.suite_fixtures import Verify
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.deploy import ContainerDeployment


@pytest.mark.requirement("TC-LIFE-001")
def test_activation_in_container_mode_reaches_activated(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-LIFE-001")


@pytest.mark.requirement("TC-LIFE-002")
def test_host_runs_inside_the_container(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-LIFE-002")


@pytest.mark.requirement("TC-LIFE-003")
def test_deactivation_leaves_no_container_and_no_host(
    thunder_assessment: Any,
    thunder_deployment: ContainerDeployment,
    thunder_shell: Shell,
    thunder_evidence: Any,
) -> None:
    callsign = thunder_deployment.callsign
    thunder_deployment.use_container()
    before = leftovers(thunder_shell, callsign)
    thunder_deployment.deactivate()
    after = leftovers(thunder_shell, callsign)
    thunder_evidence.attach("while activated", before.describe())
    thunder_evidence.attach("after deactivation", after.describe())
    assert before.containers and before.hosts, (
        f"nothing ran before deactivating: {before.describe()}"
    )
    assert not after, after.describe()


@pytest.mark.requirement("TC-LIFE-004")
def test_a_leftover_container_does_not_break_activation(
    thunder_assessment: Any,
    thunder_deployment: ContainerDeployment,
    thunder_shell: Shell,
    thunder_evidence: Any,
) -> None:
    callsign = thunder_deployment.callsign
    thunder_deployment.deactivate()
    planted = plant_leftover_container(thunder_shell, thunder_deployment.bundle, callsign)
    thunder_evidence.attach("planted leftover", planted.stdout)
    assert callsign in leftovers(thunder_shell, callsign).containers, planted.stdout
    thunder_deployment.activate()
    running = leftovers(thunder_shell, callsign)
    thunder_evidence.attach("after activation", running.describe())
    assert running.hosts, f"{callsign} is Activated but no plugin host runs"
    thunder_deployment.deactivate()
