"""Runtime checks on broken observations: each derived break fails exactly its requirement."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from test_checks import (
    ABSENT_ON_TARGET,
    BASELINE_FAILURES,
    BUNDLE,
    CATALOGUE,
    CONTAINER_RECORDINGS,
    edit,
    edit_line,
    failing,
    host_pid,
    judge,
    recording,
)

from pytest_thunder_container.conformance.runtime.table import PluginCall, runtime_checks


def subject(requirement: str) -> str:
    """The path a MASK or RO requirement is about, as the catalogue (alone) lists it."""
    return CATALOGUE.get(requirement).subject


Breakage = Callable[[dict[str, Any]], None]


def same_namespace_as_init(kind: str) -> Breakage:
    def breakage(data: dict[str, Any]) -> None:
        text = data["observation"]["outside"]["sections"]["ns"]
        init = next(line.split()[1] for line in text.splitlines() if line.startswith(f"{kind} "))
        edit_line(data, "outside", "ns", f"{kind} ", f"{kind} {init} {init}")

    return breakage


def masked_line(path: str, line: str, *, on_target: bool = False) -> Breakage:
    def breakage(data: dict[str, Any]) -> None:
        edit_line(data, "inside", "masked", f"{path}|", f"{path}|{line}")
        if on_target:
            edit(data, "outside", "target-exists", "/proc/bus", f"{path}\n/proc/bus")

    return breakage


def writable_mount(path: str) -> Breakage:
    """The mount at `path` inside without its `ro` per-mount option."""

    def breakage(data: dict[str, Any]) -> None:
        text = data["observation"]["inside"]["sections"]["mountinfo"]
        line = next(line for line in text.splitlines() if line.split()[4] == path)
        fields = line.split(" ")
        fields[5] = fields[5].replace("ro", "rw", 1)
        edit(data, "inside", "mountinfo", line, " ".join(fields))

    return breakage


def mount_type(path: str, fstype: str) -> Breakage:
    def breakage(data: dict[str, Any]) -> None:
        text = data["observation"]["inside"]["sections"]["mountinfo"]
        line = next(line for line in text.splitlines() if line.split()[4] == path)
        before, _, after = line.partition(" - ")
        _, source, options = after.split(" ")
        edit(data, "inside", "mountinfo", line, f"{before} - {fstype} {source} {options}")

    return breakage


def host_bind(source: str, destination: str, per_mount: str) -> Breakage:
    """config.json binds a host path, and the container's mountinfo shows it with `per_mount`."""

    def breakage(data: dict[str, Any]) -> None:
        options = ["rbind"] if per_mount.startswith("rw") else ["rbind", "ro"]
        data["config"]["mounts"].append(
            {"destination": destination, "type": "bind", "source": source, "options": options}
        )
        line = f"90 45 179:2 {source} {destination} {per_mount} - ext4 /dev/root rw"
        sections = data["observation"]["inside"]["sections"]
        sections["mountinfo"] += f"\n{line}"

    return breakage


def dev_node(line: str) -> Breakage:
    """One more device node in the container's /dev, as `ls -l` shows it."""

    def breakage(data: dict[str, Any]) -> None:
        data["observation"]["inside"]["sections"]["dev"] += f"\n{line}"

    return breakage


def status_line(key: str, value: str) -> Breakage:
    return lambda data: edit_line(data, "outside", "status", f"{key}:", f"{key}:\t{value}")


def inside(name: str, text: str) -> Breakage:
    def breakage(data: dict[str, Any]) -> None:
        data["observation"]["inside"]["sections"][name] = text

    return breakage


def context(**values: Any) -> Breakage:
    return lambda data: data.setdefault("context", {}).update(values)


def without_host_pid_in_runc_ps(data: dict[str, Any]) -> None:
    text = data["observation"]["outside"]["sections"]["runc-state"]
    listed = re.search(r"\[[0-9,]*\]\s*$", text)
    assert listed is not None
    pids = [pid for pid in json.loads(listed[0]) if pid != host_pid(data)]
    edit(data, "outside", "runc-state", listed[0], json.dumps(pids))


