"""The requirement marker: IDs checked against the catalogue, copied to the tests, listed."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

import pytest

from pytest_thunder_container.conformance.catalogue import Catalogue

REQUIREMENT_PROPERTY = "requirement"
CATALOGUE = pytest.StashKey[Catalogue]()  # the run's catalogue, set by hooks.pytest_configure


def requirement_cases(config: pytest.Config, area: str) -> list[Any]:
    """One parameter per requirement of an area with a subject, marked with its ID: a suite's
    masked paths or namespaces come from the run's catalogue, never from a list of its own."""
    return [
        pytest.param(r.id, marks=pytest.mark.requirement(r.id), id=r.subject)
        for r in config.stash[CATALOGUE].in_area(area)
        if r.subject
    ]


def requirement_ids(item: pytest.Item) -> tuple[str, ...]:
    """The IDs of every requirement marker on a test (function, class or module), in order."""
    ids = (arg for marker in item.iter_markers("requirement") for arg in marker.args)
    return tuple(dict.fromkeys(arg for arg in ids if isinstance(arg, str)))


class RequirementMarks:
    """Collection: unknown IDs fail it, known ones go to user_properties; --thunder-requirements."""

    def __init__(self, config: pytest.Config, catalogue: Catalogue, *, listing: bool) -> None:
        self._config = config
        self._catalogue = catalogue
        self._listing = listing  # --thunder-requirements

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if report.passed:
            problems = [
                problem
                for node in report.result
                if isinstance(node, pytest.Item)
                for problem in self._id_problems(node)
            ]
            if problems:
                # A wrong ID is an error in the suite: fail its collection, like a syntax error.
                report.outcome = "failed"
                report.longrepr = "\n".join(problems)
                report.result = []
        return report

    def _id_problems(self, item: pytest.Item) -> Iterator[str]:
        known = [requirement.id for requirement in self._catalogue]
        for marker in item.iter_markers("requirement"):
            if not marker.args:
                yield (
                    f"{item.nodeid}: @pytest.mark.requirement() names no ID "
                    "(fix: e.g. @pytest.mark.requirement('TC-NS-001'))"
                )
            for requirement_id in marker.args:
                if not isinstance(requirement_id, str):
                    yield f"{item.nodeid}: requirement ID {requirement_id!r} is not a string"
                elif requirement_id not in self._catalogue:
                    close = difflib.get_close_matches(requirement_id, known, n=3, cutoff=0.6)
                    hint = f"closest: {', '.join(close)}" if close else "no similar ID"
                    yield (
                        f"{item.nodeid}: unknown requirement ID {requirement_id!r} ({hint}; "
                        f"catalogue: {self._catalogue.origin})"
                    )

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # user_properties travel with every report: to the xdist controller and into JUnit XML.
        for item in items:
            for requirement_id in requirement_ids(item):
                item.user_properties.append((REQUIREMENT_PROPERTY, requirement_id))

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: pytest.Session) -> bool | None:
        if not self._listing:
            return None
        # Collect here even under xdist, whose controller never collects; no test will run.
        session.perform_collect()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool | None:
        if not self._listing:
            return None
        if session.testsfailed:
            # pytest's own loop would stop here too; under xdist its loop would run the tests.
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
        reporter = self._config.pluginmanager.get_plugin("terminalreporter")
        uncovered = print_catalogue(self._catalogue, session.items, reporter.write_line)
        if uncovered:
            reporter.write_line(
                f"thunder: {len(uncovered)} catalogue requirement(s) have no test: "
                + ", ".join(uncovered),
                red=True,
                bold=True,
            )
            raise session.Failed(f"{len(uncovered)} requirement(s) without a test")
        reporter.write_line(
            f"thunder: every one of the {len(self._catalogue)} catalogue requirements has a test",
            green=True,
        )
        return True


def print_catalogue(
    catalogue: Catalogue, items: Sequence[pytest.Item], write_line: Callable[..., None]
) -> list[str]:
    """The catalogue by area with the tests covering each ID; returns the IDs without a test."""
    covering: dict[str, list[str]] = {}
    for item in items:
        for requirement_id in requirement_ids(item):
            covering.setdefault(requirement_id, []).append(item.nodeid)
    write_line(f"Requirement catalogue: {catalogue.origin} ({len(catalogue)} requirements)")
    uncovered = []
    indent = " " * 22
    for area in catalogue.areas():
        write_line("")
        write_line(f"{area}  {catalogue.title(area)}", bold=True)
        for requirement in catalogue.in_area(area):
            write_line(f"  {requirement.id:<13} {requirement.level:<6} {requirement.statement}")
            write_line(f"{indent} source: {requirement.source}")
            tests = covering.get(requirement.id, [])
            if not tests:
                uncovered.append(requirement.id)
                write_line(f"{indent} tests:  NONE", red=True)
            for index, nodeid in enumerate(tests):
                write_line(f"{indent} {'tests: ' if index == 0 else '       '} {nodeid}")
    write_line("")
    return uncovered
