"""The parsers of probe output: mountinfo, status, limits, sockets, runc, sections."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pytest_thunder_container.conformance import procfs
from pytest_thunder_container.conformance.observe import (
    Probe,
    inside_script,
    observation_from_dict,
    outside_script,
    split_sections,
)

OBSERVATIONS = Path(__file__).parent / "data" / "observations"


def recorded_probe(name: str, where: str) -> Probe:
    data = json.loads((OBSERVATIONS / f"{name}.json").read_text())
    probe = getattr(observation_from_dict(data["observation"]), where)
    assert probe is not None
    return probe


def test_a_marker_glued_to_output_without_a_newline_still_starts_a_section() -> None:
    probe = recorded_probe("r5-container", "outside")
    assert "runc-ps" not in probe.sections  # runc state prints no final newline
    sections = procfs.probe_sections(probe)
    assert sections["runc-ps"] == "[218,235]"
    assert procfs.runc_json(sections["runc-state"])["status"] == "created"
    assert list(sections)[-3:] == ["target-hostname", "target-exists", "end"]


def test_the_command_of_one_section_is_cut_from_the_script() -> None:
    outside = Probe("target", outside_script(235, "OCDM", ("/proc/example",)), 0, {})
    assert procfs.section_command(outside, "status") == "cat /proc/235/status"
    assert procfs.section_command(outside, "runc-ps") == "runc ps --format json OCDM 2>&1; echo"
    inside = recorded_probe("r44-container", "inside")
    assert procfs.section_command(inside, "mountinfo") == (
        "runc exec OCDM sh -c 'cat /proc/self/mountinfo'"
    )
    script = inside_script("00ff", "/tmp/communicator", ("/proc/example",))
    command = f"runc exec OCDM sh -c {shlex.quote(script)}"
    probe = Probe("container", command, 0, {})
    assert procfs.section_command(probe, "hostname") == "runc exec OCDM sh -c hostname"
    assert procfs.section_command(probe, "tmp-write") == (
        "runc exec OCDM sh -c 'm=$( ( : > /tmp/.tc-probe-00ff ) 2>&1); echo \"$?|$m\"'"
    )


def test_section_command_falls_back_to_the_whole_command() -> None:
    probe = Probe("target", "cat /proc/1/status", 0, split_sections(""))
    assert procfs.section_command(probe, "status") == "cat /proc/1/status"


def test_mountinfo_with_optional_fields_and_escapes() -> None:
    text = (
        "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root "
        "rw,errors=continue\n"
        "37 36 0:5 / /proc ro,nosuid - proc proc rw\n"
        "garbage line\n"
    )
    first, second = procfs.mountinfo(text)
    assert first.mount_point == "/mnt/with space"
    assert first.optional == ("master:1", "shared:7")
    assert (first.fstype, first.source) == ("ext3", "/dev/root")
    assert first.options == ("rw", "noatime")
    assert first.super_options == ("rw", "errors=continue")
    assert second.options == ("ro", "nosuid")


def test_the_mount_a_path_lies_on_is_the_deepest_and_last() -> None:
    mounts = procfs.mountinfo(
        "1 0 0:1 / / ro - rootfs rootfs rw\n"
        "2 1 0:2 / /proc rw - proc proc rw\n"
        "3 2 0:2 /sys /proc/sys ro - proc proc rw\n"
        "4 2 0:2 /sys /proc/sys rw - proc proc rw\n"
        "5 2 0:2 /sysrq /proc/sysrq-trigger ro - proc proc rw\n"
    )
    assert procfs.covering_mount(mounts, "/proc/sys/kernel/hostname").mount_id == 4
    assert procfs.covering_mount(mounts, "/proc/system").mount_id == 2
    assert procfs.covering_mount(mounts, "/etc").mount_id == 1
    assert procfs.mount_at(mounts, "/proc/sys/").mount_id == 4
    assert procfs.mount_at(mounts, "/proc/bus") is None


def test_capabilities_decode_to_names() -> None:
    assert len(procfs.CAPABILITIES) == 41
    assert procfs.CAPABILITIES[21] == "CAP_SYS_ADMIN"
    assert procfs.capability_names(0x20000420) == (
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE",
    )
    assert procfs.capability_mask(["CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_BIND_SERVICE"]) == (
        0x20000420
    )
    assert procfs.capability_names(1 << 41) == ("CAP_UNKNOWN_41",)


def test_status_environ_and_limits() -> None:
    probe = recorded_probe("r44-container", "outside")
    status = procfs.status_fields(probe.sections["status"])
    assert (status["CapBnd"], status["NoNewPrivs"], status["Uid"]) == (
        "0000000020000420",
        "1",
        "0\t0\t0\t0",
    )
    environ = procfs.environ_values("A=1\nMESSAGE_DISPATCHER_CONFIG=/tmp/md|md|0|1\nB=x=y")
    assert environ == {"A": "1", "MESSAGE_DISPATCHER_CONFIG": "/tmp/md|md|0|1", "B": "x=y"}
    limits = procfs.limits(probe.sections["limits"])
    assert (limits["Max open files"].soft, limits["Max open files"].hard) == ("1024", "1024")
    assert limits["Max stack size"].hard == "unlimited"
    assert limits["Max realtime timeout"].soft == "unlimited"


def test_sockets_held_and_their_states() -> None:
    probe = recorded_probe("r5-container", "outside")
    assert procfs.socket_inodes(probe.sections["fds"]) == {10906, 10907, 10908}
    sockets = {s.inode: s for s in procfs.unix_sockets(probe.sections["net-unix"])}
    assert (sockets[10907].kind, sockets[10907].state, sockets[10907].path) == (1, 3, "")
    assert sockets[10908].path == "/tmp/ocdm"
    assert 10836 in sockets and "Num" not in str(sockets)


def test_namespace_links_keep_an_unreadable_link_empty() -> None:
    links = procfs.namespace_links("pid pid:[1] pid:[2]\nnet net:[3] \ntime  time:[9]")
    assert links == {
        "pid": ("pid:[1]", "pid:[2]"),
        "net": ("net:[3]", ""),
        "time": ("", "time:[9]"),
    }


def test_runc_error_text_is_not_json() -> None:
    assert procfs.runc_json("ERRO[0000] container does not exist") is None
    assert procfs.runc_json("[214]") == [214]