def without_argument(flag: str) -> Breakage:
    def breakage(data: dict[str, Any]) -> None:
        text = data["observation"]["outside"]["sections"]["cmdline"]
        lines = text.split("\n")
        index = lines.index(flag)
        data["observation"]["outside"]["sections"]["cmdline"] = "\n".join(
            lines[:index] + lines[index + 2 :]
        )
        argv = data["observation"]["host"]["argv"]
        del argv[argv.index(flag) : argv.index(flag) + 2]

    return breakage


def unconnected_sockets(data: dict[str, Any]) -> None:
    text = data["observation"]["outside"]["sections"]["net-unix"]
    data["observation"]["outside"]["sections"]["net-unix"] = text.replace(" 0001 03 ", " 0001 01 ")


def runc_rootfs(rootfs: str) -> Breakage:
    return lambda data: edit(
        data, "outside", "runc-state", f'"rootfs": "{BUNDLE}/rootfs"', f'"rootfs": "{rootfs}"'
    )


def masked_path_variants() -> list[tuple[str, Breakage, set[str]]]:
    """For each path the target lacks, a target that has it, unmasked inside."""
    directories = {subject(rid) for rid in ("TC-MASK-006", "TC-MASK-007", "TC-MASK-010")}
    variants = []
    for requirement in CATALOGUE.in_area("MASK"):
        path = requirement.subject
        if requirement.id in ABSENT_ON_TARGET:
            line = "directory|0,0|0|4" if path in directories else "regular file|0,0|64|1"
            breakage = masked_line(path, line, on_target=True)
            variants.append((f"{path} unmasked", breakage, {requirement.id}))
    return variants


def runc_status(status: str) -> Breakage:
    def breakage(data: dict[str, Any]) -> None:
        sections = data["observation"]["outside"]["sections"]
        sections["runc-state"], count = re.subn(
            r'"status": "\w+"', f'"status": "{status}"', sections["runc-state"]
        )
        assert count == 1

    return breakage


def replaced(where: str, name: str, old: str, new: str) -> Breakage:
    return lambda data: edit(data, where, name, old, new)


def write_results(hostname: str, sysrq: str) -> Breakage:
    """The inside probe's writes to /proc/sys/kernel/hostname and /proc/sysrq-trigger."""
    text = f"/proc/sys/kernel/hostname|{hostname}\n/proc/sysrq-trigger|{sysrq}"
    return inside("readonly-write", text)


def not_seen_outside(data: dict[str, Any]) -> None:
    data["observation"]["tmp_probe_seen_outside"] = False


