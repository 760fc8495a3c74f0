"""Proof that the checks can fail: each broken bundle fails exactly the requirements it breaks.

The good bundle (the tutorial's example adjusted for the target) is the baseline: its own
SHOULD findings are subtracted, so each fault must add exactly its expected IDs.
"""

from __future__ import annotations

from typing import Any

import pytest
from broken_bundles import CATALOGUE, FAULTS, Fault, broken

from pytest_thunder_container.conformance.assessment import (
    Assessment,
    assess_container,
    static_findings,
)
from pytest_thunder_container.conformance.catalogue import Catalogue
from pytest_thunder_container.oci.config import adjust_for_thunder, tutorial_config, with_seccomp
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import ContainerDeployment
from pytest_thunder_container.thunder.health import restart_thunder

# Thunder restarted after a host was held in Activation: init script, boot of the daemon, OCDM.
RESTART_TIMEOUT = 180.0
CASES = [pytest.param(fault, id=fault.name) for fault in FAULTS]


def _failing_static(config: dict[str, Any]) -> set[str]:
    findings = static_findings(
        config, CATALOGUE, dialect="R5", arch="arm64", communicator="/tmp/communicator"
    )
    return {
        rid for rid, found in findings.items() if any(f.level in ("MUST", "SHOULD") for f in found)
    }


def test_there_are_at_least_fifteen_distinct_faults() -> None:
    assert len({fault.name for fault in FAULTS}) >= 15


@pytest.mark.parametrize("fault", CASES)
def test_static_rules_report_exactly_the_broken_requirements(fault: Fault) -> None:
    good = with_seccomp(adjust_for_thunder(tutorial_config(), dialect="R5"))
    added = _failing_static(broken(good, fault)) - _failing_static(good)
    assert added == fault.static


def _runtime_failing(assessment: Assessment) -> set[str]:
    return {rid for rid, verdict in assessment.runtime.items() if verdict.outcome == "fail"}


@pytest.mark.e2e
@pytest.mark.parametrize("fault", CASES)
def test_runtime_checks_report_exactly_the_broken_requirements(
    fault: Fault,
    thunder_assessment: Assessment,
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_shell: Shell,
    thunder_results: Any,
    thunder_catalogue: Catalogue,
) -> None:
    baseline = _runtime_failing(thunder_assessment)
    thunder_deployment.deactivate()
    thunder_deployment.write_config(broken(thunder_assessment.config, fault), label=fault.name)
    try:
        assessment = assess_container(
            thunder_deployment,
            thunder_jsonrpc,
            thunder_shell,
            thunder_catalogue,
            arch="arm64",
            connector=thunder_assessment.context.connector,
            results=thunder_results / "broken" / fault.name,
        )
    finally:
        _back_to_the_good_bundle(
            thunder_deployment, thunder_jsonrpc, thunder_shell, thunder_assessment
        )
    added = _runtime_failing(assessment) - baseline
    # Whole messages, as text: pytest shortens a non-text message, and make test's rerun rule
    # must still find the runc witness's phrase in it.
    detail = "\n".join(
        f"{rid}: {assessment.runtime[rid].message}" for rid in sorted(added ^ fault.runtime)
    )
    assert added == fault.runtime, detail


def _back_to_the_good_bundle(
    deployment: ContainerDeployment, client: ThunderClient, shell: Shell, good: Assessment
) -> None:
    """The good bundle again. A host cut off from the communicator (no /tmp) leaves real Thunder
    holding the plugin in Activation, refusing a deactivate: only a restart ends that."""
    if deployment.held_in_activation():
        deployment.write_config(good.config, label="good-again")
        restart_thunder(client, shell, timeout=RESTART_TIMEOUT)
        client.wait_for_state(deployment.callsign, "Activated", RESTART_TIMEOUT)
        return
    deployment.deactivate()
    deployment.write_config(good.config, label="good-again")
