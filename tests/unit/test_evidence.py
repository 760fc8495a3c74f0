"""thunder_evidence: files kept for every test, recorded in user_properties, mirrored to allure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.plugin.evidence import (
    Evidence,
    evidence_directory,
    parse_evidence_property,
)
from pytest_thunder_container.report.certification import EvidenceFile

pytest_plugins = ["pytester"]


def make_evidence(
    tmp_path: Path, nodeid: str = "suites/test_ns.py::test_pid[rpi3]"
) -> tuple[Evidence, list[tuple[str, object]]]:
    properties: list[tuple[str, object]] = []
    evidence = Evidence(
        nodeid=nodeid, results=tmp_path, user_properties=properties, allure_active=False
    )
    return evidence, properties


def test_directory_names_are_safe_readable_and_distinct() -> None:
    name = evidence_directory("suites/test_ns.py::test_pid[rpi3 / ../x]")
    assert name.startswith("suites_test_ns.py_test_pid_rpi3_.._x-")
    assert Path(name).name == name  # one path component: it can't leave evidence/
    assert evidence_directory("t.py::test[a b]") != evidence_directory("t.py::test[a_b]")
    assert len(evidence_directory("t.py::test_" + "x" * 500)) < 120


def test_attach_writes_text_and_bytes_and_records_them(tmp_path: Path) -> None:
    evidence, properties = make_evidence(tmp_path)
    text = evidence.attach("console transcript", "héllo\n")
    raw = evidence.attach("config.json", b'{"a": 1}', kind="application/json", extension="json")
    assert text.read_text(encoding="utf-8") == "héllo\n"
    assert raw.read_bytes() == b'{"a": 1}'
    assert (text.name, raw.name) == ("console_transcript.txt", "config.json")
    assert (
        text.parent
        == evidence.directory
        == tmp_path / "evidence" / evidence_directory("suites/test_ns.py::test_pid[rpi3]")
    )
    recorded = [parse_evidence_property(value) for _, value in properties]
    folder = f"evidence/{evidence.directory.name}"
    assert recorded == [
        EvidenceFile("console transcript", f"{folder}/console_transcript.txt", "text/plain"),
        EvidenceFile("config.json", f"{folder}/config.json", "application/json"),
    ]
    assert {name for name, _ in properties} == {"evidence"}


def test_the_same_name_twice_keeps_both(tmp_path: Path) -> None:
    evidence, _ = make_evidence(tmp_path)
    first = evidence.attach("console", "one")
    second = evidence.attach("console", "two")
    assert (first.name, second.name) == ("console.txt", "console-2.txt")
    assert (first.read_text(), second.read_text()) == ("one", "two")


def test_attach_file_keeps_a_copy_as_it_was(tmp_path: Path) -> None:
    source = tmp_path / "transcript.log"
    source.write_text("booted\n")
    evidence, properties = make_evidence(tmp_path / "results")
    copy = evidence.attach_file("console", source)
    source.write_text("booted\nand more later\n")
    assert copy.name == "console.log"
    assert copy.read_text() == "booted\n"
    assert parse_evidence_property(properties[0][1]).path.endswith("/console.log")


def test_attach_file_of_a_missing_file_says_which(tmp_path: Path) -> None:
    evidence, properties = make_evidence(tmp_path)
    with pytest.raises(ThunderContainerError, match=r"evidence 'console': can't copy .*nope"):
        evidence.attach_file("console", tmp_path / "nope.log")
    assert properties == []
    assert list(evidence.directory.iterdir()) == []


def test_parse_evidence_property_rejects_what_is_not_evidence() -> None:
    assert parse_evidence_property("not json") is None
    assert parse_evidence_property(json.dumps({"name": "x"})) is None
    assert parse_evidence_property({"name": "a", "path": "b", "kind": "c"}) == EvidenceFile(
        "a", "b", "c"
    )


SUITE = """
import pytest

@pytest.mark.requirement("TC-NS-001")
def test_passes(thunder_evidence):
    with thunder_evidence.step("check the pid namespace"):
        thunder_evidence.attach("console", "pid ns differs")

@pytest.mark.requirement("TC-NS-002")
def test_fails(thunder_evidence):
    thunder_evidence.attach("console", "net ns shared")
    assert False, "net namespace is shared"
"""


def test_evidence_is_kept_for_passed_and_failed_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--thunder-results=out")
    result.assert_outcomes(passed=1, failed=1)
    out = pytester.path / "out"
    for nodeid, text in (
        ("test_suite.py::test_passes", "pid ns differs"),
        ("test_suite.py::test_fails", "net ns shared"),
    ):
        assert (out / "evidence" / evidence_directory(nodeid) / "console.txt").read_text() == text
    report = json.loads((out / "thunder-report.json").read_text())
    tests = {t["nodeid"]: t for r in report["requirements"] for t in r["tests"]}
    for nodeid in ("test_suite.py::test_passes", "test_suite.py::test_fails"):
        (entry,) = tests[nodeid]["evidence"]
        assert (out / entry["path"]).is_file()


def test_evidence_and_steps_go_to_allure_when_it_is_on(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("--thunder-results=out", "--alluredir=allure")
    result.assert_outcomes(passed=1, failed=1)
    allure = pytester.path / "allure"
    results = {
        r["name"]: r for r in (json.loads(p.read_text()) for p in allure.glob("*-result.json"))
    }
    passed, failed = results["test_passes"], results["test_fails"]
    (step,) = passed["steps"]
    assert step["name"] == "check the pid namespace"
    (attachment,) = step["attachments"]
    assert attachment["name"] == "console" and attachment["type"] == "text/plain"
    assert (allure / attachment["source"]).read_text() == "pid ns differs"
    (attachment,) = failed["attachments"]
    assert (allure / attachment["source"]).read_text() == "net ns shared"


def test_without_alluredir_no_allure_files_appear(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--thunder-results=out").assert_outcomes(passed=1, failed=1)
    written = {p.name for p in pytester.path.rglob("*") if p.is_file()}
    assert not {"environment.properties", "categories.json"} & written
    assert not [name for name in written if name.endswith(("-result.json", "-attachment.txt"))]
    assert "console.txt" in written
