"""Runtime checks of the container's mounts: /tmp shared, /proc, /dev, /sys and cgroup, /dev/*."""

from __future__ import annotations

from collections.abc import Callable

from pytest_thunder_container.conformance import procfs
from pytest_thunder_container.conformance.observe import WRITE_PROBES, Observation
from pytest_thunder_container.conformance.runtime.verdict import (
    READ_ONLY_ERROR,
    NotEvaluated,
    ProbeExcerpt,
    RuntimeContext,
    Verdict,
    evidence,
    inapplicable,
    inside_mounts,
    probe_file,
    section,
    verdict,
    write_attempt,
)

Check = Callable[[Observation, RuntimeContext], Verdict]
DEV_SUBMOUNTS = ("/dev/pts", "/dev/shm", "/dev/mqueue")


def _mount_proof(observation: Observation, path: str) -> tuple[procfs.Mount | None, ProbeExcerpt]:
    mount = procfs.mount_at(inside_mounts(observation), path)
    line = mount.line if mount else f"(no mount at {path})"
    proof = evidence(observation, "mountinfo", f"{path} inside the container", [line], inside=True)
    return mount, proof


def check_tmp_shared(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-MNT-001: a file made in /tmp inside appears in the target's /tmp."""
    attempt = write_attempt(section(observation, "tmp-write", inside=True))
    seen = observation.tmp_probe_seen_outside
    if seen is None:
        raise NotEvaluated("the target's /tmp was not looked at after the probe inside")
    marker = probe_file(observation) or "/tmp/.tc-probe-<token>"
    proofs = (
        evidence(
            observation, "tmp-write", f"creating {marker} inside", [attempt.line], inside=True
        ),
        ProbeExcerpt(
            f"{marker} in the target's /tmp",
            f"if [ -e {marker} ]; then rm -f {marker}; echo seen; fi",
            "seen" if seen else "(not seen)",
        ),
        _mount_proof(observation, "/tmp")[1],
    )
    if attempt.returncode != 0:
        message = f"creating a file in /tmp inside {attempt.describe()}: /tmp is not writable"
        return verdict("TC-MNT-001", False, message, *proofs)
    if not seen:
        message = "a file created in /tmp inside is not in the target's /tmp: not the host's /tmp"
        return verdict("TC-MNT-001", False, message, *proofs)
    message = "a file created in /tmp inside appears in the target's /tmp: the host's, read-write"
    return verdict("TC-MNT-001", True, message, *proofs)


def fstype_check(requirement: str, path: str, fstype: str) -> Check:
    """The mount at `path` inside has file system type `fstype`."""

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        mount, proof = _mount_proof(observation, path)
        if mount is None:
            return verdict(requirement, False, f"nothing is mounted at {path} inside", proof)
        holds = mount.fstype == fstype
        message = f"{path} inside is a {mount.fstype} mount" + (
            "" if holds else f", expected a fresh {fstype}"
        )
        return verdict(requirement, holds, message, proof)

    check.__doc__ = f"{requirement}: {path} is {fstype}."
    return check


def readonly_mount_check(requirement: str, path: str, probe: str) -> Check:
    """The mount at `path` is `ro`, and the write probe below it gives "Read-only file system"."""
    target = WRITE_PROBES[probe]

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        mount, proof = _mount_proof(observation, path)
        attempt = write_attempt(section(observation, f"{probe}-write", inside=True))
        write_proof = evidence(
            observation,
            f"{probe}-write",
            f"opening {target} for writing inside",
            [attempt.line],
            inside=True,
        )
        problems = []
        if mount is None:
            problems.append(f"nothing is mounted at {path} inside")
        elif "ro" not in mount.options:
            problems.append(f"{path} is mounted {','.join(mount.options)}, not ro")
        if not attempt.read_only:
            problems.append(f"writing {target} {attempt.describe()}, not {READ_ONLY_ERROR!r}")
        message = "; ".join(problems) or (
            f"{path} is mounted ro and writing {target} gives {READ_ONLY_ERROR!r}"
        )
        return verdict(requirement, not problems, message, proof, write_proof)

    check.__doc__ = f"{requirement}: {path} read-only."
    return check


def check_dev_submounts(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-MNT-006: /dev/pts, /dev/shm and /dev/mqueue, where mounted, are nosuid and noexec."""
    mounts = inside_mounts(observation)
    present = [m for m in (procfs.mount_at(mounts, path) for path in DEV_SUBMOUNTS) if m]
    proof = evidence(
        observation,
        "mountinfo",
        "/dev submounts inside the container",
        [mount.line for mount in present],
        inside=True,
    )
    if not present:
        return inapplicable("TC-MNT-006", f"none of {', '.join(DEV_SUBMOUNTS)} is mounted inside")
    lacking = [
        f"{mount.mount_point} lacks {','.join(missing)}"
        for mount in present
        if (missing := [o for o in ("nosuid", "noexec") if o not in mount.options])
    ]
    names = ", ".join(mount.mount_point for mount in present)
    message = "; ".join(lacking) or f"{names} are mounted nosuid,noexec"
    return verdict("TC-MNT-006", not lacking, message, proof)


MOUNT_CHECKS: dict[str, Check] = {
    "TC-MNT-001": check_tmp_shared,
    "TC-MNT-002": fstype_check("TC-MNT-002", "/proc", "proc"),
    "TC-MNT-003": fstype_check("TC-MNT-003", "/dev", "tmpfs"),
    "TC-MNT-004": readonly_mount_check("TC-MNT-004", "/sys", "sysfs"),
    "TC-MNT-005": readonly_mount_check("TC-MNT-005", "/sys/fs/cgroup", "cgroup"),
    "TC-MNT-006": check_dev_submounts,
}
