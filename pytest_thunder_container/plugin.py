"""pytest glue: options, markers and fixtures (no logic of its own)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("thunder", "Thunder plugins in runc containers")