EROFS = "1|sh: can't create it: Read-only file system"
CONNECTOR_ENV = "COMMUNICATOR_CONNECTOR=/tmp/communicator"
SHM = "rw,nosuid,nodev,noexec,relatime - tmpfs shm"
NOFILE = "Max open files            1024                 1024"
BREAKAGES: list[tuple[str, Breakage, set[str]]] = [
    ("pid ns is init's", same_namespace_as_init("pid"), {"TC-NS-001", "TC-LIFE-002"}),
    ("net ns is init's", same_namespace_as_init("net"), {"TC-NS-002"}),
    ("ipc ns is init's", same_namespace_as_init("ipc"), {"TC-NS-003"}),
    ("uts ns is init's", same_namespace_as_init("uts"), {"TC-NS-004"}),
    ("mnt ns is init's", same_namespace_as_init("mnt"), {"TC-NS-005"}),
    ("kcore readable", masked_line(subject("TC-MASK-001"), "regular file|0,0|64|1"),
     {"TC-MASK-001"}),
    ("keys readable", masked_line(subject("TC-MASK-002"), "regular file|0,0|64|1"),
     {"TC-MASK-002"}),
    ("timer_list /dev/zero", masked_line(subject("TC-MASK-003"), "character special file|1,5|0|1"),
     {"TC-MASK-003"}),
    ("firmware listed", masked_line(subject("TC-MASK-005"), "directory|0,0|0|3"), {"TC-MASK-005"}),
    *masked_path_variants(),
    ("/proc/bus rw", writable_mount(subject("TC-RO-001")), {"TC-RO-001"}),
    ("/proc/fs rw", writable_mount(subject("TC-RO-002")), {"TC-RO-002"}),
    ("/proc/irq rw", writable_mount(subject("TC-RO-003")), {"TC-RO-003"}),
    ("/proc/sys rw", writable_mount(subject("TC-RO-004")), {"TC-RO-004"}),
    ("/proc/sys written", write_results("0|", EROFS), {"TC-RO-004"}),
    ("/proc/sysrq-trigger rw", writable_mount(subject("TC-RO-005")), {"TC-RO-005"}),
    ("sysrq-trigger EACCES", write_results(EROFS, "1|sh: can't create it: Permission denied"),
     {"TC-RO-005"}),
    ("CapBnd has SYS_ADMIN", status_line("CapBnd", "0000000020200420"),
     {"TC-CAP-001", "TC-CAP-002"}),
    ("CapEff has NET_ADMIN", status_line("CapEff", "0000000020001420"), {"TC-CAP-002"}),
    ("CapInh has SYS_ADMIN", status_line("CapInh", "0000000000200000"),
     {"TC-CAP-001", "TC-CAP-002"}),
    ("CapAmb has NET_BIND", status_line("CapAmb", "0000000000000400"), {"TC-CAP-003"}),
    ("NoNewPrivs 0", status_line("NoNewPrivs", "0"), {"TC-PROC-002"}),
    ("nofile 4096", replaced("outside", "limits", NOFILE, NOFILE.replace("1024", "4096")),
     {"TC-PROC-003"}),
    ("uid 1000", status_line("Uid", "1000\t1000\t1000\t1000"), {"TC-PROC-004"}),
    ("hostname is the target's", inside("hostname", "rpi3"), {"TC-HOST-001"}),
    ("root writable", inside("root-write", "0|"), {"TC-ROOT-001"}),
    ("/tmp not writable", inside("tmp-write", EROFS), {"TC-MNT-001"}),
    ("/tmp not the target's", not_seen_outside, {"TC-MNT-001"}),
    ("/proc not proc", mount_type("/proc", "tmpfs"), {"TC-MNT-002"}),
    ("/dev is devtmpfs", mount_type("/dev", "devtmpfs"), {"TC-MNT-003"}),
    ("/sys rw", writable_mount("/sys"), {"TC-MNT-004"}),
    ("/sys written", inside("sysfs-write", "0|"), {"TC-MNT-004"}),
    ("cgroup rw", writable_mount("/sys/fs/cgroup"), {"TC-MNT-005"}),
    ("cgroup written", inside("cgroup-write", "0|"), {"TC-MNT-005"}),
    ("/var bound rw", host_bind("/var", "/mnt/host-var", "rw,relatime"), {"TC-MNT-007"}),
    ("/etc bound ro", host_bind("/etc", "/mnt/host-etc", "ro,relatime"), {"TC-MNT-008"}),
    ("/dev/mem inside", dev_node("crw-r-----    1 root  kmem   1,   1 Jan  1 00:00 mem"),
     {"TC-DEV-002"}),
    ("/dev/shm exec", replaced("inside", "mountinfo", SHM, SHM.replace("noexec,", "")),
     {"TC-MNT-006"}),
    ("no communicator", inside("communicator", "absent\nls: /tmp/communicator: No such file"),
     {"TC-COM-001"}),
    ("communicator a file", inside("communicator", "not-a-socket"), {"TC-COM-001"}),
    ("no COMRPC link", lambda d: d["links"].pop(), {"TC-COM-002"}),
    # No 'link of another plugin': real Thunder names a COMRPC link for its communicator.
    ("no connected socket", unconnected_sockets, {"TC-COM-002"}),
    ("no -r", without_argument("-r"), {"TC-COM-003"}),
    ("no -C", without_argument("-C"), {"TC-COM-003"}),
    ("plugin call error", context(plugin_call=PluginCall("OCDM.1.drms", None, "ERROR_TIMEDOUT")),
     {"TC-COM-004"}),
    ("plugin call empty", context(plugin_call=PluginCall("OCDM.1.drms", None)), {"TC-COM-004"}),
    ("wrong connector env", replaced("outside", "environ", CONNECTOR_ENV,
                                     "COMMUNICATOR_CONNECTOR=/tmp/x"), {"TC-ENV-001"}),
    ("unexpanded connector env", replaced("outside", "environ", CONNECTOR_ENV,
                                          "COMMUNICATOR_CONNECTOR=$COMMUNICATOR_CONNECTOR"),
     {"TC-ENV-001"}),
    ("runc status stopped", runc_status("stopped"), {"TC-LIFE-001"}),
    ("not Activated", context(state="Activation"), {"TC-LIFE-001"}),
    ("runc ps misses the host", without_host_pid_in_runc_ps, {"TC-LIFE-002"}),
    ("rootfs not root.path", runc_rootfs(f"{BUNDLE}/image"), {"TC-CFG-003"}),
    ("another bundle", runc_rootfs("/tmp/OCDM/Container/rootfs"), {"TC-CFG-005"}),
]  # fmt: skip
R5_ONLY_BREAKAGES: list[tuple[str, Breakage, set[str]]] = [
    # R4.4's host has no MESSAGE_DISPATCHER_CONFIG to begin with (see BASELINE_FAILURES).
    ("no md files", inside("dispatcher", ""), {"TC-COM-005"}),
    ("no dispatcher env", replaced("outside", "environ", "MESSAGE_DISPATCHER_CONFIG=", "OTHER="),
     {"TC-ENV-002"}),
]  # fmt: skip


