"""The OCI config.json model: loading, the tutorial's example, and the Thunder adjustments."""

from __future__ import annotations

import copy
import json
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_thunder_container.errors import ThunderContainerError

DIALECTS = ("R4.4", "R5")
DEFAULT_COMMUNICATOR = "/tmp/communicator"
COMMUNICATOR_VARIABLE = "COMMUNICATOR_CONNECTOR"
MESSAGE_DISPATCHER_VARIABLE = "MESSAGE_DISPATCHER_CONFIG"
OBSOLETE_VARIABLES = ("TRACE_FILENAME", "TRACE_DOORBELL")
CAPABILITY_SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
TMP_BIND_MOUNT: Mapping[str, Any] = {
    "source": "/tmp",
    "destination": "/tmp",
    "options": ["rw", "bind"],
}
# The seccomp profile of the harness's default config (TC-PROC-005; runc spec writes none): every
# call allowed but those no plugin host makes and that reach past any container (kernel modules,
# kexec, reboot, swap, process accounting). runc gives them EPERM.
SECCOMP_DENYLIST: Mapping[str, Any] = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [
        {
            "names": [
                "acct",
                "delete_module",
                "finit_module",
                "init_module",
                "kexec_file_load",
                "kexec_load",
                "reboot",
                "swapoff",
                "swapon",
            ],
            "action": "SCMP_ACT_ERRNO",
        }
    ],
}

# OCI's platform.arch uses Go's names; people type the kernel's.
_ARCH_ALIASES = {"aarch64": "arm64", "x86_64": "amd64", "armv7l": "arm", "armhf": "arm"}


@dataclass(frozen=True)
class EnvEntry:
    """One `NAME=value` entry of process.env and its index there."""

    index: int
    name: str
    value: str

    @property
    def referenced_variable(self) -> str | None:
        """`X` for a `$X` value (which R5 Thunder expands from its own environment), else None."""
        if self.value.startswith("$") and len(self.value) > 1:
            return self.value[1:].strip("{}")
        return None


def load_config(path: Path | str) -> dict[str, Any]:
    """Read a config.json; a ThunderContainerError names the file and what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        raise ThunderContainerError(f"{path}: is a directory, not a config.json file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ThunderContainerError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:
        raise ThunderContainerError(
            f"{path}: not JSON: not UTF-8 text (byte {error.start})"
        ) from None
    except OSError as error:
        raise ThunderContainerError(f"{path}: can't read it: {error.strerror}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ThunderContainerError(
            f"{path}: not JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(config, dict):
        raise ThunderContainerError(
            f"{path}: the JSON is {_json_kind(config)}, but a config.json must be an object"
        )
    return config


def dump_config(config: Mapping[str, Any]) -> str:
    """config.json text as runc writes it (tab-indented), ending with a newline."""
    return json.dumps(config, indent="\t") + "\n"


def tutorial_config() -> dict[str, Any]:
    """A fresh copy of the tutorial's example config.json (package data, exactly as published)."""
    data = resources.files(__package__).joinpath("data", "tutorial-config.json")
    config: dict[str, Any] = json.loads(data.read_text(encoding="utf-8"))
    return config


