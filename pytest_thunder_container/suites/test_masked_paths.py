"""MASK: sensitive kernel files are masked inside the container."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify, requirement_cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # One case per MASK requirement: the masked paths are listed once, in the run's catalogue.
    metafunc.parametrize("requirement", requirement_cases(metafunc.config, "MASK"))


def test_path_is_listed_in_masked_paths(requirement: str, thunder_static: Verify) -> None:
    thunder_static(requirement)


def test_path_reads_nothing_inside(requirement: str, thunder_runtime: Verify) -> None:
    thunder_runtime(requirement)
