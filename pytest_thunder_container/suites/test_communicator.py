"""COM: the plugin host in the container talks to Thunder over the communicator."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify


@pytest.mark.requirement("TC-COM-001")
def test_communicator_directory_is_mounted(thunder_static: Verify) -> None:
    thunder_static("TC-COM-001")


@pytest.mark.requirement("TC-COM-001")
def test_communicator_is_a_socket_inside(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-COM-001")


@pytest.mark.requirement("TC-COM-002")
def test_host_is_linked_over_comrpc(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-COM-002")


@pytest.mark.requirement("TC-COM-003")
def test_host_argv_names_connector_and_callsign(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-COM-003")


@pytest.mark.requirement("TC-COM-004")
def test_plugin_call_is_served_from_the_container(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-COM-004")


@pytest.mark.requirement("TC-COM-005")
def test_message_dispatcher_files_are_visible(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-COM-005")
