"""RO: kernel interfaces that must not be written from the container are read-only there."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify

READONLY = {
    "TC-RO-001": "/proc/bus",
    "TC-RO-002": "/proc/fs",
    "TC-RO-003": "/proc/irq",
    "TC-RO-004": "/proc/sys",
    "TC-RO-005": "/proc/sysrq-trigger",
}
CASES = [
    pytest.param(rid, marks=pytest.mark.requirement(rid), id=path) for rid, path in READONLY.items()
]


@pytest.mark.parametrize("requirement", CASES)
def test_path_is_listed_in_readonly_paths(requirement: str, thunder_static: Verify) -> None:
    thunder_static(requirement)


@pytest.mark.parametrize("requirement", CASES)
def test_path_is_a_readonly_mount_inside(requirement: str, thunder_runtime: Verify) -> None:
    thunder_runtime(requirement)
