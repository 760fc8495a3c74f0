"""The reference Containers plugin (ThunderNanoServices ProcessContainers), in process.

JSON-RPC as ProcessContainers/ContainersJsonRpc.cpp: containers, memory@<id>, cpu@<id>,
networks@<id> (always [] for runc), start {name, command, parameters}, stop {name}; an id the
daemon did not start is ERROR_UNAVAILABLE. Real Thunder reads cgroup v1 files
(memory/<id>/memory.usage_in_bytes and memory.stat rss/mapped_file, cpuacct/<id>/
cpuacct.usage_percpu) and has nothing on cgroup v2; the reference reads v1 when present, else
v2: memory.current, memory.stat anon/file_mapped, cpu.stat usage_usec (as ns, no per-core list).
"""

from __future__ import annotations

import os

from refthunder.rpcerrors import (
    ERROR_BAD_REQUEST,
    ERROR_GENERAL,
    ERROR_UNAVAILABLE,
    ERROR_UNKNOWN_METHOD,
    ThunderError,
)
from refthunder.runc import ContainerAdministrator, RuncError
from refthunder.services import Shell

UNKNOWN = 2**64 - 1  # CGroupMemoryInfo's UINT64_MAX for a figure it could not read


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError:
        return None


def _stat(text: str | None) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return values


def memory_figures(cgroup_root: str, container_id: str) -> dict[str, int]:
    """{allocated, resident, shared} in bytes from cgroup v1 if present, else v2."""
    v1 = f"{cgroup_root}memory/{container_id}/"
    usage = _read(v1 + "memory.usage_in_bytes")
    if usage is not None:
        stat = _stat(_read(v1 + "memory.stat"))
        allocated = int(usage.strip()) if usage.strip().isdigit() else UNKNOWN
        return {
            "allocated": allocated,
            "resident": stat.get("rss", UNKNOWN),
            "shared": stat.get("mapped_file", UNKNOWN),
        }
    v2 = f"{cgroup_root}{container_id}/"
    current = (_read(v2 + "memory.current") or "").strip()
    stat = _stat(_read(v2 + "memory.stat"))
    return {
        "allocated": int(current) if current.isdigit() else UNKNOWN,
        "resident": stat.get("anon", UNKNOWN),
        "shared": stat.get("file_mapped", UNKNOWN),
    }


def cpu_figures(cgroup_root: str, container_id: str) -> dict[str, object]:
    """{total, cores[]} in ns: per-core from cgroup v1 cpuacct, else the v2 total alone."""
    percpu = _read(f"{cgroup_root}cpuacct/{container_id}/cpuacct.usage_percpu")
    if percpu is not None:
        cores = [int(token) for token in percpu.split() if token.isdigit()]
        return {"total": sum(cores), "cores": cores}
    stat = _stat(_read(f"{cgroup_root}{container_id}/cpu.stat"))
    return {"total": stat.get("usage_usec", 0) * 1000, "cores": []}


class ContainersPlugin:
    """Reports on the containers the daemon's runc backend started."""

    def __init__(self, administrator: ContainerAdministrator) -> None:
        self.administrator = administrator
        self.cgroup_root = ""

    def initialize(self, shell: Shell) -> None:
        self.cgroup_root = shell.server.cgroup_root

    def deinitialize(self) -> None:
        return None

    def invoke(self, method: str, index: str | None, params: object, has_params: bool) -> object:
        if method == "containers":
            return self.administrator.ids()
        if method in ("memory", "cpu", "networks"):
            if index is None or self.administrator.get(index) is None:
                raise ThunderError(ERROR_UNAVAILABLE)
            if method == "memory":
                return memory_figures(self.cgroup_root, index)
            if method == "cpu":
                return cpu_figures(self.cgroup_root, index)
            return []
        if method in ("start", "stop"):
            return self._start_stop(method, params if isinstance(params, dict) else {})
        raise ThunderError(ERROR_UNKNOWN_METHOD)

    def _start_stop(self, method: str, params: dict) -> None:
        name = params.get("name")
        if not isinstance(name, str):
            raise ThunderError(ERROR_BAD_REQUEST)
        container = self.administrator.get(name)
        if container is None:
            raise ThunderError(ERROR_UNAVAILABLE)
        try:
            if method == "stop":
                container.stop()
                return None
            parameters = params.get("parameters", [])
            container.start(str(params.get("command", "")), [str(p) for p in parameters or []])
        except (RuncError, OSError) as error:
            raise ThunderError(ERROR_GENERAL, data=str(error)) from error
        return None


def cgroup_version(cgroup_root: str) -> str:
    """'v2' when the unified hierarchy is mounted at the root, else 'v1'."""
    return "v2" if os.path.exists(cgroup_root + "cgroup.controllers") else "v1"
