"""Runtime checks of the host process: namespaces, capabilities, privileges, limits, user, name."""

from __future__ import annotations

from collections.abc import Callable

from pytest_thunder_container.conformance import procfs
from pytest_thunder_container.conformance.observe import Observation
from pytest_thunder_container.conformance.runtime.verdict import (
    NotEvaluated,
    ProbeExcerpt,
    RuntimeContext,
    Verdict,
    evidence,
    host_of,
    inapplicable,
    lines_with,
    section,
    status,
    status_field,
    verdict,
    who,
)
from pytest_thunder_container.conformance.static_rules import RUNC_DEFAULT_CAPABILITIES
from pytest_thunder_container.oci.config import as_list, config_at

Check = Callable[[Observation, RuntimeContext], Verdict]
CAPABILITY_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
# TC-CAP-002 judges the sets that grant or can regain a capability; ambient is TC-CAP-003's.
LIMITED_FIELDS = ("CapBnd", "CapEff", "CapPrm", "CapInh")
RUNC_DEFAULT_MASK = procfs.capability_mask(RUNC_DEFAULT_CAPABILITIES)
CAP_SYS_ADMIN = procfs.CAPABILITIES.index("CAP_SYS_ADMIN")
RLIM_INFINITY = 2**64 - 1


def namespace_check(requirement: str, oci_type: str) -> Check:
    """A new namespace of an OCI type: the host's /proc/<pid>/ns/<kind> link differs from init's."""
    kind = procfs.PROC_NS_NAMES.get(oci_type, oci_type)

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        host = host_of(observation)
        links = procfs.namespace_links(section(observation, "ns"))
        init_link, host_link = links.get(kind, ("", ""))
        proof = evidence(
            observation,
            "ns",
            f"{kind} namespace of the host vs init",
            [f"{kind} {init_link} {host_link}"],
        )
        if not init_link and not host_link:
            message = f"the target's kernel has no {kind} namespaces (/proc/1/ns/{kind} unreadable)"
            return inapplicable(requirement, message, proof)
        if not host_link or not init_link:
            missing = f"/proc/{host.pid}/ns/{kind}" if not host_link else f"/proc/1/ns/{kind}"
            raise NotEvaluated(f"the probe could not read {missing}")
        same = host_link == init_link
        seen = f"{kind} namespace of {who(observation)} is {host_link}"
        message = (
            f"{seen}, the same as init's: not isolated"
            if same
            else f"{seen}, init's is {init_link}: a new one"
        )
        return verdict(requirement, not same, message, proof)

    check.__doc__ = f"{requirement}: a new {kind} namespace."
    return check


def _capability_masks(observation: Observation) -> dict[str, int]:
    fields = status(observation)
    masks = {}
    for name in CAPABILITY_FIELDS:
        try:
            masks[name] = int(fields[name], 16)
        except (KeyError, ValueError):
            raise NotEvaluated(f"/proc/<pid>/status of the host has no readable {name}") from None
    return masks


def _capability_evidence(observation: Observation, masks: dict[str, int]) -> ProbeExcerpt:
    lines = [
        f"{name}:\t{masks[name]:016x}  {' '.join(procfs.capability_names(masks[name])) or '-'}"
        for name in CAPABILITY_FIELDS
    ]
    return evidence(observation, "status", "capability sets of the host (decoded)", lines)


