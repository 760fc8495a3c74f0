"""MASK: sensitive kernel files are masked inside the container."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify

MASKED = {
    "TC-MASK-001": "/proc/kcore",
    "TC-MASK-002": "/proc/keys",
    "TC-MASK-003": "/proc/timer_list",
    "TC-MASK-004": "/proc/sched_debug",
    "TC-MASK-005": "/sys/firmware",
    "TC-MASK-006": "/proc/acpi",
    "TC-MASK-007": "/proc/asound",
    "TC-MASK-008": "/proc/latency_stats",
    "TC-MASK-009": "/proc/timer_stats",
    "TC-MASK-010": "/proc/scsi",
}
CASES = [
    pytest.param(rid, marks=pytest.mark.requirement(rid), id=path) for rid, path in MASKED.items()
]


@pytest.mark.parametrize("requirement", CASES)
def test_path_is_listed_in_masked_paths(requirement: str, thunder_static: Verify) -> None:
    thunder_static(requirement)


@pytest.mark.parametrize("requirement", CASES)
def test_path_reads_nothing_inside(requirement: str, thunder_runtime: Verify) -> None:
    thunder_runtime(requirement)