@pytest.mark.parametrize("name", CONTAINER_RECORDINGS)
@pytest.mark.parametrize(
    ("breakage", "expected"),
    [pytest.param(b, e, id=n) for n, b, e in BREAKAGES],
)
def test_a_broken_observation_fails_exactly_its_requirement(
    name: str, breakage: Breakage, expected: set[str]
) -> None:
    data = recording(name)
    breakage(data)
    verdicts = judge(data)
    assert failing(verdicts) == BASELINE_FAILURES[name] | expected
    for rid in expected:
        assert verdicts[rid].evidence, rid


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [pytest.param(b, e, id=n) for n, b, e in R5_ONLY_BREAKAGES],
)
def test_a_broken_r5_observation_fails_exactly_its_requirement(
    breakage: Breakage, expected: set[str]
) -> None:
    data = recording("r5-container")
    breakage(data)
    assert failing(judge(data)) == BASELINE_FAILURES["r5-container"] | expected


def test_a_bundle_from_elsewhere_leaves_root_path_unjudged() -> None:
    data = recording("r5-container")
    runc_rootfs("/tmp/OCDM/Container/rootfs")(data)
    verdict = judge(data)["TC-CFG-003"]
    assert verdict.outcome == "blocked"
    assert "another bundle" in verdict.message


def test_messages_say_what_was_expected_and_seen() -> None:
    data = recording("r5-container")
    same_namespace_as_init("pid")(data)
    status_line("CapBnd", "0000000020200420")(data)
    verdicts = judge(data)
    assert verdicts["TC-NS-001"].message == (
        "pid namespace of ThunderPlugin (pid 235) is pid:[4026531836], the same as init's: "
        "not isolated"
    )
    assert "CAP_SYS_ADMIN is in CapBnd" in verdicts["TC-CAP-001"].message
    assert "CAP_SYS_ADMIN" in verdicts["TC-CAP-002"].message


def test_every_check_has_an_observation_that_fails_it() -> None:
    broken = set().union(*(expected for _, _, expected in BREAKAGES + R5_ONLY_BREAKAGES))
    assert set(runtime_checks(CATALOGUE)) <= broken | BASELINE_FAILURES["r5-container"]


def test_a_host_path_the_user_allows_may_be_bound_writable() -> None:
    data = recording("r5-container")
    host_bind("/var", "/mnt/host-var", "rw,relatime")(data)
    assert "TC-MNT-007" in failing(judge(data))
    data["context"] = {"allowed_binds": ("/var",)}
    verdict = judge(data)["TC-MNT-007"]
    assert verdict.outcome == "pass", verdict.message
    assert "/mnt/host-var" in verdict.evidence[0].output


def test_a_configured_bind_missing_from_mountinfo_blocks_the_bind_checks() -> None:
    data = recording("r5-container")
    data["config"]["mounts"].append(
        {"destination": "/mnt/x", "source": "/var", "options": ["bind"]}
    )
    verdicts = judge(data)
    for rid in ("TC-MNT-007", "TC-MNT-008"):
        assert verdicts[rid].outcome == "blocked"
        assert "binds /var at /mnt/x, not in mountinfo" in verdicts[rid].message
