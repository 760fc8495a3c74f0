"""Static rules that keep the host out of the container: host binds and the seccomp profile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pytest_thunder_container.oci.config import (
    as_list,
    config_at,
    is_bind_mount,
    is_within,
    mount_options,
    mounts,
    normalise_path,
)

if TYPE_CHECKING:
    from pytest_thunder_container.conformance.static_rules import Finding, LintContext


def host_binds(config: dict[str, Any]) -> Iterator[tuple[int, str, str, bool]]:
    """(index, host source, destination, writable) of every bind mount with an absolute source."""
    for index, mount, destination in mounts(config):
        source = mount.get("source")
        if is_bind_mount(mount) and isinstance(source, str) and source.startswith("/"):
            writable = "ro" not in mount_options(mount)
            yield index, normalise_path(source), destination, writable


def allowed_writable(ctx: LintContext) -> tuple[str, ...]:
    """The host paths a writable bind may carry: the catalogue's (/tmp) and the user's."""
    return (*ctx.catalogue.get("TC-MNT-007").paths, *ctx.allowed_binds)


def _bind_finding(
    ctx: LintContext, rule_id: str, found: list[tuple[int, str, str]], what: str, fix: str
) -> list[Finding]:
    """One finding naming every bind found (`what` takes the list), at the first one's index."""
    if not found:
        return []
    listed = ", ".join(f"{source} at {destination}" for _, source, destination in found)
    return [ctx.finding(rule_id, f"mounts[{found[0][0]}]", what.format(listed), fix)]


def check_writable_host_binds(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-MNT-007."""
    allowed = allowed_writable(ctx)
    wrong = [
        (index, source, destination)
        for index, source, destination, writable in host_binds(config)
        if writable and not any(is_within(source, path) for path in allowed)
    ]
    what = "writable bind of the host's {}: the container can change the target"
    fix = 'add "ro" to its options, or allow the path with --allow-bind (--thunder-allow-bind)'
    return _bind_finding(ctx, "TC-MNT-007", wrong, what, fix)


def check_sensitive_host_binds(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-MNT-008: read-only binds only (a writable one is TC-MNT-007's)."""
    sensitive = ctx.catalogue.get("TC-MNT-008").paths
    found = [
        (index, source, destination)
        for index, source, destination, writable in host_binds(config)
        if not writable and source in sensitive
    ]
    what = "the host's {} bound in, read-only: it shows the target's secrets"
    fix = "bind only the files the plugin needs, or remove the mount"
    return _bind_finding(ctx, "TC-MNT-008", found, what, fix)


def check_extra_devices(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-DEV-002: linux.devices, and later device rules allowing one device (all: TC-DEV-001)."""
    added = [
        (f"linux.devices[{index}]", str(config_at(device, "path")))
        for index, device in enumerate(as_list(config_at(config, "linux", "devices")))
    ]
    rules = as_list(config_at(config, "linux", "resources", "devices"))
    allowed = [
        (f"linux.resources.devices[{index}]", _device_rule(rule))
        for index, rule in enumerate(rules[1:], start=1)
        if isinstance(rule, dict) and rule.get("allow") is True and not is_all_devices(rule)
    ]
    found = added + allowed
    if not found:
        return []
    listed = ", ".join(what for _, what in found)
    message = f"gives the container devices beyond runc's default set: {listed}"
    fix = "remove them, unless the plugin needs that device (then say which and why)"
    return [ctx.finding("TC-DEV-002", found[0][0], message, fix)]


def is_all_devices(rule: dict[str, Any]) -> bool:
    """A device rule of every type, major and minor."""
    return (
        rule.get("type", "a") == "a" and rule.get("major", -1) == -1 and rule.get("minor", -1) == -1
    )


def _device_rule(rule: dict[str, Any]) -> str:
    kind, major, minor = rule.get("type", "a"), rule.get("major", "*"), rule.get("minor", "*")
    return f"{kind} {major}:{minor} {rule.get('access', 'rwm')}"


def check_seccomp(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-PROC-005."""
    seccomp = config_at(config, "linux", "seccomp")
    if isinstance(seccomp, dict) and isinstance(seccomp.get("defaultAction"), str):
        return []
    message = "no seccomp profile: every system call of the kernel is open to the plugin host"
    fix = (
        'add "seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [...]} that denies at '
        "least kexec_load, init_module and reboot"
    )
    return [ctx.finding("TC-PROC-005", "linux.seccomp", message, fix)]
