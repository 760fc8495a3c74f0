"""Fixtures of the conformance suites: the deployed container and its assessment (glue only).

Every layer is given the target's shell (Target.shell), never its console: it follows a
restarted target, and big files go through the target's file channel."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.conformance.assessment import (
    DEFAULT_COMMUNICATOR,
    Assessment,
    ThunderEnvironment,
    assess_container,
    static_findings,
    thunder_environment,
)
from pytest_thunder_container.conformance.catalogue import Catalogue
from pytest_thunder_container.conformance.leftovers import leftovers
from pytest_thunder_container.conformance.static_rules import Finding
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.oci.config import (
    adjust_for_thunder,
    load_config,
    normalise_arch,
    tutorial_config,
    with_seccomp,
)
from pytest_thunder_container.parity.diff import ParityResult, html_diff, side_by_side
from pytest_thunder_container.parity.run import run_parity
from pytest_thunder_container.parity.scenario import SECTIONS, Scenario, ScenarioError, scenario_for
from pytest_thunder_container.perf.latency_report import (
    LatencyResult,
    LatencyTarget,
    merge_latency,
    perf_verdict,
    target_record,
)
from pytest_thunder_container.perf.start_latency import BenchSetup, run_benchmark
from pytest_thunder_container.plugin.terminal import progress_printer
from pytest_thunder_container.settings import Settings
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import BundleSpec, ContainerDeployment

Verify = Callable[[str], None]
"""What thunder_static and thunder_runtime give a suite test: call it with a requirement ID."""


@pytest.fixture(scope="session")
def thunder_environment_of_host(
    thunder_target: Target, thunder_jsonrpc: ThunderClient, thunder_settings: Settings
) -> ThunderEnvironment:
    """Thunder's communicator and variables, read off the plugin's Local host before deploying."""
    return thunder_environment(thunder_target.shell, thunder_settings.callsign)


@pytest.fixture(scope="session")
def thunder_container_config(
    thunder_settings: Settings,
    thunder_jsonrpc: ThunderClient,
    thunder_environment_of_host: ThunderEnvironment,
) -> dict[str, Any]:
    """The user's config.json, or the tutorial's example adjusted for this Thunder, with the
    harness's seccomp denylist (TC-PROC-005: the tutorial's has no profile)."""
    if thunder_settings.container_config is not None:
        return load_config(thunder_settings.container_config)
    env = thunder_environment_of_host
    adjusted = adjust_for_thunder(
        tutorial_config(),
        dialect=thunder_jsonrpc.dialect,
        communicator=env.connector,
        host_env=env.variables,
    )
    return with_seccomp(adjusted)


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
        thunder_target.shell, thunder_jsonrpc, spec, results=thunder_results
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
    thunder_catalogue: Catalogue,
    thunder_settings: Settings,
) -> Assessment:
    """The plugin activated in its container, observed once, judged for every requirement."""
    shell = thunder_target.shell
    arch = normalise_arch(shell.check("uname -m").stdout.strip())
    return assess_container(
        thunder_deployment,
        thunder_jsonrpc,
        shell,
        thunder_catalogue,
        arch=arch,
        connector=thunder_environment_of_host.connector,
        allowed_binds=thunder_settings.allowed_binds,
        results=thunder_results,
    )


@pytest.fixture(scope="session")
def thunder_static_findings(
    request: pytest.FixtureRequest,
    thunder_settings: Settings,
    thunder_results: Path,
    thunder_catalogue: Catalogue,
) -> dict[str, list[Finding]]:
    """The static rules' findings: on the deployed config.json, or with --thunder-static-only on
    --thunder-container-config alone (no target: judged as `thunder-container lint` does)."""
    if not thunder_settings.static_only:
        return request.getfixturevalue("thunder_assessment").static
    assert thunder_settings.container_config is not None  # check_settings requires it
    config = load_config(thunder_settings.container_config)
    kept = thunder_results / "static" / "config.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return static_findings(
        config,
        thunder_catalogue,
        dialect=thunder_settings.reference_api,
        arch="arm64",
        communicator=DEFAULT_COMMUNICATOR,
        allowed_binds=thunder_settings.allowed_binds,
    )


@pytest.fixture
def thunder_static(
    thunder_static_findings: dict[str, list[Finding]], thunder_evidence: Any
) -> Verify:
    """Assert one requirement's static rule on the deployed config.json, with the evidence."""

    def verify(requirement: str) -> None:
        findings = thunder_static_findings[requirement]
        text = "\n".join(f.text() for f in findings) or f"{requirement}: no finding"
        thunder_evidence.attach(f"{requirement} config.json findings", text)
        skipped = [f for f in findings if f.level == "SKIP"]
        if skipped:
            pytest.skip(f"not evaluated: {skipped[0].message}")
        real = [f for f in findings if f.level in ("MUST", "SHOULD")]
        if real and all(f.level == "SHOULD" for f in real):
            pytest.xfail("SHOULD not met: " + "; ".join(f.message for f in real))
        assert not real, "\n".join(f.text() for f in real)

    return verify


