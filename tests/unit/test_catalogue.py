"""The requirement catalogue: complete, well-formed, and in step with the static lint rules."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

import pytest_thunder_container
from pytest_thunder_container.conformance.catalogue import (
    CatalogueError,
    Requirement,
    load_catalogue,
    parse_catalogue,
)
from pytest_thunder_container.conformance.static_rules import RULES, static_rules


def _ids(area: str, count: int) -> list[str]:
    return [f"TC-{area}-{number:03d}" for number in range(1, count + 1)]


EXPECTED_IDS = [
    *_ids("CFG", 5),
    *_ids("COM", 5),
    *_ids("ENV", 4),
    *_ids("NS", 6),
    *_ids("MASK", 10),
    *_ids("RO", 5),
    *_ids("CAP", 3),
    *_ids("PROC", 5),
    "TC-ROOT-001",
    *_ids("MNT", 8),
    *_ids("DEV", 2),
    "TC-HOST-001",
    *_ids("LIFE", 5),
    *_ids("PAR", 3),
    *_ids("PERF", 2),
    "TC-CONT-001",
    "TC-STRESS-001",
]
SHOULD_IDS = {
    "TC-CFG-004",
    "TC-COM-005",
    "TC-LIFE-005",
    "TC-ENV-002",
    "TC-ENV-003",
    "TC-ENV-004",
    "TC-NS-006",
    "TC-CAP-003",
    "TC-PROC-003",
    "TC-PROC-005",
    "TC-MNT-006",
    "TC-MNT-008",
    "TC-DEV-002",
    "TC-PERF-002",
    "TC-CONT-001",
    "TC-STRESS-001",
}
RUNTIME_ONLY_IDS = {
    "TC-CFG-005",
    *_ids("COM", 5)[1:],
    *_ids("LIFE", 5),
    *_ids("PAR", 3),
    *_ids("PERF", 2),
    "TC-CONT-001",
    "TC-STRESS-001",
}

VALID_ENTRY = """
[areas]
CFG = "Bundle"

