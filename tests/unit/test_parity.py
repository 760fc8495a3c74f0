"""Parity: scenario files and the structural comparison of two modes' answers.

Whole runs against real Thunder are end to end (tests/e2e/test_parity_divergent.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.parity.diff import compare, side_by_side, structural_diff
from pytest_thunder_container.parity.scenario import (
    VOLATILE,
    Exchange,
    ParityTranscript,
    Problem,
    ScenarioError,
    default_scenarios,
    load_scenario,
    masked,
    scenario_for,
    values_at,
)

GOOD = 'callsign = "Demo"\n[[call]]\nmethod = "Demo.1.list"\nsave = "list"\n'


def write(tmp_path: Path, text: str, name: str = "scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_package_scenario_covers_ocdm_as_documented() -> None:
    scenario = default_scenarios()["OCDM"]
    methods = [call.method for call in scenario.calls]
    assert methods == [
        "OCDM.1.drms",
        "OCDM.1.keysystems@{drm}",
        "OCDM.1.keysystems@NoSuchDrm",
        "OCDM.1.systems",
        "OCDM.1.designators@{drm}",
    ]
    assert scenario.calls[1].foreach is not None and scenario.calls[1].foreach.saved == "drms"
    assert scenario.calls[4].foreach == scenario.calls[1].foreach
    # Real OCDM answers an unknown DRM with [] (OCDMJsonRpc.cpp, FrameworkRPC.cpp), R4.4 and R5.
    assert [call.expect for call in scenario.calls] == [
        "non-empty",
        "non-empty",
        "empty",
        "non-empty",
        "non-empty",
    ]
    # systems and designators are JOpenCDM (IOCDM.h), from R5.2.0 on.
    assert [call.since for call in scenario.calls] == [None, None, None, "5.2.0", "5.2.0"]
    assert not any(call.dialects for call in scenario.calls)
    assert scenario.cycles == 5
    # Links are compared by their number, by the harness: nothing is volatile in OCDM's answers.
    assert scenario.volatile == ()


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("cycles = 2\n", "'callsign' must be"),
        ("colour = 'red'\n" + GOOD, "unknown key(s) ['colour']; known"),
        (GOOD.replace('save = "list"', 'expect = "maybe"'), "expect = 'maybe'"),
        (
            GOOD + '[[call]]\nmethod = "Demo.1.x@{n}"\nforeach = {saved = "nope", path = "*", '
            'as = "n"}\n',
            "loops over 'nope', which no earlier call saves",
        ),
        (
            GOOD + '[[call]]\nmethod = "Demo.1.x"\nforeach = {saved = "list", path = "*", '
            'as = "n"}\n',
            "must use {n}",
        ),
        (GOOD + '[[volatile]]\nrequest = "Demo.1.list"\nfield = "*.id"\n', "a reason"),
        (
            GOOD + '[[volatile]]\nrequest = "x"\nfield = "y"\nreason = "z"\nwhen = "("\n',
            "is not a regex",
        ),
        ("cycles = -1\n" + GOOD, "'cycles' must be a whole number"),
        ("callsign = \n", "not valid TOML"),
        (GOOD + 'since = "R5"\n', "since = 'R5'; write a Thunder version, e.g. \"5.2.0\""),
        (GOOD.replace('save = "list"', 'expect = "nonempty"'), "expect = 'nonempty'"),
    ],
)
def test_a_bad_scenario_file_is_refused_naming_the_file(
    tmp_path: Path, text: str, said: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(path) in str(raised.value)
    assert said in str(raised.value)


def test_a_missing_scenario_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"can't read it.*--thunder-scenario"):
        load_scenario(tmp_path / "absent.toml")


def test_a_user_scenario_replaces_the_package_one_for_its_callsign(tmp_path: Path) -> None:
    mine = write(tmp_path, 'callsign = "OCDM"\ncycles = 1\n')
    demo = write(tmp_path, GOOD, "demo.toml")
    assert scenario_for("OCDM", [mine, demo]).source == str(mine)  # type: ignore[union-attr]
    assert scenario_for("Demo", [mine, demo]).calls[0].method == "Demo.1.list"  # type: ignore
    assert scenario_for("OCDM", []).source.endswith("ocdm.toml")  # type: ignore[union-attr]
    assert scenario_for("Nobody", [demo]) is None
    with pytest.raises(ScenarioError, match="both for OCDM"):
        scenario_for("OCDM", [mine, write(tmp_path, 'callsign = "OCDM"\n', "again.toml")])


VOLATILE_SESSIONS = """
[[volatile]]
request = "Demo.1.sessions"
field = "*.id"
reason = "a new id per session"

