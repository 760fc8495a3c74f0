"""One assessment of a deployed container: static rules on its config, runtime checks on it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_thunder_container.conformance.catalogue import Catalogue
from pytest_thunder_container.conformance.observe import (
    Observation,
    find_plugin_hosts,
    observation_to_dict,
    observe,
)
from pytest_thunder_container.conformance.runtime.table import (
    PluginCall,
    RuntimeContext,
    Verdict,
    evaluate,
)
from pytest_thunder_container.conformance.static_rules import (
    Finding,
    LintContext,
    run_rule,
    static_rules,
)
from pytest_thunder_container.errors import DeployError, ThunderContainerError
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient
from pytest_thunder_container.thunder.deploy import ContainerDeployment

DEFAULT_COMMUNICATOR = "/tmp/communicator"
# A read-only call each plugin answers when its host works; vendors add theirs in the scenario.
PROBE_CALLS = {"OCDM": "OCDM.1.drms"}


@dataclass(frozen=True)
class ThunderEnvironment:
    """What Thunder gives its plugin hosts, read off a running Local host (real Thunder's too)."""

    connector: str = DEFAULT_COMMUNICATOR
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Assessment:
    """Everything the suites assert on: static findings per rule and runtime verdicts per ID."""

    callsign: str
    config: dict[str, Any]
    static: dict[str, list[Finding]]
    runtime: dict[str, Verdict]
    observation: Observation
    context: RuntimeContext

    def failing(self, level: str | None = None) -> set[str]:
        """IDs whose static findings or runtime verdict fail (optionally of one level)."""
        ids = {
            rid
            for rid, findings in self.static.items()
            if any(level in (None, f.level) for f in findings)
        }
        ids |= {rid for rid, verdict in self.runtime.items() if verdict.outcome == "fail"}
        return ids


def thunder_environment(shell: Shell, callsign: str) -> ThunderEnvironment:
    """The communicator and Thunder's variables as its running Local host received them."""
    hosts = find_plugin_hosts(shell, callsign)
    if not hosts:
        return ThunderEnvironment()
    host = hosts[0]
    environ = shell.run(f"tr '\\000' '\\n' < /proc/{host.pid}/environ").stdout
    variables = dict(line.split("=", 1) for line in environ.splitlines() if "=" in line)
    wanted = ("COMMUNICATOR_CONNECTOR", "MESSAGE_DISPATCHER_CONFIG")
    return ThunderEnvironment(
        host.option("-r") or DEFAULT_COMMUNICATOR,
        {k: variables[k] for k in wanted if k in variables},
    )


def static_findings(
    config: dict[str, Any],
    catalogue: Catalogue,
    *,
    dialect: str | None,
    arch: str,
    communicator: str,
    allowed_binds: tuple[str, ...] = (),
) -> dict[str, list[Finding]]:
    """Every static rule of the catalogue on one config, by ID (an empty list is a pass)."""
    ctx = LintContext.create(
        catalogue,
        dialect=dialect,
        arch=arch,
        communicator=communicator,
        allowed_binds=allowed_binds,
    )
    results: dict[str, list[Finding]] = {}
    for rid in static_rules(catalogue):
        try:
            results[rid] = run_rule(rid, config, ctx)
        except ThunderContainerError as error:  # e.g. the OCI schema isn't installed
            results[rid] = [Finding(rid, "SKIP", "", str(error), "")]
    return results


def assess_container(
    deployment: ContainerDeployment,
    thunder: ThunderClient,
    shell: Shell,
    catalogue: Catalogue,
    *,
    arch: str,
    connector: str,
    allowed_binds: tuple[str, ...] = (),
    results: Path | None = None,
) -> Assessment:
    """Activate in Container mode, observe the host, and judge every static and runtime ID."""
    callsign = deployment.callsign
    activation_error: str | None = None
    try:
        deployment.use_container()
    except DeployError as error:  # it carries runc's witness: a leaked container, a slow call
        activation_error = str(error)
    state = _guarded(lambda: thunder.state(callsign))
    observation = observe(shell, callsign, catalogue, connector=connector)
    links = _guarded(thunder.links) or []
    context = RuntimeContext(
        callsign=callsign,
        bundle=deployment.bundle,
        config=deployment.config,
        dialect=thunder.dialect,
        state=state,
        activation_error=activation_error,
        links=links,
        plugin_call=_probe_call(thunder, callsign),
        connector=connector,
        allowed_binds=allowed_binds,
    )
    assessment = Assessment(
        callsign,
        deployment.config,
        static_findings(
            deployment.config,
            catalogue,
            dialect=thunder.dialect,
            arch=arch,
            communicator=connector,
            allowed_binds=allowed_binds,
        ),
        evaluate(observation, context, catalogue),
        observation,
        context,
    )
    if results is not None:
        _keep(assessment, results)
    return assessment


def _probe_call(thunder: ThunderClient, callsign: str) -> PluginCall | None:
    method = PROBE_CALLS.get(callsign)
    if method is None:
        return None
    try:
        return PluginCall(method, thunder.call(method))
    except ThunderContainerError as error:
        return PluginCall(method, error=str(error))


def _guarded(call: Any) -> Any:
    try:
        return call()
    except ThunderContainerError:
        return None


def _keep(assessment: Assessment, results: Path) -> None:
    """The raw observation next to the report: evidence survives whatever the tests decide."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"observation-{assessment.callsign}.json"
    path.write_text(
        json.dumps(
            {
                "observation": observation_to_dict(assessment.observation),
                "links": assessment.context.links,
                "activation_error": assessment.context.activation_error,
            },
            indent=1,
        )
    )
