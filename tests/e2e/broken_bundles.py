"""Deliberately broken bundles: each breaks known requirements, statically and at runtime."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pytest_thunder_container.conformance.catalogue import load_catalogue

Config = dict[str, Any]
CATALOGUE = load_catalogue()


def subject(requirement: str) -> str:
    """The path a MASK or RO requirement is about, as the catalogue (alone) lists it."""
    return CATALOGUE.get(requirement).subject


@dataclass(frozen=True)
class Fault:
    """One deliberate fault: how to break the config, and the IDs it must (and only) break."""

    name: str
    breaks: Callable[[Config], None]
    static: frozenset[str]
    runtime: frozenset[str]


def _drop_namespace(kind: str) -> Callable[[Config], None]:
    def mutate(config: Config) -> None:
        spaces = config["linux"]["namespaces"]
        config["linux"]["namespaces"] = [ns for ns in spaces if ns["type"] != kind]

    return mutate


def _drop_from(field: str, path: str) -> Callable[[Config], None]:
    def mutate(config: Config) -> None:
        config["linux"][field] = [p for p in config["linux"][field] if p != path]

    return mutate


def _mount(config: Config, destination: str) -> dict[str, Any]:
    return next(m for m in config["mounts"] if m["destination"] == destination)


def _drop_uts(config: Config) -> None:
    # runc refuses a hostname without a private UTS namespace, so both go.
    _drop_namespace("uts")(config)
    config.pop("hostname", None)


def _add_sys_admin(config: Config) -> None:
    for kind in ("bounding", "effective", "permitted"):
        config["process"]["capabilities"][kind].append("CAP_SYS_ADMIN")


def _writable_root(config: Config) -> None:
    config["root"]["readonly"] = False


def _no_tmp(config: Config) -> None:
    config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/tmp"]


def _readonly_tmp(config: Config) -> None:
    _mount(config, "/tmp")["options"] = ["ro", "bind"]


def _no_communicator_variable(config: Config) -> None:
    env = config["process"]["env"]
    config["process"]["env"] = [e for e in env if not e.startswith("COMMUNICATOR_CONNECTOR=")]


def _terminal(config: Config) -> None:
    config["process"]["terminal"] = True


def _new_privileges(config: Config) -> None:
    config["process"]["noNewPrivileges"] = False


def _allow_devices(config: Config) -> None:
    config["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]


def _writable_sys(config: Config) -> None:
    mount = _mount(config, "/sys")
    mount["options"] = [o for o in mount["options"] if o != "ro"]


def _writable_cgroup(config: Config) -> None:
    mount = _mount(config, "/sys/fs/cgroup")
    mount["options"] = [o for o in mount["options"] if o != "ro"]


def _no_hostname(config: Config) -> None:
    config.pop("hostname", None)


def _host_dev(config: Config) -> None:
    mount = _mount(config, "/dev")
    mount.update({"type": "bind", "source": "/dev", "options": ["rbind", "nosuid"]})


def _bind(source: str, destination: str, *options: str) -> Callable[[Config], None]:
    def mutate(config: Config) -> None:
        mount = {"destination": destination, "type": "bind", "source": source}
        config["mounts"].append({**mount, "options": ["rbind", *options]})

    return mutate


def _dev_mem(config: Config) -> None:
    # The node only: the device cgroup still denies it, but the container should not have it.
    config["linux"]["devices"] = [{"path": "/dev/mem", "type": "c", "major": 1, "minor": 1}]


def _no_seccomp(config: Config) -> None:
    config["linux"].pop("seccomp")


F = frozenset
FAULTS: tuple[Fault, ...] = (
    Fault(
        "pid-namespace-removed",
        _drop_namespace("pid"),
        F({"TC-NS-001"}),
        F({"TC-NS-001", "TC-LIFE-002"}),
    ),
    Fault(
        "network-namespace-removed", _drop_namespace("network"), F({"TC-NS-002"}), F({"TC-NS-002"})
    ),
    Fault("ipc-namespace-removed", _drop_namespace("ipc"), F({"TC-NS-003"}), F({"TC-NS-003"})),
    Fault(
        "uts-namespace-removed",
        _drop_uts,
        F({"TC-NS-004", "TC-HOST-001"}),
        F({"TC-NS-004", "TC-HOST-001"}),
    ),
    Fault(
        "kcore-not-masked",
        _drop_from("maskedPaths", subject("TC-MASK-001")),
        F({"TC-MASK-001"}),
        F({"TC-MASK-001"}),
    ),
    Fault(
        "sys-firmware-not-masked",
        _drop_from("maskedPaths", subject("TC-MASK-005")),
        F({"TC-MASK-005"}),
        F({"TC-MASK-005"}),
    ),
    Fault(
        "proc-sys-writable",
        _drop_from("readonlyPaths", subject("TC-RO-004")),
        F({"TC-RO-004"}),
        F({"TC-RO-004"}),
    ),
    Fault(
        "sysrq-trigger-writable",
        _drop_from("readonlyPaths", subject("TC-RO-005")),
        F({"TC-RO-005"}),
        F({"TC-RO-005"}),
    ),
    Fault(
        "cap-sys-admin-added",
        _add_sys_admin,
        F({"TC-CAP-001", "TC-CAP-002"}),
        F({"TC-CAP-001", "TC-CAP-002"}),
    ),
    Fault("root-writable", _writable_root, F({"TC-ROOT-001"}), F({"TC-ROOT-001"})),
    Fault("tmp-not-mounted", _no_tmp, F({"TC-MNT-001", "TC-COM-001"}), F({"TC-LIFE-001"})),
    # Real Thunder's host still connects to the communicator through a read-only /tmp (a unix
    # socket's connect writes nothing): OCDM activates and the probe finds /tmp not writable.
    Fault("tmp-read-only", _readonly_tmp, F({"TC-MNT-001"}), F({"TC-MNT-001"})),
    Fault(
        "communicator-variable-missing",
        _no_communicator_variable,
        F({"TC-ENV-001"}),
        F({"TC-ENV-001"}),
    ),
    Fault("terminal-true", _terminal, F({"TC-PROC-001"}), F({"TC-LIFE-001"})),
    Fault("new-privileges-allowed", _new_privileges, F({"TC-PROC-002"}), F({"TC-PROC-002"})),
    Fault("devices-allowed", _allow_devices, F({"TC-DEV-001"}), F()),
    Fault("sys-writable", _writable_sys, F({"TC-MNT-004"}), F({"TC-MNT-004"})),
    Fault("cgroup-writable", _writable_cgroup, F({"TC-MNT-005"}), F({"TC-MNT-005"})),
    Fault("hostname-removed", _no_hostname, F({"TC-HOST-001"}), F({"TC-HOST-001"})),
    # Writable (TC-MNT-007), and every device node of the target shows inside (TC-DEV-002 at
    # runtime; statically config.json adds no device, it binds them).
    Fault(
        "host-dev-bound",
        _host_dev,
        F({"TC-MNT-003", "TC-MNT-007"}),
        F({"TC-MNT-003", "TC-MNT-007", "TC-DEV-002"}),
    ),
    Fault(
        "host-var-bound-writable",
        _bind("/var", "/mnt/host-var"),
        F({"TC-MNT-007"}),
        F({"TC-MNT-007"}),
    ),
    Fault(
        "host-etc-bound-read-only",
        _bind("/etc", "/mnt/host-etc", "ro"),
        F({"TC-MNT-008"}),
        F({"TC-MNT-008"}),
    ),
    Fault("seccomp-removed", _no_seccomp, F({"TC-PROC-005"}), F({"TC-PROC-005"})),
    Fault("dev-mem-created", _dev_mem, F({"TC-DEV-002"}), F({"TC-DEV-002"})),
)


def broken(config: Config, fault: Fault) -> Config:
    result = copy.deepcopy(config)
    fault.breaks(result)
    return result
