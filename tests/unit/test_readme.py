"""The README stays true: every requirement of the catalogue is there with its level and text."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_thunder_container.conformance.catalogue import load_catalogue
from pytest_thunder_container.plugin import hooks

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_requirement_is_in_the_readme_as_in_the_catalogue() -> None:
    text = README.read_text()
    for requirement in load_catalogue():
        statement = requirement.statement.replace("|", "\\|")
        row = f"| {requirement.id} | {requirement.level} | {requirement.checks} | {statement} |"
        assert row in text, f"README's row for {requirement.id} is missing or out of date"


def test_every_option_of_the_plugin_is_in_the_readme() -> None:
    # A parser of our own: the check must not depend on the plugin being loaded in this run.
    parser = pytest.Parser()
    hooks.pytest_addoption(parser)
    names = [
        name
        for option in parser.getgroup("thunder").options
        for name in option.names()
        if name.startswith("--thunder-")
    ]
    assert len(names) > 20, f"the thunder option group has only {names}"
    text = README.read_text()
    for name in names:
        if name != "--thunder-catalogue":
            assert f"`{name}" in text, f"{name} is not documented in the README"
