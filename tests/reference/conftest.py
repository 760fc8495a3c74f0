"""Fixtures for the reference Thunder's host-side tests (see reference_daemon.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reference_daemon import PLUGIN_HOST_PYTHON, ReferenceFactory


@pytest.fixture
def reference() -> Iterator[ReferenceFactory]:
    if not PLUGIN_HOST_PYTHON.exists():
        pytest.skip("the plugin host scripts need /usr/bin/python3 (their shebang)")
    factory = ReferenceFactory()
    yield factory
    factory.cleanup()


@pytest.fixture(params=["R5", "R4.4"])
def api(request: pytest.FixtureRequest) -> str:
    return str(request.param)
