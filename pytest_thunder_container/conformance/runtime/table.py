"""The runtime checks: whether each requirement holds, judged from one observation of the host."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from pytest_thunder_container.conformance.catalogue import load_catalogue
from pytest_thunder_container.conformance.observe import Observation
from pytest_thunder_container.conformance.runtime.mounts import MOUNT_CHECKS
from pytest_thunder_container.conformance.runtime.paths import PATH_CHECKS
from pytest_thunder_container.conformance.runtime.process import PROCESS_CHECKS
from pytest_thunder_container.conformance.runtime.thunder import THUNDER_CHECKS
from pytest_thunder_container.conformance.runtime.verdict import (
    BLOCKED,
    FAIL,
    NOT_APPLICABLE,
    OUTCOMES,
    PASS,
    Evidence,
    NotEvaluated,
    PluginCall,
    RuntimeContext,
    Verdict,
    blocked,
    not_applicable,
)
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.oci.config import check_dialect

__all__ = [
    "BLOCKED",
    "ELSEWHERE",
    "FAIL",
    "NOT_APPLICABLE",
    "OUTCOMES",
    "PASS",
    "RUNTIME_CHECKS",
    "Evidence",
    "PluginCall",
    "RuntimeContext",
    "Verdict",
    "evaluate",
    "gate",
    "run_check",
]

Check = Callable[[Observation, RuntimeContext], Verdict]
GATE = "TC-LIFE-001"
# Runtime requirements that need more than one observation (cycles, both modes, timing).
ELSEWHERE = (
    "TC-LIFE-003",
    "TC-LIFE-004",
    "TC-LIFE-005",
    "TC-PAR-",
    "TC-PERF-",
    "TC-CONT-",
    "TC-STRESS-",
)
_CATALOGUE = load_catalogue()
_CHECKS: dict[str, Check] = {**PROCESS_CHECKS, **PATH_CHECKS, **MOUNT_CHECKS, **THUNDER_CHECKS}


def gate(observation: Observation, context: RuntimeContext) -> str | None:
    """Why no check but TC-LIFE-001 can be evaluated (activation failed, no host), else None."""
    if context.activation_error is not None:
        return f"activating {context.callsign} in Container mode failed (see {GATE})"
    if observation.host is None:
        return f"no plugin host for {context.callsign} was found (see {GATE})"
    return None


def _guarded(requirement: str, check: Check) -> Check:
    """The check behind the gate, applied only to its dialects, with a missing input `blocked`."""
    applies_to = _CATALOGUE.get(requirement).applies_to

    def run(observation: Observation, context: RuntimeContext) -> Verdict:
        if not applies_to(context.dialect):
            return not_applicable(requirement, f"{requirement} does not apply to {context.dialect}")
        reason = gate(observation, context) if requirement != GATE else None
        if reason is not None:
            return blocked(requirement, reason)
        try:
            return check(observation, context)
        except NotEvaluated as missing:
            return blocked(requirement, missing.reason)

    run.__name__, run.__doc__ = check.__name__, check.__doc__
    return run


RUNTIME_CHECKS: Mapping[str, Check] = MappingProxyType(
    {
        requirement.id: _guarded(requirement.id, _CHECKS[requirement.id])
        for requirement in _CATALOGUE
        if requirement.id in _CHECKS
    }
)
"""One check per runtime requirement ID, in catalogue order (see ELSEWHERE for the others)."""


def run_check(requirement: str, observation: Observation, context: RuntimeContext) -> Verdict:
    """The verdict of one requirement; a ThunderContainerError names an ID with no check here."""
    check_dialect(context.dialect)
    if requirement not in RUNTIME_CHECKS:
        where = (
            "elsewhere (it needs more than one observation)"
            if requirement.startswith(ELSEWHERE)
            else "nowhere: it is not a runtime requirement"
        )
        raise ThunderContainerError(
            f"no runtime check for {requirement} here; it is checked {where}"
        )
    return RUNTIME_CHECKS[requirement](observation, context)


def evaluate(observation: Observation, context: RuntimeContext) -> dict[str, Verdict]:
    """The verdict of every requirement in RUNTIME_CHECKS, in catalogue order."""
    return {
        requirement: run_check(requirement, observation, context) for requirement in RUNTIME_CHECKS
    }
