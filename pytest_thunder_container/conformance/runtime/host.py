"""Runtime checks that the host stays out: host binds as mounted inside, the seccomp filter."""

from __future__ import annotations

from collections.abc import Callable

from pytest_thunder_container.conformance import procfs
from pytest_thunder_container.conformance.host_rules import host_binds
from pytest_thunder_container.conformance.observe import Observation
from pytest_thunder_container.conformance.runtime.verdict import (
    NotEvaluated,
    ProbeExcerpt,
    RuntimeContext,
    Verdict,
    evidence,
    inside_mounts,
    section,
    status_field,
    verdict,
    who,
)
from pytest_thunder_container.oci.config import is_within

Check = Callable[[Observation, RuntimeContext], Verdict]
SECCOMP_FILTER = "2"  # /proc/<pid>/status: 0 off, 1 strict, 2 filter


def _binds_inside(
    observation: Observation, context: RuntimeContext
) -> list[tuple[str, procfs.Mount]]:
    """(host source, its mount inside) for every host bind of the deployed config.json."""
    mounts = inside_mounts(observation)
    found = []
    for _, source, destination, _ in host_binds(context.config):
        # The last mount at a destination is the one a process there sees.
        at = [mount for mount in mounts if mount.mount_point == destination]
        if not at:
            raise NotEvaluated(f"config.json binds {source} at {destination}, not in mountinfo")
        found.append((source, at[-1]))
    return found


def _proof(observation: Observation, binds: list[tuple[str, procfs.Mount]]) -> ProbeExcerpt:
    lines = [mount.line for _, mount in binds] or ["(config.json binds no host path)"]
    return evidence(observation, "mountinfo", "host binds inside", lines, inside=True)


def writable_binds_check(requirement: str, allowed: tuple[str, ...]) -> Check:
    """Every host bind not `allowed` (nor the user's allowed paths) is mounted ro inside."""

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        binds = _binds_inside(observation, context)
        permitted = (*allowed, *context.allowed_binds)
        wrong = [
            f"{source} at {mount.mount_point}"
            for source, mount in binds
            if "rw" in mount.options and not any(is_within(source, p) for p in permitted)
        ]
        proof = _proof(observation, binds)
        if wrong:
            message = f"mounted writable inside: the host's {', '.join(wrong)}"
            return verdict(requirement, False, message, proof)
        message = f"no host path but {', '.join(permitted)} is mounted writable inside"
        return verdict(requirement, True, message, proof)

    check.__doc__ = f"{requirement}: no writable host bind but {', '.join(allowed)}."
    return check


def sensitive_binds_check(requirement: str, sensitive: tuple[str, ...]) -> Check:
    """No `sensitive` host path is mounted inside read-only (writable: the MUST's finding)."""

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        binds = _binds_inside(observation, context)
        found = [
            f"{source} at {mount.mount_point}"
            for source, mount in binds
            if "ro" in mount.options and source in sensitive
        ]
        proof = _proof(observation, binds)
        if found:
            message = f"mounted read-only inside: the host's {', '.join(found)}"
            return verdict(requirement, False, message, proof)
        return verdict(requirement, True, "no sensitive host path is mounted inside", proof)

    check.__doc__ = f"{requirement}: none of {', '.join(sensitive)} bound in."
    return check


def devices_check(requirement: str, defaults: tuple[str, ...]) -> Check:
    """Every device node in the container's /dev is one of runc's `defaults`."""

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        listing = section(observation, "dev", inside=True)
        nodes = [line for line in listing.splitlines() if line[:1] in ("c", "b")]
        if not nodes:
            raise NotEvaluated("the probe inside listed no device node in /dev")
        extra = [line for line in nodes if f"/dev/{line.split()[-1]}" not in defaults]
        title = "device nodes in /dev inside"
        proof = evidence(observation, "dev", title, extra or nodes, inside=True)
        if extra:
            names = ", ".join(f"/dev/{line.split()[-1]}" for line in extra)
            message = f"devices beyond runc's default set inside: {names}"
            return verdict(requirement, False, message, proof)
        message = f"only runc's default devices in /dev inside ({len(nodes)})"
        return verdict(requirement, True, message, proof)

    check.__doc__ = f"{requirement}: no device but {', '.join(defaults)}."
    return check


def check_seccomp(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-PROC-005: Seccomp: 2 (a filter) in the host's status."""
    value = status_field(observation, "Seccomp")
    proof = evidence(observation, "status", "Seccomp of the host", [f"Seccomp:\t{value}"])
    message = f"Seccomp of {who(observation)} is {value}, expected {SECCOMP_FILTER} (a filter)"
    return verdict("TC-PROC-005", value == SECCOMP_FILTER, message, proof)


# Checks judged against the requirement's list of paths in the catalogue.
PATH_LIST_CHECKS: dict[str, Callable[[str, tuple[str, ...]], Check]] = {
    "TC-MNT-007": writable_binds_check,
    "TC-MNT-008": sensitive_binds_check,
    "TC-DEV-002": devices_check,
}
HOST_CHECKS: dict[str, Check] = {"TC-PROC-005": check_seccomp}
