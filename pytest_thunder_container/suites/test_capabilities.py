"""CAP: the plugin host holds no capability it doesn't need."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify


@pytest.mark.requirement("TC-CAP-001")
def test_no_sys_admin_in_config(thunder_static: Verify) -> None:
    thunder_static("TC-CAP-001")


@pytest.mark.requirement("TC-CAP-001")
def test_host_lacks_sys_admin(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-CAP-001")


@pytest.mark.requirement("TC-CAP-002")
def test_config_caps_within_runc_default(thunder_static: Verify) -> None:
    thunder_static("TC-CAP-002")


@pytest.mark.requirement("TC-CAP-002")
def test_host_caps_within_runc_default(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-CAP-002")


@pytest.mark.requirement("TC-CAP-003")
def test_no_ambient_caps_in_config(thunder_static: Verify) -> None:
    thunder_static("TC-CAP-003")


@pytest.mark.requirement("TC-CAP-003")
def test_host_has_no_ambient_caps(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-CAP-003")