def adjust_for_thunder(
    config: Mapping[str, Any],
    *,
    dialect: str,
    communicator: str = DEFAULT_COMMUNICATOR,
    arch: str = "arm64",
    host_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A new config with the tutorial's adjustments for Thunder; the input is left untouched.

    R5 gets `$VAR` references (Thunder expands them for `runc exec --env`); R4.4 does not expand
    them, so it gets literal values from `host_env` (COMMUNICATOR_CONNECTOR: `communicator`).
    """
    check_dialect(dialect)
    adjusted: dict[str, Any] = copy.deepcopy(dict(config))
    _mount_communicator(adjusted, communicator)
    process = adjusted.setdefault("process", {})
    env = process.get("env", []) if isinstance(process, dict) else None
    if not isinstance(env, list):
        raise ThunderContainerError(
            "can't adjust the config: process must be an object and process.env an array"
        )
    process["terminal"] = False
    wanted = _thunder_variables(dialect, communicator, host_env or {})
    # Obsolete names go, and so does a $VAR that R4.4 would pass on unexpanded with no literal.
    dropped = {MESSAGE_DISPATCHER_VARIABLE} - set(wanted) if dialect == "R4.4" else set()
    kept = [entry for entry in env if not _is_dropped(entry, dropped)]
    for name, value in wanted.items():
        _set_env(kept, name, value)
    process["env"] = kept
    if "platform" in adjusted:
        adjusted["platform"] = {"os": "linux", "arch": normalise_arch(arch)}
    return adjusted


def with_seccomp(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with SECCOMP_DENYLIST as linux.seccomp, unless the config sets a profile itself."""
    hardened: dict[str, Any] = copy.deepcopy(dict(config))
    linux = hardened.setdefault("linux", {})
    if isinstance(linux, dict) and "seccomp" not in linux:
        linux["seccomp"] = copy.deepcopy(dict(SECCOMP_DENYLIST))
    return hardened


def check_dialect(dialect: str | None) -> None:
    """Reject an API generation the harness does not know."""
    if dialect is not None and dialect not in DIALECTS:
        raise ThunderContainerError(
            f"unknown Thunder dialect {dialect!r}: use one of {', '.join(DIALECTS)}"
        )


def normalise_arch(arch: str) -> str:
    """The OCI (Go) name of an architecture: aarch64 -> arm64, x86_64 -> amd64."""
    lowered = arch.strip().lower()
    return _ARCH_ALIASES.get(lowered, lowered)


def communicator_path(connector: str) -> str | None:
    """The socket path of a communicator address (`/tmp/communicator|0777` -> `/tmp/communicator`).

    None for a TCP address, which no mount can carry.
    """
    path = connector.partition("|")[0].strip()
    return normalise_path(path) if path.startswith("/") else None


def normalise_path(path: str) -> str:
    """A container path without `.`/`..`/doubled or trailing slashes."""
    return posixpath.normpath(path) if path.startswith("/") else path


def config_at(config: Any, *keys: str) -> Any:
    """config[k1][k2]...; None where a level is missing or not an object (the schema says why)."""
    for key in keys:
        config = config.get(key) if isinstance(config, dict) else None
    return config


def as_list(value: Any) -> list[Any]:
    """The value when it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def mounts(config: Mapping[str, Any]) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(index, mount, normalised destination) of every mount with an absolute destination."""
    for index, mount in enumerate(as_list(config.get("mounts"))):
        destination = mount.get("destination") if isinstance(mount, dict) else None
        if isinstance(destination, str) and destination.startswith("/"):
            yield index, mount, normalise_path(destination)


def mount_at(config: Mapping[str, Any], destination: str) -> tuple[int, dict[str, Any]] | None:
    """The last mount at a destination (later mounts hide earlier ones), with its index."""
    found = [(index, mount) for index, mount, target in mounts(config) if target == destination]
    return found[-1] if found else None


def mount_options(mount: Mapping[str, Any]) -> list[str]:
    """The string options of a mount."""
    return [option for option in as_list(mount.get("options")) if isinstance(option, str)]


def is_bind_mount(mount: Mapping[str, Any]) -> bool:
    """True for a bind mount, however it is spelt (type bind, or a bind/rbind option)."""
    kind = mount.get("type")
    return kind in ("bind", "rbind") or bool({"bind", "rbind"} & set(mount_options(mount)))


def capability_entries(
    config: Mapping[str, Any], sets: tuple[str, ...] = CAPABILITY_SETS
) -> Iterator[tuple[str, str]]:
    """(JSON path, CAP_ name) of every capability listed in the given sets."""
    capabilities = config_at(config, "process", "capabilities")
    for name in sets:
        for index, capability in enumerate(as_list(config_at(capabilities, name))):
            if isinstance(capability, str):
                normalised = capability.strip().upper()
                if not normalised.startswith("CAP_"):
                    normalised = f"CAP_{normalised}"
                yield f"process.capabilities.{name}[{index}]", normalised


def env_entries(config: Mapping[str, Any]) -> list[EnvEntry]:
    """The well-formed `NAME=value` entries of process.env (malformed ones are the schema's job)."""
    entries = []
    for index, entry in enumerate(as_list(config_at(config, "process", "env"))):
        if isinstance(entry, str) and "=" in entry:
            name, _, value = entry.partition("=")
            entries.append(EnvEntry(index, name, value))
    return entries


def _thunder_variables(
    dialect: str, communicator: str, host_env: Mapping[str, str]
) -> dict[str, str]:
    if dialect == "R5":
        return {name: f"${name}" for name in (COMMUNICATOR_VARIABLE, MESSAGE_DISPATCHER_VARIABLE)}
    literal = {COMMUNICATOR_VARIABLE: host_env.get(COMMUNICATOR_VARIABLE) or communicator}
    # Thunder's message dispatcher string can't be guessed; without a host value it is left out.
    if host_env.get(MESSAGE_DISPATCHER_VARIABLE):
        literal[MESSAGE_DISPATCHER_VARIABLE] = host_env[MESSAGE_DISPATCHER_VARIABLE]
    return literal


def _is_dropped(entry: Any, dropped: set[str]) -> bool:
    if not isinstance(entry, str):
        return False
    name, _, value = entry.partition("=")
    return name in OBSOLETE_VARIABLES or (name in dropped and value.startswith("$"))


def _set_env(env: list[Any], name: str, value: str) -> None:
    for index, entry in enumerate(env):
        if isinstance(entry, str) and entry.partition("=")[0] == name:
            env[index] = f"{name}={value}"
            return
    env.append(f"{name}={value}")


def _mount_communicator(config: dict[str, Any], communicator: str) -> None:
    """Bind the host's /tmp (the tutorial's step 1), and the communicator's folder if elsewhere."""
    binds = [dict(TMP_BIND_MOUNT, options=list(TMP_BIND_MOUNT["options"]))]
    socket = communicator_path(communicator)
    folder = posixpath.dirname(socket) if socket else None
    if folder and folder != "/" and not is_within(folder, "/tmp"):
        binds.append({"source": folder, "destination": folder, "options": ["rw", "bind"]})
    for bind in reversed(binds):
        found = mount_at(config, bind["destination"])
        if found is None:
            # First, as in the tutorial: nothing else in the default config lives under /tmp.
            config["mounts"] = [bind, *as_list(config.get("mounts"))]
        else:
            config["mounts"][found[0]] = bind


def is_within(path: str, folder: str) -> bool:
    """True when a normalised path is the folder or lies below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
