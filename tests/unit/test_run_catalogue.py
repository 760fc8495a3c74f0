"""One catalogue per run: the one --thunder-catalogue names is the one every layer judges by."""

from __future__ import annotations

import hashlib
import json

import pytest

pytest_plugins = ["pytester"]

SMALL = """
[areas]
NS = "Namespaces"

[[requirement]]
id = "TC-NS-001"
area = "NS"
level = "MUST"
statement = "The container gets a new pid namespace."
source = "runc default"
checks = "static+runtime"
subject = "pid"

[[requirement]]
id = "TC-NS-002"
area = "NS"
level = "SHOULD"
statement = "The container gets a new ipc namespace."
source = "runc default"
checks = "static+runtime"
subject = "ipc"
"""


pytestmark = pytest.mark.usefixtures("outside_xdist")


def test_the_suites_cases_come_from_the_runs_catalogue(pytester: pytest.Pytester) -> None:
    path = pytester.path / "small.toml"
    path.write_text(SMALL)
    result = pytester.runpytest(
        "--pyargs",
        "pytest_thunder_container.suites.test_namespaces",
        "--collect-only",
        "-q",
        f"--thunder-catalogue={path}",
    )
    ids = sorted(line.split("::")[-1] for line in result.outlines if "::" in line)
    assert ids == [
        "test_host_namespace_differs_from_init[ipc]",
        "test_host_namespace_differs_from_init[pid]",
        "test_namespace_is_configured_new[ipc]",
        "test_namespace_is_configured_new[pid]",
    ]


def test_the_fixture_and_the_report_hold_the_catalogue_the_run_loaded(
    pytester: pytest.Pytester,
) -> None:
    path = pytester.path / "small.toml"
    path.write_text(SMALL)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("TC-NS-001")
        def test_catalogue(thunder_catalogue):
            assert [r.id for r in thunder_catalogue] == ["TC-NS-001", "TC-NS-002"]
            assert thunder_catalogue.subjects("NS") == ("pid", "ipc")
        """
    )
    result = pytester.runpytest(
        f"--thunder-catalogue={path}", "--thunder-results=out", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "out" / "thunder-report.json").read_text())
    assert report["catalogue"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [r["id"] for r in report["requirements"]] == ["TC-NS-001", "TC-NS-002"]
