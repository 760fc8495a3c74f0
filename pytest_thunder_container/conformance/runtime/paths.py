"""Runtime checks of what the container hides or freezes: masked paths, read-only paths, root."""

from __future__ import annotations

from collections.abc import Callable

from pytest_thunder_container.conformance import procfs
from pytest_thunder_container.conformance.observe import READONLY_WRITE_TARGETS, Observation
from pytest_thunder_container.conformance.runtime.verdict import (
    READ_ONLY_ERROR,
    NotEvaluated,
    ProbeExcerpt,
    RuntimeContext,
    Verdict,
    WriteAttempt,
    evidence,
    inapplicable,
    inside_mounts,
    section,
    verdict,
    write_attempt,
)

Check = Callable[[Observation, RuntimeContext], Verdict]
DEV_NULL = ("character special file", "1,3")


def _on_target(observation: Observation, path: str) -> ProbeExcerpt | None:
    """ProbeExcerpt that the path exists on the target, or None when its kernel has no such path."""
    listed = section(observation, "target-exists").splitlines()
    if path not in listed:
        return None
    return evidence(observation, "target-exists", f"{path} exists on the target", [path])


def _mount_evidence(
    observation: Observation, path: str
) -> tuple[procfs.Mount | None, ProbeExcerpt]:
    mount = procfs.covering_mount(inside_mounts(observation), path)
    line = mount.line if mount else f"(no mount covers {path})"
    title = f"the mount {path} lies on inside the container"
    return mount, evidence(observation, "mountinfo", title, [line], inside=True)


def masked_check(requirement: str, path: str) -> Check:
    """Where the target has `path`: inside, a file is /dev/null (empty), a directory is empty."""

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        exists = _on_target(observation, path)
        if exists is None:
            message = f"{path} does not exist on the target's kernel: nothing to mask"
            return inapplicable(requirement, message)
        masked = section(observation, "masked", inside=True)
        line = next((item for item in masked.splitlines() if item.startswith(f"{path}|")), None)
        if line is None:
            raise NotEvaluated(f"the probe inside printed nothing for {path}")
        proof = evidence(observation, "masked", f"{path} inside the container", [line], inside=True)
        fields = line.split("|")
        if fields[1:] == ["absent"]:
            message = f"{path} exists on the target but not inside the container: nothing to read"
            return verdict(requirement, True, message, proof, exists)
        if len(fields) != 5 or not fields[3].isdigit() or not fields[4].isdigit():
            raise NotEvaluated(f"unreadable probe line for {path}: {line!r}")
        kind, device, size, entries = fields[1], fields[2], int(fields[3]), int(fields[4])
        _, mount_proof = _mount_evidence(observation, path)
        if kind == "directory":
            holds = entries == 0
            message = (
                f"{path} inside is an empty directory: masked"
                if holds
                else f"{path} inside is a directory with {entries} entries: not masked"
            )
        else:
            holds = (kind, device) == DEV_NULL and size == 0
            seen = f"{path} inside is a {kind} {device} reading {size} bytes"
            message = (
                f"{seen}: masked by /dev/null"
                if holds
                else f"{seen}, expected /dev/null (char 1,3) reading 0 bytes: not masked"
            )
        return verdict(requirement, holds, message, proof, mount_proof, exists)

    check.__doc__ = f"{requirement}: {path} masked."
    return check


def readonly_check(requirement: str, path: str) -> Check:
    """Where the target has `path`: inside, it lies on an `ro` mount, and a write gives EROFS."""

    def check(observation: Observation, context: RuntimeContext) -> Verdict:
        exists = _on_target(observation, path)
        if exists is None:
            message = f"{path} does not exist on the target's kernel: nothing to make read-only"
            return inapplicable(requirement, message)
        mount, mount_proof = _mount_evidence(observation, path)
        proofs = [mount_proof]
        problems = []
        if mount is None:
            problems.append(f"no mount covers {path} inside")
        elif "ro" not in mount.options:
            problems.append(
                f"{path} lies on {mount.mount_point} mounted {','.join(mount.options)}, not ro"
            )
        target = READONLY_WRITE_TARGETS.get(path)
        attempt = _write_at(observation, target) if target else None
        if attempt is not None:
            proofs.append(
                evidence(
                    observation,
                    "readonly-write",
                    f"opening {target} for writing inside",
                    [f"{target}|{attempt.line}"],
                    inside=True,
                )
            )
            if not attempt.read_only:
                problems.append(f"writing {target} {attempt.describe()}, not {READ_ONLY_ERROR!r}")
        if problems or mount is None:
            return verdict(requirement, False, "; ".join(problems), *proofs, exists)
        seen = (
            f"{path} is mounted ro inside"
            if mount.mount_point == path
            else f"{path} lies on {mount.mount_point}, mounted ro inside"
        )
        if attempt is not None:
            seen += f", and writing {target} gives {READ_ONLY_ERROR!r}"
        return verdict(requirement, True, seen, *proofs, exists)

    check.__doc__ = f"{requirement}: {path} read-only."
    return check


def _write_at(observation: Observation, target: str) -> WriteAttempt | None:
    """The inside probe's write attempt at `target`; None where the target is absent inside."""
    for line in section(observation, "readonly-write", inside=True).splitlines():
        name, _, rest = line.partition("|")
        if name == target:
            return None if rest == "absent" else write_attempt(rest)
    raise NotEvaluated(f"the probe inside printed nothing for a write to {target}")


def check_readonly_root(observation: Observation, context: RuntimeContext) -> Verdict:
    """TC-ROOT-001: creating a file in / inside gives "Read-only file system"."""
    attempt = write_attempt(section(observation, "root-write", inside=True))
    proof = evidence(
        observation, "root-write", "creating a file in / inside", [attempt.line], inside=True
    )
    message = (
        f"creating a file in / inside gives {READ_ONLY_ERROR!r}"
        if attempt.read_only
        else f"creating a file in / inside {attempt.describe()}, not {READ_ONLY_ERROR!r}"
    )
    return verdict("TC-ROOT-001", attempt.read_only, message, proof)


PATH_CHECKS: dict[str, Check] = {"TC-ROOT-001": check_readonly_root}