[[volatile]]
request = "Demo.1.sessions"
field = "*.peer"
when = '^"[^"/]*:[0-9]+"$'
reason = "a TCP peer gets a new client port on every start; a Unix socket path is compared"
"""


def test_only_the_documented_fields_are_masked(tmp_path: Path) -> None:
    sessions = {
        "result": [
            {"id": 7, "peer": "10.0.2.2:4711", "state": "open"},
            {"id": 9, "peer": "/tmp/demo", "state": "open"},
        ]
    }
    rules = load_scenario(write(tmp_path, GOOD + VOLATILE_SESSIONS)).volatile
    out = masked(sessions, "Demo.1.sessions", rules)
    assert [entry["id"] for entry in out["result"]] == [VOLATILE, VOLATILE]
    # An address:port is volatile; a socket path is compared.
    assert [entry["peer"] for entry in out["result"]] == [VOLATILE, "/tmp/demo"]
    assert out["result"][0]["state"] == "open"
    assert masked(sessions, "Demo.1.list", rules) == sessions
    assert sessions["result"][0]["id"] == 7  # the recorded response is left as it came


def test_values_at_walks_lists_and_keys() -> None:
    drms = [{"name": "PlayReady"}, {"name": "Widevine"}, {"other": 1}]
    assert [v for _, v in values_at(drms, "*.name")] == ["PlayReady", "Widevine"]
    assert list(values_at(drms, "1.name")) == [("[1].name", "Widevine")]
    assert list(values_at(None, "*.name")) == []


def test_structural_diff_names_every_differing_place() -> None:
    a = {"result": [{"name": "PlayReady", "n": 1}], "x": 1}
    b = {"result": [{"name": "PlayReady", "n": 1.0}, {"name": "Extra"}], "y": "1"}
    assert structural_diff(a, b) == [
        ("result[1]", "<absent>", '{"name": "Extra"}'),
        ("x", "1", "<absent>"),
        ("y", "<absent>", '"1"'),
    ]
    assert structural_diff({"v": 1}, {"v": "1"}) == [("v", "1", '"1"')]
    assert structural_diff({"v": True}, {"v": 1}) == [("v", "true", "1")]


def exchange(section: str, request: str, response: dict[str, Any]) -> Exchange:
    return Exchange(section, request, response, response)


def transcript(
    mode: str, drms: dict[str, Any], problems: tuple[Problem, ...] = ()
) -> ParityTranscript:
    return ParityTranscript(
        mode,
        "OCDM",
        "R5",
        (
            exchange("controller", "Controller.1.activate", {"result": None}),
            exchange("methods", "OCDM.1.drms", drms),
            exchange("cycles", "cycle 1: left behind", {"result": {"containers": [], "hosts": []}}),
        ),
        problems,
    )


def test_a_difference_fails_only_the_requirement_it_belongs_to() -> None:
    scenario = default_scenarios()["OCDM"]
    error = {"error": {"code": -31025, "message": "OCDM implementation unreachable"}}
    result = compare(
        scenario,
        transcript("Local", {"result": [{"name": "PlayReady"}]}),
        transcript("Container", error),
    )
    assert not result.verdict("TC-PAR-001")[0]
    assert "OCDM.1.drms" in result.verdict("TC-PAR-001")[1]
    assert result.verdict("TC-PAR-002")[0] and result.verdict("TC-PAR-003")[0]
    text = side_by_side(result, "methods")
    assert "!! OCDM.1.drms" in text
    assert "-31025" in text and "PlayReady" in text


def test_a_problem_in_both_modes_fails_although_the_modes_agree() -> None:
    left = (Problem("cycles", "cycle 1: left behind", "runc still lists OCDM"),)
    same = {"result": []}
    result = compare(
        default_scenarios()["OCDM"],
        transcript("Local", same, left),
        transcript("Container", same, left),
    )
    assert not result.differences
    passed, message = result.verdict("TC-PAR-003")
    assert not passed and "runc still lists OCDM" in message
