"""RO: kernel interfaces that must not be written from the container are read-only there."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify, requirement_cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # One case per RO requirement: the read-only paths are listed once, in the run's catalogue.
    metafunc.parametrize("requirement", requirement_cases(metafunc.config, "RO"))


def test_path_is_listed_in_readonly_paths(requirement: str, thunder_static: Verify) -> None:
    thunder_static(requirement)


def test_path_is_a_readonly_mount_inside(requirement: str, thunder_runtime: Verify) -> None:
    thunder_runtime(requirement)
