"""PROC, ROOT, HOST: how the plugin host's process and its root are set up."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify


@pytest.mark.requirement("TC-PROC-001")
def test_terminal_is_false(thunder_static: Verify) -> None:
    thunder_static("TC-PROC-001")


@pytest.mark.requirement("TC-PROC-002")
def test_no_new_privileges_in_config(thunder_static: Verify) -> None:
    thunder_static("TC-PROC-002")


@pytest.mark.requirement("TC-PROC-002")
def test_host_has_no_new_privs(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-PROC-002")


@pytest.mark.requirement("TC-PROC-003")
def test_nofile_limit_in_config(thunder_static: Verify) -> None:
    thunder_static("TC-PROC-003")


@pytest.mark.requirement("TC-PROC-003")
def test_host_nofile_limit_matches(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-PROC-003")


@pytest.mark.requirement("TC-PROC-004")
def test_user_is_set(thunder_static: Verify) -> None:
    thunder_static("TC-PROC-004")


@pytest.mark.requirement("TC-PROC-004")
def test_host_runs_as_that_user(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-PROC-004")


@pytest.mark.requirement("TC-PROC-005")
def test_seccomp_profile_in_config(thunder_static: Verify) -> None:
    thunder_static("TC-PROC-005")


@pytest.mark.requirement("TC-PROC-005")
def test_host_runs_under_a_seccomp_filter(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-PROC-005")


@pytest.mark.requirement("TC-ROOT-001")
def test_root_is_readonly_in_config(thunder_static: Verify) -> None:
    thunder_static("TC-ROOT-001")


@pytest.mark.requirement("TC-ROOT-001")
def test_root_refuses_writes(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-ROOT-001")


@pytest.mark.requirement("TC-HOST-001")
def test_hostname_is_set(thunder_static: Verify) -> None:
    thunder_static("TC-HOST-001")


@pytest.mark.requirement("TC-HOST-001")
def test_hostname_inside_is_the_containers(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-HOST-001")