[[requirement]]
id = "TC-CFG-001"
area = "CFG"
level = "MUST"
statement = "config.json is valid."
source = "OCI runtime spec"
checks = "static"
"""


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_the_catalogue_holds_exactly_the_agreed_ids_in_order(catalogue) -> None:
    assert [requirement.id for requirement in catalogue] == EXPECTED_IDS


def test_levels_are_as_agreed(catalogue) -> None:
    assert {r.id for r in catalogue if r.level == "SHOULD"} == SHOULD_IDS
    assert all(r.level == "MUST" for r in catalogue if r.id not in SHOULD_IDS)


def test_runtime_only_requirements_are_marked_so(catalogue) -> None:
    assert {r.id for r in catalogue if not r.is_static} == RUNTIME_ONLY_IDS
    assert catalogue.get("TC-DEV-001").checks == "static"
    assert catalogue.get("TC-NS-001").checks == "static+runtime"


def test_ids_are_unique_in_the_toml_itself() -> None:
    text = (
        resources.files("pytest_thunder_container.conformance")
        .joinpath("requirements.toml")
        .read_text()
    )
    ids = [entry["id"] for entry in tomllib.loads(text)["requirement"]]
    assert len(ids) == len(set(ids))


def test_every_static_rule_has_a_static_requirement(catalogue) -> None:
    for rule_id in RULES:
        assert rule_id in catalogue, rule_id
        assert catalogue.get(rule_id).is_static, rule_id


def test_every_static_requirement_has_a_rule(catalogue) -> None:
    missing = [r.id for r in catalogue if r.is_static and r.id not in static_rules(catalogue)]
    assert missing == []


@pytest.mark.parametrize("area", ["NS", "MASK", "RO"])
def test_every_requirement_of_a_listed_family_names_its_subject(catalogue, area) -> None:
    subjects = catalogue.subjects(area)
    assert len(subjects) == len(catalogue.in_area(area)) == len(set(subjects))


def test_a_masked_path_is_written_in_the_catalogue_only(catalogue) -> None:
    package = Path(pytest_thunder_container.__file__).parent
    sources = [*package.rglob("*.py"), *Path(__file__).parents[2].joinpath("tests").rglob("*.py")]
    for path in catalogue.subjects("MASK"):
        holders = [str(f) for f in sources if f'"{path}"' in f.read_text(encoding="utf-8")]
        assert holders == [], f"{path} is also written in {holders}"


def test_every_requirement_is_complete(catalogue) -> None:
    for requirement in catalogue:
        assert requirement.statement.strip() and "\n" not in requirement.statement
        assert requirement.source.strip()
        assert set(requirement.dialects) <= {"R4.4", "R5"}


def test_device_cgroup_says_why_it_is_static_only(catalogue) -> None:
    assert "cgroup v2" in catalogue.get("TC-DEV-001").note


def test_lookup_and_areas(catalogue) -> None:
    requirement = catalogue.get("TC-PROC-001")
    assert isinstance(requirement, Requirement)
    assert (requirement.area, requirement.level) == ("PROC", "MUST")
    assert catalogue.areas()[:3] == ("CFG", "COM", "ENV")
    assert catalogue.areas()[-3:] == ("PERF", "CONT", "STRESS")
    assert [r.id for r in catalogue.in_area("RO")] == _ids("RO", 5)
    assert catalogue.title("MASK") == "Masked paths"
    assert len(catalogue) == len(EXPECTED_IDS)


def test_unknown_id_and_area_are_named(catalogue) -> None:
    with pytest.raises(CatalogueError, match="TC-XYZ-001"):
        catalogue.get("TC-XYZ-001")
    with pytest.raises(CatalogueError, match="XYZ"):
        catalogue.title("XYZ")


def test_dialects_default_to_both() -> None:
    requirement = parse_catalogue(VALID_ENTRY).get("TC-CFG-001")
    assert requirement.dialects == ("R4.4", "R5")
    assert requirement.applies_to("R4.4") and requirement.applies_to(None)
    limited = parse_catalogue(VALID_ENTRY + 'dialects = ["R5"]\n').get("TC-CFG-001")
    assert limited.applies_to("R5") and not limited.applies_to("R4.4")


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda text: text.replace('level = "MUST"', 'level = "MAY"'), "level must be one of"),
        (lambda text: text.replace('checks = "static"', 'checks = "both"'), "checks must be one"),
        (lambda text: text.replace('id = "TC-CFG-001"', 'id = "CFG-1"'), "TC-<AREA>-NNN"),
        (lambda text: text.replace('area = "CFG"', 'area = "COM"'), "does not match the ID"),
        (lambda text: text.replace('CFG = "Bundle"', 'COM = "Com"'), "not declared in"),
        (lambda text: text.replace('source = "OCI runtime spec"\n', ""), "'source'"),
        (lambda text: text.replace('statement = "config.json is valid."', 'statement = ""'), "'st"),
        (lambda text: text + 'colour = "red"\n', "unknown field"),
        (lambda text: text + 'dialects = ["R3"]\n', "dialects must be"),
        (lambda text: text + "\n" + text[text.index("[[requirement]]") :], "appears twice"),
        (lambda text: text.replace("[[requirement]]", "[[requirement"), "not valid TOML"),
        (lambda text: text[: text.index("[[requirement]]")], "no [[requirement]]"),
        (lambda text: text.replace("[areas]\n", "").replace('CFG = "Bundle"\n', ""), "[areas]"),
        (
            lambda text: text.replace('"config.json is valid."', '"""two\nlines"""'),
            "one line",
        ),
    ],
)
def test_a_malformed_catalogue_is_refused_with_a_clear_message(change, complaint) -> None:
    with pytest.raises(CatalogueError) as raised:
        parse_catalogue(change(VALID_ENTRY), origin="broken.toml")
    assert complaint in str(raised.value)
    assert str(raised.value).startswith("broken.toml")


def test_an_error_names_the_entry_at_fault() -> None:
    text = VALID_ENTRY.replace('level = "MUST"', 'level = "must"')
    with pytest.raises(CatalogueError, match=r"requirement #1 \(TC-CFG-001\)"):
        parse_catalogue(text)


def test_a_missing_catalogue_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"nowhere\.toml"):
        load_catalogue(tmp_path / "nowhere.toml")


def test_a_catalogue_file_can_be_loaded_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "requirements.toml"
    path.write_text(VALID_ENTRY)
    assert [r.id for r in load_catalogue(path)] == ["TC-CFG-001"]
