"""NS: the plugin host runs in namespaces of its own."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify

NAMESPACES = {
    "TC-NS-001": "pid",
    "TC-NS-002": "network",
    "TC-NS-003": "ipc",
    "TC-NS-004": "uts",
    "TC-NS-005": "mount",
    "TC-NS-006": "cgroup",
}
CASES = [
    pytest.param(rid, marks=pytest.mark.requirement(rid), id=kind)
    for rid, kind in NAMESPACES.items()
]


@pytest.mark.parametrize("requirement", CASES)
def test_namespace_is_configured_new(requirement: str, thunder_static: Verify) -> None:
    thunder_static(requirement)


@pytest.mark.parametrize("requirement", CASES)
def test_host_namespace_differs_from_init(requirement: str, thunder_runtime: Verify) -> None:
    thunder_runtime(requirement)