@pytest.fixture
def thunder_runtime(
    thunder_assessment: Assessment, thunder_catalogue: Catalogue, thunder_evidence: Any
) -> Verify:
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
        if verdict.outcome == "fail" and thunder_catalogue.get(requirement).level == "SHOULD":
            pytest.xfail(f"SHOULD not met: {verdict.message}")
        assert verdict.outcome == "pass", verdict.message

    return verify


@pytest.fixture(scope="session")
def thunder_scenario(thunder_settings: Settings) -> Scenario | None:
    """The deployed callsign's parity scenario: a --thunder-scenario file, else the package's."""
    try:
        return scenario_for(thunder_settings.callsign, thunder_settings.scenarios)
    except ScenarioError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def thunder_parity(
    thunder_scenario: Scenario | None,
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_target: Target,
    thunder_settings: Settings,
    thunder_results: Path,
) -> ParityResult | None:
    """The scenario run once in Local and once in Container mode, compared (None: no scenario)."""
    if thunder_scenario is None:
        return None
    shell = thunder_target.shell
    try:
        return run_parity(
            thunder_scenario,
            thunder_deployment,
            thunder_jsonrpc,
            leftovers=lambda: leftovers(shell, thunder_scenario.callsign),
            results=thunder_results,
            timeout_factor=thunder_settings.timeout_factor,
        )
    except ThunderContainerError as error:
        pytest.fail(f"the parity scenario could not be run: {error}", pytrace=False)


@pytest.fixture
def thunder_parity_check(
    thunder_parity: ParityResult | None, thunder_settings: Settings, thunder_evidence: Any
) -> Verify:
    """Assert one TC-PAR requirement, with the side-by-side diff and both transcripts attached."""

    def verify(requirement: str) -> None:
        if thunder_parity is None:
            pytest.skip(
                f"not applicable: no parity scenario for {thunder_settings.callsign} "
                "(fix: --thunder-scenario=FILE)"
            )
        section = next(s for s, rid in SECTIONS.items() if rid == requirement)
        attach = thunder_evidence.attach
        attach(f"{requirement} Local vs Container", side_by_side(thunder_parity, section))
        attach(
            f"{requirement} both transcripts",
            html_diff(thunder_parity),
            kind="text/html",
            extension="html",
        )
        for transcript in (thunder_parity.local, thunder_parity.container):
            attach(
                f"transcript {transcript.mode}",
                json.dumps(transcript.to_dict(), indent=1),
                kind="application/json",
                extension="json",
            )
        passed, message = thunder_parity.verdict(requirement)
        assert passed, message

    return verify


@pytest.fixture(scope="session")
def thunder_latency(
    pytestconfig: pytest.Config,
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_target: Target,
    thunder_settings: Settings,
    thunder_results: Path,
) -> LatencyResult:
    """Start latency measured on the target, written into <results>/thunder-latency.json."""
    say = progress_printer(pytestconfig)
    setup = BenchSetup(
        thunder_target.shell,
        thunder_jsonrpc,
        thunder_deployment,
        thunder_settings.callsign,
        port=thunder_settings.guest_port,
        runs=thunder_settings.bench_runs,
    )
    bench = run_benchmark(setup, progress=lambda line: say(f"[thunder] latency: {line}"))
    image = thunder_target.image
    facts = LatencyTarget(
        label=thunder_target.name,
        target=thunder_settings.targets[0].label,
        emulated=thunder_target.emulated,
        image_sha256=image.sha256 if image is not None else None,
        dialect=thunder_jsonrpc.dialect,
        callsign=thunder_settings.callsign,
        version=thunder_jsonrpc.version() or "unknown",
    )
    record = target_record(bench, facts)
    try:
        path, svg, _ = merge_latency(thunder_results, record)
    except ThunderContainerError as error:
        pytest.fail(f"the latency figures could not be written: {error}", pytrace=False)
    return LatencyResult(record, path, svg)


@pytest.fixture
def thunder_latency_check(
    request: pytest.FixtureRequest,
    thunder_settings: Settings,
    thunder_catalogue: Catalogue,
    thunder_evidence: Any,
) -> Verify:
    """Assert TC-PERF-001 or -002 on the measured figures, with the JSON and the plot attached."""

    def verify(requirement: str) -> None:
        limit = thunder_settings.max_start_ms
        if requirement == "TC-PERF-001" and limit is None:
            pytest.skip("not applicable: no --thunder-max-start-ms")
        latency: LatencyResult = request.getfixturevalue("thunder_latency")
        thunder_evidence.attach(
            f"{requirement} figures of {latency.record['label']}",
            json.dumps(latency.record, indent=1),
            kind="application/json",
            extension="json",
        )
        thunder_evidence.attach_file(
            "start latency plot", latency.svg, kind="image/svg+xml", extension="svg"
        )
        verdict = perf_verdict(requirement, latency.record, limit)
        thunder_evidence.attach(f"{requirement} verdict", verdict.message)
        if verdict.outcome == "fail" and thunder_catalogue.get(requirement).level == "SHOULD":
            pytest.xfail(f"SHOULD not met: {verdict.message}")
        assert verdict.outcome == "pass", verdict.message

    return verify
