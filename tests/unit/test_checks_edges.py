"""Runtime checks where the property can't exist (not-applicable) or can't be seen (blocked)."""

from __future__ import annotations

from typing import Any

import pytest
from test_checks import (
    BASELINE_FAILURES,
    context_of,
    edit,
    edit_line,
    failing,
    judge,
    recording,
)

from pytest_thunder_container.conformance.runtime.table import PluginCall


def outcome(data: dict[str, Any], requirement: str) -> tuple[str, str]:
    verdict = judge(data)[requirement]
    return verdict.outcome, verdict.message


# ---------------------------------------------------------------------------- not-applicable


def test_r5_passes_an_unset_dispatcher_variable_on_unexpanded() -> None:
    data = recording("r5-container")
    edit(
        data,
        "outside",
        "environ",
        "MESSAGE_DISPATCHER_CONFIG=/tmp/MessageDispatcher|md|0|1|20480",
        "MESSAGE_DISPATCHER_CONFIG=$MESSAGE_DISPATCHER_CONFIG",
    )
    result, message = outcome(data, "TC-ENV-002")
    assert result == "not-applicable"
    assert "Thunder sets none" in message


def test_r44_does_not_expand_a_dispatcher_reference() -> None:
    data = recording("r44-container")
    edit(
        data,
        "outside",
        "environ",
        "HOME=/root",
        "MESSAGE_DISPATCHER_CONFIG=$MESSAGE_DISPATCHER_CONFIG\nHOME=/root",
    )
    result, message = outcome(data, "TC-ENV-002")
    assert result == "fail"
    assert "R4.4 does not expand" in message


def test_without_a_dispatcher_in_the_shared_tmp_message_checks_do_not_apply() -> None:
    data = recording("r44-container")
    data["observation"]["inside"]["sections"]["dispatcher"] = (
        "ls: /tmp/MessageDispatcher: No such file or directory"
    )
    verdicts = judge(data)
    assert verdicts["TC-COM-005"].outcome == "not-applicable"
    assert verdicts["TC-ENV-002"].outcome == "not-applicable"
    assert failing(verdicts) == BASELINE_FAILURES["r44-container"] - {"TC-ENV-002"}


def test_no_message_files_behind_an_unshared_tmp_fail() -> None:
    data = recording("r44-container")
    data["observation"]["inside"]["sections"]["dispatcher"] = ""
    data["observation"]["tmp_probe_seen_outside"] = False
    result, message = outcome(data, "TC-COM-005")
    assert result == "fail"
    assert "TC-MNT-001" in message


def test_a_tcp_communicator_has_no_socket_to_find_inside() -> None:
    data = recording("r5-container")
    data["context"] = {"connector": "127.0.0.1:62000"}
    assert outcome(data, "TC-COM-001")[0] == "not-applicable"


def test_no_dev_submounts_is_not_applicable() -> None:
    data = recording("r5-container")
    text = data["observation"]["inside"]["sections"]["mountinfo"]
    kept = [line for line in text.splitlines() if " /dev/" not in line]
    data["observation"]["inside"]["sections"]["mountinfo"] = "\n".join(kept)
    assert outcome(data, "TC-MNT-006")[0] == "not-applicable"


def test_a_kernel_without_cgroup_namespaces_is_not_applicable() -> None:
    data = recording("r5-container")
    edit_line(data, "outside", "ns", "cgroup ", "cgroup  ")
    result, message = outcome(data, "TC-NS-006")
    assert result == "not-applicable"
    assert "no cgroup namespaces" in message


def test_a_read_only_path_the_target_lacks_is_not_applicable() -> None:
    data = recording("r5-container")
    edit(data, "outside", "target-exists", "/proc/irq\n", "")
    assert outcome(data, "TC-RO-003")[0] == "not-applicable"


# ------------------------------------------------------------------------------- blocked


def test_an_unreadable_host_namespace_is_blocked() -> None:
    data = recording("r5-container")
    edit_line(data, "outside", "ns", "ipc ", "ipc ipc:[4026531839] ")
    result, message = outcome(data, "TC-NS-003")
    assert result == "blocked"
    assert message == f"not evaluated: the probe could not read /proc/{235}/ns/ipc"