def check_no_sys_admin(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-CAP-001: bit 21 clear in every set."""
    masks = _capability_masks(observation)
    holding = [name for name, mask in masks.items() if mask >> CAP_SYS_ADMIN & 1]
    message = (
        f"CAP_SYS_ADMIN is in {', '.join(holding)} of {who(observation)}: root in all but name"
        if holding
        else f"CAP_SYS_ADMIN is in none of {', '.join(CAPABILITY_FIELDS)} of {who(observation)}"
    )
    return verdict("TC-CAP-001", not holding, message, _capability_evidence(observation, masks))


def check_default_capabilities(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-CAP-002: bounding, effective, permitted and inheritable within runc's default set."""
    masks = _capability_masks(observation)
    extra = {
        name: procfs.capability_names(masks[name] & ~RUNC_DEFAULT_MASK)
        for name in LIMITED_FIELDS
        if masks[name] & ~RUNC_DEFAULT_MASK
    }
    default = f"runc's default {RUNC_DEFAULT_MASK:#x} ({', '.join(RUNC_DEFAULT_CAPABILITIES)})"
    if extra:
        listed = "; ".join(f"{name} has {', '.join(names)}" for name, names in extra.items())
        message = f"beyond {default}: {listed}"
    else:
        message = f"{', '.join(LIMITED_FIELDS)} of {who(observation)} are within {default}"
    return verdict("TC-CAP-002", not extra, message, _capability_evidence(observation, masks))


def check_ambient_empty(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-CAP-003: CapAmb is 0."""
    masks = _capability_masks(observation)
    ambient = masks["CapAmb"]
    message = (
        f"CapAmb of {who(observation)} is {ambient:#x} "
        f"({', '.join(procfs.capability_names(ambient))}), expected 0"
        if ambient
        else f"CapAmb of {who(observation)} is 0: no ambient capabilities"
    )
    return verdict("TC-CAP-003", ambient == 0, message, _capability_evidence(observation, masks))


def check_no_new_privileges(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-PROC-002: NoNewPrivs: 1."""
    value = status_field(observation, "NoNewPrivs")
    proof = evidence(observation, "status", "NoNewPrivs of the host", [f"NoNewPrivs:\t{value}"])
    message = f"NoNewPrivs of {who(observation)} is {value}, expected 1"
    return verdict("TC-PROC-002", value == "1", message, proof)


def _limit_text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return "unlimited" if value >= RLIM_INFINITY else str(value)


def check_nofile_limit(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-PROC-003: Max open files of the host is config.json's RLIMIT_NOFILE."""
    found = procfs.limits(section(observation, "limits")).get("Max open files")
    if found is None:
        raise NotEvaluated("/proc/<pid>/limits of the host has no 'Max open files' line")
    proof = evidence(observation, "limits", "open files limit of the host", [found.line])
    rlimits = as_list(config_at(context.config, "process", "rlimits"))
    configured = next((r for r in rlimits if config_at(r, "type") == "RLIMIT_NOFILE"), None)
    seen = f"{who(observation)} has soft {found.soft}, hard {found.hard}"
    if configured is None:
        return verdict("TC-PROC-003", False, f"config.json sets no RLIMIT_NOFILE; {seen}", proof)
    soft, hard = _limit_text(configured.get("soft")), _limit_text(configured.get("hard"))
    holds = (soft, hard) == (found.soft, found.hard)
    message = f"config.json's RLIMIT_NOFILE is soft {soft}, hard {hard}; {seen}"
    return verdict("TC-PROC-003", holds, message, proof)


def check_user(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-PROC-004: every Uid and Gid of the host is config.json's process.user."""
    fields = status(observation)
    uids, gids = fields.get("Uid", "").split(), fields.get("Gid", "").split()
    if not uids or not gids:
        raise NotEvaluated("/proc/<pid>/status of the host has no Uid or Gid line")
    proof = evidence(
        observation,
        "status",
        "user and group of the host",
        lines_with(section(observation, "status"), "Uid:", "Gid:"),
    )
    uid, gid = (config_at(context.config, "process", "user", key) for key in ("uid", "gid"))
    seen = f"{who(observation)} runs with uids {' '.join(uids)}, gids {' '.join(gids)}"
    if not isinstance(uid, int) or not isinstance(gid, int):
        return verdict("TC-PROC-004", False, f"config.json sets no uid and gid; {seen}", proof)
    holds = set(uids) == {str(uid)} and set(gids) == {str(gid)}
    message = f"config.json's process.user is {uid}:{gid}; {seen}"
    return verdict("TC-PROC-004", holds, message, proof)


def check_hostname(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-HOST-001: the hostname inside is config.json's, not the target's."""
    inside = section(observation, "hostname", inside=True).strip()
    target = section(observation, "target-hostname").strip()
    proof = (
        evidence(observation, "hostname", "hostname inside the container", [inside], inside=True),
        evidence(observation, "target-hostname", "hostname of the target", [target]),
    )
    configured = context.config.get("hostname")
    if not isinstance(configured, str) or not configured:
        message = f"config.json sets no hostname; inside it is {inside!r}"
        return verdict("TC-HOST-001", False, message, *proof)
    if inside != configured:
        message = f"hostname inside is {inside!r}, config.json sets {configured!r}"
        return verdict("TC-HOST-001", False, message, *proof)
    if inside == target:
        message = f"hostname inside is {inside!r}, which is the target's own name"
        return verdict("TC-HOST-001", False, message, *proof)
    message = f"hostname inside is {inside!r} as config.json sets; the target's is {target!r}"
    return verdict("TC-HOST-001", True, message, *proof)


PROCESS_CHECKS: dict[str, Check] = {
    "TC-CAP-001": check_no_sys_admin,
    "TC-CAP-002": check_default_capabilities,
    "TC-CAP-003": check_ambient_empty,
    "TC-PROC-002": check_no_new_privileges,
    "TC-PROC-003": check_nofile_limit,
    "TC-PROC-004": check_user,
    "TC-HOST-001": check_hostname,
}
