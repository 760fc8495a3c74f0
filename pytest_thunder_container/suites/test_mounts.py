"""MNT, DEV: the container's mounts and device access."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify

MOUNTS = {
    "TC-MNT-001": "tmp-bind-rw",
    "TC-MNT-002": "proc",
    "TC-MNT-003": "dev-tmpfs",
    "TC-MNT-004": "sys-ro",
    "TC-MNT-005": "cgroup-ro",
    "TC-MNT-006": "dev-submounts-nosuid-noexec",
    "TC-MNT-007": "no-writable-host-bind",
    "TC-MNT-008": "no-sensitive-host-bind",
}
CASES = [
    pytest.param(rid, marks=pytest.mark.requirement(rid), id=what) for rid, what in MOUNTS.items()
]


@pytest.mark.parametrize("requirement", CASES)
def test_mount_is_configured(requirement: str, thunder_static: Verify) -> None:
    thunder_static(requirement)


@pytest.mark.parametrize("requirement", CASES)
def test_mount_is_in_place_inside(requirement: str, thunder_runtime: Verify) -> None:
    thunder_runtime(requirement)


@pytest.mark.requirement("TC-DEV-001")
def test_device_cgroup_denies_all_by_default(thunder_static: Verify) -> None:
    thunder_static("TC-DEV-001")


@pytest.mark.requirement("TC-DEV-002")
def test_no_device_beyond_runcs_defaults_in_config(thunder_static: Verify) -> None:
    thunder_static("TC-DEV-002")


@pytest.mark.requirement("TC-DEV-002")
def test_no_device_beyond_runcs_defaults_inside(thunder_runtime: Verify) -> None:
    thunder_runtime("TC-DEV-002")
