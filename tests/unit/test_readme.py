"""The README stays true: every requirement of the catalogue is there with its level and text."""

from __future__ import annotations

from pathlib import Path

from pytest_thunder_container.conformance.catalogue import load_catalogue

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_requirement_is_in_the_readme_as_in_the_catalogue() -> None:
    text = README.read_text()
    for requirement in load_catalogue():
        statement = requirement.statement.replace("|", "\\|")
        row = f"| {requirement.id} | {requirement.level} | {requirement.checks} | {statement} |"
        assert row in text, f"README's row for {requirement.id} is missing or out of date"


def test_every_option_of_the_plugin_is_in_the_readme(pytestconfig) -> None:  # type: ignore[no-untyped-def]
    text = README.read_text()
    group = pytestconfig._parser.getgroup("thunder")
    for option in group.options:
        for name in option.names():
            if name.startswith("--thunder-") and name != "--thunder-catalogue":
                assert f"`{name}" in text, f"{name} is not documented in the README"
