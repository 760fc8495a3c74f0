"""The runtime checks: whether each requirement holds, judged from one observation of the host."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from pytest_thunder_container.conformance.catalogue import Catalogue, Requirement
from pytest_thunder_container.conformance.observe import Observation
from pytest_thunder_container.conformance.runtime.host import HOST_CHECKS, PATH_LIST_CHECKS
from pytest_thunder_container.conformance.runtime.mounts import MOUNT_CHECKS
from pytest_thunder_container.conformance.runtime.paths import (
    PATH_CHECKS,
    masked_check,
    readonly_check,
)
from pytest_thunder_container.conformance.runtime.process import PROCESS_CHECKS, namespace_check
from pytest_thunder_container.conformance.runtime.thunder import THUNDER_CHECKS
from pytest_thunder_container.conformance.runtime.verdict import (
    BLOCKED,
    FAIL,
    NOT_APPLICABLE,
    OUTCOMES,
    PASS,
    NotEvaluated,
    PluginCall,
    ProbeExcerpt,
    RuntimeContext,
    Verdict,
    blocked,
    inapplicable,
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
    "SUBJECT_CHECKS",
    "PluginCall",
    "ProbeExcerpt",
    "RuntimeContext",
    "Verdict",
    "evaluate",
    "gate",
    "run_check",
    "runtime_checks",
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
_CHECKS: dict[str, Check] = {
    **PROCESS_CHECKS,
    **PATH_CHECKS,
    **MOUNT_CHECKS,
    **HOST_CHECKS,
    **THUNDER_CHECKS,
}
# The families whose subject (namespace type, path) the catalogue lists in order.
SUBJECT_CHECKS: Mapping[str, Callable[[str, str], Check]] = MappingProxyType(
    {"NS": namespace_check, "MASK": masked_check, "RO": readonly_check}
)


def gate(observation: Observation, context: RuntimeContext) -> str | None:
    """Why no check but TC-LIFE-001 can be evaluated (activation failed, no host), else None."""
    if context.activation_error is not None:
        return f"activating {context.callsign} in Container mode failed (see {GATE})"
    if observation.host is None:
        return f"no plugin host for {context.callsign} was found (see {GATE})"
    return None


def _guarded(requirement: Requirement, check: Check) -> Check:
    """The check behind the gate, applied only to its dialects, with a missing input `blocked`."""
    rid = requirement.id

    def run(observation: Observation, context: RuntimeContext) -> Verdict:
        if not requirement.applies_to(context.dialect):
            return inapplicable(rid, f"{rid} does not apply to {context.dialect}")
        reason = gate(observation, context) if rid != GATE else None
        if reason is not None:
            return blocked(rid, reason)
        try:
            return check(observation, context)
        except NotEvaluated as missing:
            return blocked(rid, missing.reason)

    run.__name__, run.__doc__ = check.__name__, check.__doc__
    return run


def _check_of(requirement: Requirement) -> Check | None:
    check = _CHECKS.get(requirement.id)
    if requirement.id in PATH_LIST_CHECKS:
        check = PATH_LIST_CHECKS[requirement.id](requirement.id, requirement.paths)
    family = SUBJECT_CHECKS.get(requirement.area)
    if check is None and family is not None and requirement.subject and requirement.is_runtime:
        check = family(requirement.id, requirement.subject)
    return None if check is None else _guarded(requirement, check)


def runtime_checks(catalogue: Catalogue) -> dict[str, Check]:
    """One check per runtime requirement ID of the catalogue, in its order (see ELSEWHERE)."""
    checks = {requirement.id: _check_of(requirement) for requirement in catalogue}
    return {rid: check for rid, check in checks.items() if check is not None}


def run_check(
    requirement: str, observation: Observation, context: RuntimeContext, catalogue: Catalogue
) -> Verdict:
    """The verdict of one requirement; a ThunderContainerError names an ID with no check here."""
    check_dialect(context.dialect)
    check = _check_of(catalogue.get(requirement))
    if check is None:
        where = (
            "elsewhere (it needs more than one observation)"
            if requirement.startswith(ELSEWHERE)
            else "nowhere: it is not a runtime requirement"
        )
        raise ThunderContainerError(
            f"no runtime check for {requirement} here; it is checked {where}"
        )
    return check(observation, context)


def evaluate(
    observation: Observation, context: RuntimeContext, catalogue: Catalogue
) -> dict[str, Verdict]:
    """The verdict of every runtime requirement of the catalogue checked here, in its order."""
    check_dialect(context.dialect)
    return {rid: check(observation, context) for rid, check in runtime_checks(catalogue).items()}