def test_a_missing_section_blocks_only_the_checks_that_need_it() -> None:
    data = recording("r5-container")
    del data["observation"]["inside"]["sections"]["masked"]
    verdicts = judge(data)
    blocked = {rid for rid, v in verdicts.items() if v.outcome == "blocked"}
    assert blocked == {"TC-MASK-001", "TC-MASK-002", "TC-MASK-003", "TC-MASK-005"}
    assert verdicts["TC-MASK-001"].message == (
        "not evaluated: the probe inside the container printed no 'masked' section (exit status 0)"
    )


def test_no_plugin_call_and_no_tmp_look_are_blocked() -> None:
    data = recording("r5-container")
    data["context"] = {"plugin_call": None}
    data["observation"]["tmp_probe_seen_outside"] = None
    verdicts = judge(data)
    assert verdicts["TC-COM-004"].outcome == "blocked"
    assert verdicts["TC-MNT-001"].outcome == "blocked"


# -------------------------------------------------------------------------- config values


def test_an_unlimited_nofile_limit_matches_rlim_infinity() -> None:
    data = recording("r5-container")
    data["config"]["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2**64 - 1}
    ]
    edit_line(data, "outside", "limits", "Max open files", "Max open files  1024  unlimited  files")
    assert outcome(data, "TC-PROC-003")[0] == "pass"


@pytest.mark.parametrize(
    ("requirement", "path", "said"),
    [
        ("TC-PROC-003", ("process", "rlimits"), "sets no RLIMIT_NOFILE"),
        ("TC-PROC-004", ("process", "user"), "sets no uid and gid"),
        ("TC-HOST-001", ("hostname",), "sets no hostname"),
        ("TC-CFG-003", ("root", "path"), "sets no root.path"),
    ],
)
def test_a_config_without_the_setting_fails_at_runtime_too(
    requirement: str, path: tuple[str, ...], said: str
) -> None:
    data = recording("r5-container")
    holder = data["config"]
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    result, message = outcome(data, requirement)
    assert result == "fail"
    assert said in message


def test_an_absent_masked_path_inside_has_nothing_to_read() -> None:
    data = recording("r5-container")
    edit_line(data, "inside", "masked", "/proc/keys|", "/proc/keys|absent")
    assert outcome(data, "TC-MASK-002")[0] == "pass"


@pytest.mark.parametrize(
    ("dialect", "status", "result"),
    [
        ("R4.4", "created", "pass"),  # R4.4.3+ creates and execs, as R5 does
        ("R4.4", "running", "pass"),  # R4.4.0-R4.4.2: runc run --args
        ("R5", "created", "pass"),
        ("R5", "running", "fail"),
    ],
)
def test_runc_status_created_everywhere_running_only_for_early_r44(
    dialect: str, status: str, result: str
) -> None:
    data = recording("r5-container")
    data["context"] = {"dialect": dialect}
    edit_line(data, "outside", "runc-state", '  "status"', f'  "status": "{status}",')
    got, message = outcome(data, "TC-LIFE-001")
    assert got == result, message
    if result == "fail":
        assert "expected 'created' for R5" in message


def test_a_comrpc_link_is_ours_whatever_real_thunder_names_it() -> None:
    for name in (
        "WPEFramework::Communicator",
        "Thunder::Communicator",
        "/Thunder/Communicator",
        "/",
    ):
        data = recording("r5-container")
        link = {"remote": "/tmp/communicator", "state": "COMRPC", "id": 7, "name": name}
        data["links"] = [link]
        assert outcome(data, "TC-COM-002")[0] == "pass", name


def test_a_plugin_call_error_is_quoted() -> None:
    data = recording("r44-container")
    call = PluginCall("OCDM.1.drms", error="ERROR_UNAVAILABLE: The service is not active.")
    data["context"] = {"plugin_call": call}
    verdict = judge(data)["TC-COM-004"]
    assert verdict.message == "OCDM.1.drms failed: ERROR_UNAVAILABLE: The service is not active."
    assert verdict.evidence[0].command == ""
    assert context_of(data).plugin_call is call
