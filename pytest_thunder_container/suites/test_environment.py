"""ENV: Thunder's variables reach the plugin host in the container."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify


@pytest.mark.requirement("TC-ENV-001")
def test_communicator_connector_is_passed(thunder_static: Verify) -> None:
    thunder_static("TC-ENV-001")


@pytest.mark.requirement("TC-ENV-001")
def test_host_sees_thunders_communicator_connector(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-ENV-001")


@pytest.mark.requirement("TC-ENV-002")
def test_message_dispatcher_config_is_passed(thunder_static: Verify) -> None:
    thunder_static("TC-ENV-002")


@pytest.mark.requirement("TC-ENV-002")
def test_host_sees_message_dispatcher_config(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-ENV-002")


@pytest.mark.requirement("TC-ENV-003")
def test_no_obsolete_trace_variables(thunder_static: Verify) -> None:
    thunder_static("TC-ENV-003")


@pytest.mark.requirement("TC-ENV-004")
def test_path_is_set(thunder_static: Verify) -> None:
    thunder_static("TC-ENV-004")
