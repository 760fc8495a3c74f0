"""Fixtures of the conformance suites: the deployed container and its assessment (glue only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .assess import Assessment, ThunderEnvironment, assess_container, thunder_environment
from .deploy import BundleSpec, ContainerDeployment
from .oci import adjust_for_thunder, load_config, normalise_arch, tutorial_config
from .settings import Settings
from .targets.base import Target
from .thunder import ThunderClient

Verify = Callable[[str], None]
"""What thunder_static and thunder_runtime give a suite test: call it with a requirement ID."""


@pytest.fixture(scope="session")
def thunder_environment_of_host(
    thunder_target: Target, thunder_jsonrpc: ThunderClient, thunder_settings: Settings
) -> ThunderEnvironment:
    """Thunder's communicator and variables, read off the plugin's Local host before deploying."""
    return thunder_environment(thunder_target.console, thunder_settings.callsign)


@pytest.fixture(scope="session")
def thunder_container_config(
    thunder_settings: Settings,
    thunder_jsonrpc: ThunderClient,
    thunder_environment_of_host: ThunderEnvironment,
) -> dict[str, Any]:
    """The user's config.json, or the tutorial's example adjusted for this Thunder."""
    if thunder_settings.container_config is not None:
        return load_config(thunder_settings.container_config)
    env = thunder_environment_of_host
    return adjust_for_thunder(
        tutorial_config(),
        dialect=thunder_jsonrpc.dialect,
        communicator=env.connector,
        host_env=env.variables,
    )


@pytest.fixture(scope="session")
def thunder_deployment(
    thunder_target: Target,
    thunder_jsonrpc: ThunderClient,
    thunder_settings: Settings,
    thunder_results: Path,
    thunder_container_config: dict[str, Any],
) -> Iterator[ContainerDeployment]:
    """The plugin's bundle on the target; on teardown its original mode and files come back."""
    callsign = thunder_settings.callsign
    spec = BundleSpec(
        callsign,
        thunder_settings.bundle_dir or BundleSpec.default_directory(callsign),
        thunder_container_config,
        thunder_settings.rootfs,
    )
    deployment = ContainerDeployment(
        thunder_target.console, thunder_jsonrpc, spec, results=thunder_results
    )
    try:
        deployment.deploy()
        yield deployment
    finally:
        deployment.restore()


@pytest.fixture(scope="session")
def thunder_assessment(
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_target: Target,
    thunder_results: Path,
    thunder_environment_of_host: ThunderEnvironment,
) -> Assessment:
    """The plugin activated in its container, observed once, judged for every requirement."""
    arch = normalise_arch(thunder_target.console.check("uname -m").stdout.strip())
    return assess_container(
        thunder_deployment,
        thunder_jsonrpc,
        thunder_target.console,
        arch=arch,
        connector=thunder_environment_of_host.connector,
        results=thunder_results,
    )


@pytest.fixture
def thunder_static(thunder_assessment: Assessment, thunder_evidence: Any) -> Verify:
    """Assert one requirement's static rule on the deployed config.json, with the evidence."""

    def verify(requirement: str) -> None:
        findings = thunder_assessment.static[requirement]
        text = "\n".join(f.text() for f in findings) or f"{requirement}: no finding"
        thunder_evidence.attach(f"{requirement} config.json findings", text)
        skipped = [f for f in findings if f.level == "SKIP"]
        if skipped:
            pytest.skip(f"not evaluated: {skipped[0].message}")
        real = [f for f in findings if f.level in ("MUST", "SHOULD")]
        assert not real, "\n".join(f.text() for f in real)

    return verify


@pytest.fixture
def thunder_runtime(thunder_assessment: Assessment, thunder_evidence: Any) -> Verify:
    """Assert one requirement's runtime verdict on the running host, with the evidence."""

    def verify(requirement: str) -> None:
        verdict = thunder_assessment.runtime[requirement]
        for item in verdict.evidence:
            body = f"$ {item.command}\n{item.output}" if item.command else item.output
            thunder_evidence.attach(f"{requirement} {item.title}", body)
        if verdict.outcome == "not-applicable":
            pytest.skip(f"not applicable: {verdict.message}")
        if verdict.outcome == "blocked":
            pytest.skip(f"blocked: {verdict.message}")
        assert verdict.outcome == "pass", verdict.message

    return verify
