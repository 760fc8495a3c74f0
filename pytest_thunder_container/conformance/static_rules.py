"""Static rules of config.json, one per requirement ID."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_thunder_container.conformance.catalogue import Catalogue, Requirement, load_catalogue
from pytest_thunder_container.conformance.host_rules import (
    check_extra_devices,
    check_seccomp,
    check_sensitive_host_binds,
    check_writable_host_binds,
    is_all_devices,
)
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.oci.config import (
    CAPABILITY_SETS,
    COMMUNICATOR_VARIABLE,
    DEFAULT_COMMUNICATOR,
    MESSAGE_DISPATCHER_VARIABLE,
    OBSOLETE_VARIABLES,
    TMP_BIND_MOUNT,
    EnvEntry,
    as_list,
    capability_entries,
    check_dialect,
    communicator_path,
    config_at,
    env_entries,
    is_bind_mount,
    is_within,
    mount_at,
    mount_options,
    mounts,
    normalise_arch,
    normalise_path,
)
from pytest_thunder_container.oci.schema import (
    DEBIAN_SCHEMA_DIR,
    OciSchema,
    SchemaUnavailable,
    load_oci_schema,
)

RUNC_DEFAULT_CAPABILITIES = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


@dataclass(frozen=True)
class Finding:
    """One violated requirement: where in config.json, what is wrong, and how to fix it."""

    id: str
    level: str
    path: str
    message: str
    fix: str

    def text(self) -> str:
        """The one-line text form: `ID LEVEL path: message (fix: ...)`."""
        return f"{self.id} {self.level} {self.path}: {self.message} (fix: {self.fix})"


@dataclass(frozen=True)
class LintContext:
    """What the rules judge against: target, Thunder generation, catalogue and the OCI schema."""

    catalogue: Catalogue
    schema: OciSchema | None
    schema_note: str
    dialect: str | None = None
    arch: str = "arm64"
    communicator: str = DEFAULT_COMMUNICATOR
    allowed_binds: tuple[str, ...] = ()  # host paths the user allows writable binds of

    @classmethod
    def create(
        cls,
        catalogue: Catalogue,
        *,
        dialect: str | None = None,
        arch: str = "arm64",
        communicator: str = DEFAULT_COMMUNICATOR,
        schema_dir: Path = DEBIAN_SCHEMA_DIR,
        allowed_binds: tuple[str, ...] = (),
    ) -> LintContext:
        """Judge by `catalogue` (the run's); load the schema (absent: noted, TC-CFG-001 skipped)."""
        check_dialect(dialect)
        try:
            schema: OciSchema | None = load_oci_schema(schema_dir)
        except SchemaUnavailable as missing:
            schema, note = None, str(missing)
        else:
            note = f"OCI schema: {schema.source.describe()}"
        allowed = tuple(normalise_path(path) for path in allowed_binds)
        return cls(catalogue, schema, note, dialect, normalise_arch(arch), communicator, allowed)

    def finding(self, rule_id: str, path: str, message: str, fix: str) -> Finding:
        """A finding whose level comes from the catalogue, so it lives in one place."""
        return Finding(rule_id, self.catalogue.get(rule_id).level, path, message, fix)


Rule = Callable[[dict[str, Any], LintContext], list[Finding]]


def _env(config: dict[str, Any], name: str) -> EnvEntry | None:
    return next((entry for entry in env_entries(config) if entry.name == name), None)


def _same_connector(first: str, second: str) -> bool:
    first_path, second_path = communicator_path(first), communicator_path(second)
    if first_path is not None or second_path is not None:
        return first_path == second_path
    return first.partition("|")[0].strip() == second.partition("|")[0].strip()


def check_schema(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-CFG-001; raises SchemaUnavailable when the schema isn't installed."""
    if ctx.schema is None:
        raise SchemaUnavailable(ctx.schema_note)
    fix = "correct the value as the OCI runtime spec (config.md) describes"
    return [
        ctx.finding("TC-CFG-001", v.path, v.message, fix) for v in ctx.schema.violations(config)
    ]


def check_platform(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-CFG-002."""
    if "platform" not in config:
        return []
    platform = config["platform"]
    fix = f'set "platform": {{"os": "linux", "arch": "{ctx.arch}"}} or remove it'
    os_name, arch = config_at(platform, "os"), config_at(platform, "arch")
    if os_name != "linux":
        return [ctx.finding("TC-CFG-002", "platform.os", f"is {os_name!r}, not 'linux'", fix)]
    if not isinstance(arch, str) or normalise_arch(arch) != ctx.arch:
        message = f"is {arch!r} but the target is {ctx.arch} (was runc spec run on the host?)"
        return [ctx.finding("TC-CFG-002", "platform.arch", message, fix)]
    return []


def check_root_path(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-CFG-003."""
    path = config_at(config, "root", "path")
    if isinstance(path, str) and path.strip():
        return []
    fix = 'set "root": {"path": "rootfs", ...} and extract the image there'
    return [ctx.finding("TC-CFG-003", "root.path", "no root filesystem path", fix)]


def check_oci_version(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-CFG-004."""
    version = config.get("ociVersion")
    if isinstance(version, str) and re.fullmatch(r"1\.0\.\d+(-[0-9A-Za-z.-]+)?", version):
        return []
    message = f"is {version!r}, not a 1.0.x version runc 1.1 implements"
    return [ctx.finding("TC-CFG-004", "ociVersion", message, 'use "1.0.2-dev" as runc spec does')]


def check_communicator_mount(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-COM-001: the deepest mount covering the socket must bind the same host path."""
    socket = communicator_path(ctx.communicator)
    if socket is None:
        return []
    fix = f"bind the host's /tmp: {json.dumps(TMP_BIND_MOUNT)}"
    covering = [(i, m, target) for i, m, target in mounts(config) if is_within(socket, target)]
    if not covering:
        message = (
            f"no mount carries Thunder's communicator {socket}: the plugin host can't reach it"
        )
        return [ctx.finding("TC-COM-001", "mounts", message, fix)]
    index, mount, target = max(covering, key=lambda item: (len(item[2]), item[0]))
    path = f"mounts[{index}]"
    if not is_bind_mount(mount):
        message = f"a fresh {mount.get('type', 'mount')} at {target} hides Thunder's {socket}"
        return [ctx.finding("TC-COM-001", path, message, fix)]
    source = mount.get("source")
    seen = normalise_path(f"{source}/{socket[len(target) :]}") if isinstance(source, str) else None
    if seen != socket:
        message = f"{socket} inside is the host's {seen}, not Thunder's communicator"
        return [ctx.finding("TC-COM-001", path, message, fix)]
    return []


def _passed_variable(
    config: dict[str, Any], ctx: LintContext, rule_id: str, name: str, literal: str | None
) -> list[Finding]:
    """ENV-001/002: `$name` (not on R4.4) or a literal value (equal to `literal` when given)."""
    value = literal or f"<Thunder's {name}>"
    reference_fix = {
        "R5": f'add "{name}=${name}"',
        "R4.4": f'add "{name}={value}" (R4.4 does not expand $VAR)',
    }.get(ctx.dialect or "", f'add "{name}=${name}" (R5) or "{name}={value}" (R4.4)')
    entry = _env(config, name)
    if entry is None:
        return [ctx.finding(rule_id, "process.env", f"no {name} entry", reference_fix)]
    path = f"process.env[{entry.index}]"
    variable = entry.referenced_variable
    if variable is not None and ctx.dialect == "R4.4":
        message = f"R4.4 does not expand ${variable}: the host would get that text literally"
        return [ctx.finding(rule_id, path, message, reference_fix)]
    if variable is not None and variable != name:
        message = f"refers to ${variable}, but Thunder sets ${name}"
        return [ctx.finding(rule_id, path, message, f'use "{name}=${name}"')]
    if variable is None and not entry.value.strip():
        return [ctx.finding(rule_id, path, f"{name} is empty", reference_fix)]
    if variable is None and literal is not None and not _same_connector(entry.value, literal):
        message = f"{entry.value!r} is not Thunder's communicator {literal!r}"
        return [ctx.finding(rule_id, path, message, f'use "{name}=${name}" or "{name}={literal}"')]
    return []


def check_communicator_env(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-ENV-001."""
    return _passed_variable(config, ctx, "TC-ENV-001", COMMUNICATOR_VARIABLE, ctx.communicator)


def check_message_dispatcher_env(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-ENV-002."""
    return _passed_variable(config, ctx, "TC-ENV-002", MESSAGE_DISPATCHER_VARIABLE, None)


def check_obsolete_env(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-ENV-003."""
    obsolete = [entry for entry in env_entries(config) if entry.name in OBSOLETE_VARIABLES]
    if not obsolete:
        return []
    names = ", ".join(f"{entry.name} (process.env[{entry.index}])" for entry in obsolete)
    message = f"obsolete R2-era {names}: current Thunder uses /tmp/MessageDispatcher"
    fix = f"remove them; pass {MESSAGE_DISPATCHER_VARIABLE} instead"
    return [ctx.finding("TC-ENV-003", f"process.env[{obsolete[0].index}]", message, fix)]


def check_path_env(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-ENV-004."""
    entry = _env(config, "PATH")
    if entry is not None and entry.value.strip():
        return []
    fix = 'add "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"'
    return [ctx.finding("TC-ENV-004", "process.env", "no PATH entry", fix)]


def _namespace_rule(rule_id: str, kind: str) -> Rule:
    def check(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
        entries = [
            (index, entry)
            for index, entry in enumerate(as_list(config_at(config, "linux", "namespaces")))
            if isinstance(entry, dict) and entry.get("type") == kind
        ]
        if not entries:
            message = f"no {kind} namespace: the container shares the target's"
            fix = f'add {{"type": "{kind}"}} to linux.namespaces'
            return [ctx.finding(rule_id, "linux.namespaces", message, fix)]
        index, entry = entries[-1]
        if entry.get("path"):
            message = f"joins the existing {kind} namespace {entry['path']} instead of a new one"
            return [ctx.finding(rule_id, f"linux.namespaces[{index}]", message, "remove its path")]
        return []

    check.__doc__ = f"{rule_id}: a new {kind} namespace."
    return check


def _path_list_rule(rule_id: str, field: str, wanted: str, what: str) -> Rule:
    def check(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
        listed = {
            normalise_path(p)
            for p in as_list(config_at(config, "linux", field))
            if isinstance(p, str)
        }
        if wanted in listed:
            return []
        message = f"{wanted} is not {what}"
        return [ctx.finding(rule_id, f"linux.{field}", message, f'add "{wanted}" to linux.{field}')]

    check.__doc__ = f"{rule_id}: {wanted} in linux.{field}."
    return check


def check_no_sys_admin(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-CAP-001."""
    places = [path for path, name in capability_entries(config) if name == "CAP_SYS_ADMIN"]
    if not places:
        return []
    message = f"CAP_SYS_ADMIN is granted ({', '.join(places)}): it is root in all but name"
    return [ctx.finding("TC-CAP-001", places[0], message, "remove CAP_SYS_ADMIN from every set")]


def check_default_capabilities(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-CAP-002; without process.capabilities the sets are the runtime's choice: fails too."""
    fix = f"keep the sets within runc's default {', '.join(RUNC_DEFAULT_CAPABILITIES)}"
    if not isinstance(config_at(config, "process", "capabilities"), dict):
        message = "no capability sets: they are not limited to runc's default set"
        return [ctx.finding("TC-CAP-002", "process.capabilities", message, fix)]
    extra = [
        (path, name)
        for path, name in capability_entries(config, CAPABILITY_SETS[:4])
        if name not in RUNC_DEFAULT_CAPABILITIES
    ]
    if not extra:
        return []
    listed = ", ".join(f"{name} ({path})" for path, name in extra)
    return [ctx.finding("TC-CAP-002", extra[0][0], f"beyond runc's default set: {listed}", fix)]


def check_ambient_empty(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-CAP-003."""
    ambient = [name for _, name in capability_entries(config, ("ambient",))]
    if not ambient:
        return []
    message = f"ambient set is not empty ({', '.join(ambient)})"
    return [ctx.finding("TC-CAP-003", "process.capabilities.ambient", message, "remove the list")]


def check_no_terminal(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-PROC-001."""
    if config_at(config, "process", "terminal") is not True:
        return []
    message = "is true: Thunder starts the host detached, where runc can't give it a terminal"
    return [ctx.finding("TC-PROC-001", "process.terminal", message, 'set "terminal": false')]


def check_no_new_privileges(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-PROC-002."""
    if config_at(config, "process", "noNewPrivileges") is True:
        return []
    message = "is not true: setuid binaries in the rootfs could gain privileges"
    fix = 'set "noNewPrivileges": true'
    return [ctx.finding("TC-PROC-002", "process.noNewPrivileges", message, fix)]


def check_nofile_limit(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-PROC-003."""
    rlimits = as_list(config_at(config, "process", "rlimits"))
    if any(config_at(rlimit, "type") == "RLIMIT_NOFILE" for rlimit in rlimits):
        return []
    fix = 'add {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}'
    return [ctx.finding("TC-PROC-003", "process.rlimits", "no RLIMIT_NOFILE", fix)]


def check_user(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-PROC-004."""
    user = config_at(config, "process", "user")
    if all(isinstance(config_at(user, key), int) for key in ("uid", "gid")):
        return []
    message = "no uid and gid for the plugin host"
    return [ctx.finding("TC-PROC-004", "process.user", message, 'set "user": {"uid": 0, "gid": 0}')]


def check_readonly_root(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-ROOT-001."""
    if config_at(config, "root", "readonly") is True:
        return []
    message = "is not true: the plugin host can change its rootfs"
    return [ctx.finding("TC-ROOT-001", "root.readonly", message, 'set "readonly": true')]


def check_tmp_bind(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-MNT-001."""
    fix = json.dumps(TMP_BIND_MOUNT)
    found = mount_at(config, "/tmp")
    if found is None:
        message = "no /tmp mount: the communicator, /tmp/ocdm and message files stay outside"
        return [ctx.finding("TC-MNT-001", "mounts", message, f"add {fix}")]
    index, mount = found
    source = mount.get("source")
    problems = []
    if not is_bind_mount(mount):
        problems.append(f"is a {mount.get('type', 'mount')}, not a bind")
    elif not isinstance(source, str) or normalise_path(source) != "/tmp":
        problems.append(f"binds {source!r}, not the host's /tmp")
    if "ro" in mount_options(mount):
        problems.append("is read-only")
    if not problems:
        return []
    return [ctx.finding("TC-MNT-001", f"mounts[{index}]", "; ".join(problems), f"use {fix}")]


def _mount_rule(rule_id: str, destination: str, wanted: str) -> Rule:
    """A mount at `destination` of a type (`type:<t>`) or with an option (`option:<o>`)."""
    kind, _, value = wanted.partition(":")
    fix = f"mount {destination} as runc spec does ({value})"

    def check(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
        found = mount_at(config, destination)
        if found is None:
            return [ctx.finding(rule_id, "mounts", f"no {destination} mount", fix)]
        index, mount = found
        if kind == "type" and (mount.get("type") != value or is_bind_mount(mount)):
            message = f"{destination} is {mount.get('type', 'a mount')!r}, not a fresh {value}"
            return [ctx.finding(rule_id, f"mounts[{index}]", message, fix)]
        if kind == "option" and value not in mount_options(mount):
            message = f"{destination} is mounted without {value!r}"
            return [ctx.finding(rule_id, f"mounts[{index}]", message, fix)]
        return []

    check.__doc__ = f"{rule_id}: {destination} mount with {wanted}."
    return check


def check_dev_submounts(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-MNT-006."""
    lacking = []
    for destination in ("/dev/pts", "/dev/shm", "/dev/mqueue"):
        found = mount_at(config, destination)
        missing = [o for o in ("nosuid", "noexec") if found and o not in mount_options(found[1])]
        if found and missing:
            lacking.append((f"mounts[{found[0]}]", f"{destination} lacks {','.join(missing)}"))
    if not lacking:
        return []
    message = "; ".join(text for _, text in lacking)
    return [ctx.finding("TC-MNT-006", lacking[0][0], message, 'add "nosuid" and "noexec"')]


def check_device_cgroup(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-DEV-001."""
    fix = 'start linux.resources.devices with {"allow": false, "access": "rwm"}'
    rules = as_list(config_at(config, "linux", "resources", "devices"))
    first = rules[0] if rules and isinstance(rules[0], dict) else {}
    access = first.get("access", "rwm")
    denies_all = (
        first.get("allow") is False
        and is_all_devices(first)
        and isinstance(access, str)
        and set("rwm") <= set(access)
    )
    if not denies_all:
        message = "does not start by denying every device: the host could open the target's"
        return [ctx.finding("TC-DEV-001", "linux.resources.devices", message, fix)]
    for index, rule in enumerate(rules[1:], start=1):
        if isinstance(rule, dict) and rule.get("allow") is True and is_all_devices(rule):
            path = f"linux.resources.devices[{index}]"
            message = "allows every device again"
            return [ctx.finding("TC-DEV-001", path, message, "allow only the devices needed")]
    return []


def check_hostname(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """TC-HOST-001."""
    hostname = config.get("hostname")
    if isinstance(hostname, str) and hostname.strip():
        return []
    message = "no hostname: the container would report the target's"
    return [ctx.finding("TC-HOST-001", "hostname", message, 'set "hostname": "runc"')]


# The families of requirements whose subject (namespace type, path) the catalogue lists in order.
SUBJECT_RULES: Mapping[str, Callable[[str, str], Rule]] = {
    "NS": _namespace_rule,
    "MASK": lambda rid, path: _path_list_rule(rid, "maskedPaths", path, "masked"),
    "RO": lambda rid, path: _path_list_rule(rid, "readonlyPaths", path, "read-only"),
}

RULES: Mapping[str, Rule] = {
    "TC-CFG-001": check_schema,
    "TC-CFG-002": check_platform,
    "TC-CFG-003": check_root_path,
    "TC-CFG-004": check_oci_version,
    "TC-COM-001": check_communicator_mount,
    "TC-ENV-001": check_communicator_env,
    "TC-ENV-002": check_message_dispatcher_env,
    "TC-ENV-003": check_obsolete_env,
    "TC-ENV-004": check_path_env,
    "TC-CAP-001": check_no_sys_admin,
    "TC-CAP-002": check_default_capabilities,
    "TC-CAP-003": check_ambient_empty,
    "TC-PROC-001": check_no_terminal,
    "TC-PROC-002": check_no_new_privileges,
    "TC-PROC-003": check_nofile_limit,
    "TC-PROC-004": check_user,
    "TC-ROOT-001": check_readonly_root,
    "TC-MNT-001": check_tmp_bind,
    "TC-MNT-002": _mount_rule("TC-MNT-002", "/proc", "type:proc"),
    "TC-MNT-003": _mount_rule("TC-MNT-003", "/dev", "type:tmpfs"),
    "TC-MNT-004": _mount_rule("TC-MNT-004", "/sys", "option:ro"),
    "TC-MNT-005": _mount_rule("TC-MNT-005", "/sys/fs/cgroup", "option:ro"),
    "TC-MNT-006": check_dev_submounts,
    "TC-MNT-007": check_writable_host_binds,
    "TC-MNT-008": check_sensitive_host_binds,
    "TC-PROC-005": check_seccomp,
    "TC-DEV-001": check_device_cgroup,
    "TC-DEV-002": check_extra_devices,
    "TC-HOST-001": check_hostname,
}
"""The static rules with a function of their own, by requirement ID."""


def _rule_of(requirement: Requirement) -> Rule | None:
    if requirement.id in RULES:
        return RULES[requirement.id]
    family = SUBJECT_RULES.get(requirement.area)
    if family is None or not requirement.subject or not requirement.is_static:
        return None
    return family(requirement.id, requirement.subject)


def static_rules(catalogue: Catalogue) -> dict[str, Rule]:
    """Every static rule of the catalogue by requirement ID, in catalogue order."""
    rules = {requirement.id: _rule_of(requirement) for requirement in catalogue}
    return {rule_id: rule for rule_id, rule in rules.items() if rule is not None}


def run_rule(rule_id: str, config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """Run one rule by ID (TC-CFG-001 raises SchemaUnavailable when there is no schema)."""
    rule = _rule_of(ctx.catalogue.get(rule_id))
    if rule is None:
        raise ThunderContainerError(f"no static rule for {rule_id}: it is checked at runtime only")
    return rule(config, ctx)


def check_config(config: dict[str, Any], ctx: LintContext) -> list[Finding]:
    """Every static rule that applies to the context's dialect, findings in catalogue order."""
    findings: list[Finding] = []
    for rule_id, rule in static_rules(ctx.catalogue).items():
        if not ctx.catalogue.get(rule_id).applies_to(ctx.dialect):
            continue
        try:
            findings.extend(rule(config, ctx))
        except SchemaUnavailable:
            continue  # ctx.schema_note says so; the other rules still run
    return findings


def lint_config(
    config: dict[str, Any],
    *,
    catalogue: Catalogue | None = None,
    dialect: str | None = None,
    arch: str = "arm64",
    communicator: str = DEFAULT_COMMUNICATOR,
    schema_dir: Path = DEBIAN_SCHEMA_DIR,
) -> list[Finding]:
    """Lint one config against the OCI schema and every Thunder rule (of the packaged catalogue
    unless one is given)."""
    ctx = LintContext.create(
        catalogue or load_catalogue(),
        dialect=dialect,
        arch=arch,
        communicator=communicator,
        schema_dir=schema_dir,
    )
    return check_config(config, ctx)
