"""NS: the plugin host runs in namespaces of its own."""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify, requirement_cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # One case per NS requirement: the namespaces are listed once, in the run's catalogue.
    metafunc.parametrize("requirement", requirement_cases(metafunc.config, "NS"))


def test_namespace_is_configured_new(requirement: str, thunder_static: Verify) -> None:
    thunder_static(requirement)


def test_host_namespace_differs_from_init(requirement: str, thunder_runtime: Verify) -> None:
    thunder_runtime(requirement)
