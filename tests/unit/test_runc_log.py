"""runc's log and state after a failed activation: which call, how long, against which limit."""

from __future__ import annotations

from datetime import UTC, datetime

from helpers.scripted_shell import ScriptedShell

from pytest_thunder_container.conformance.runc_log import (
    R4_4_3_LIMIT_MS,
    R5_1_LIMIT_MS,
    created_time,
    log_path,
    parse_runc_log,
    runc_call_limit_ms,
    runc_timings,
)

# Lines in runc 1.1's two log formats: logrus text (its default) and JSON.
TEXT_LINE = (
    'time="2024-05-02T09:14:07.512345678Z" level=error msg="runc create failed: unable to '
    'start container process: error during container init: \\"signal: killed\\""'
)
JSON_LINE = (
    '{"level":"error","msg":"runc exec failed: container does not exist",'
    '"time":"2024-05-02T11:14:09.1+02:00"}'
)
STATE = (
    '{"ociVersion":"1.0.2","id":"OCDM","pid":812,"status":"created",'
    '"bundle":"/usr/share/Thunder/OCDM/Container","created":"2024-05-02T09:14:07.3051234Z"}'
)
STARTED = datetime(2024, 5, 2, 9, 14, 4, tzinfo=UTC)


def test_text_and_json_lines_are_read_with_their_time_and_call() -> None:
    entries = parse_runc_log("\n".join([TEXT_LINE, "garbage {", JSON_LINE, ""]))
    assert [(e.level, e.call) for e in entries] == [("error", "create"), ("error", "exec")]
    assert entries[0].time == datetime(2024, 5, 2, 9, 14, 7, 512345, tzinfo=UTC)
    assert entries[1].time == datetime(2024, 5, 2, 9, 14, 9, 100000, tzinfo=UTC)
    assert 'signal: killed"' in entries[0].message


def test_the_limit_follows_thunders_version() -> None:
    assert runc_call_limit_ms("5.3.0") == R5_1_LIMIT_MS == 2000
    assert runc_call_limit_ms("R5.1.2") == 2000
    assert runc_call_limit_ms("5.0.0") == R4_4_3_LIMIT_MS == 5000
    assert runc_call_limit_ms("4.4.3") == 5000
    assert runc_call_limit_ms("4.4.2") is None
    assert runc_call_limit_ms(None) is None


def test_a_create_that_finished_past_the_limit_is_named_with_its_time() -> None:
    shell = ScriptedShell({log_path("/tmp/", "OCDM"): TEXT_LINE, "/usr/bin/runc state OCDM": STATE})
    assert created_time(STATE) == datetime(2024, 5, 2, 9, 14, 7, 305123, tzinfo=UTC)
    timings = runc_timings(shell, "OCDM", started=STARTED, version="5.3.0")
    found = timings.findings()
    assert found[0] == (
        "runc create finished 3.3 s after the activation began (Thunder's preparation before "
        "the call included), more than Thunder's limit of 2000 ms per runc call"
    )
    assert found[1].startswith("runc create logged error at +3.5 s: runc create failed")
    assert any("/tmp/OCDM/OCDM/runc.container.log" in c for c in shell.commands)


def test_lines_and_containers_from_before_the_activation_are_ignored() -> None:
    shell = ScriptedShell({"runc.container.log": TEXT_LINE, "state": STATE})
    later = datetime(2024, 5, 2, 10, 0, 0, tzinfo=UTC)
    assert runc_timings(shell, "OCDM", started=later, version="4.4.7").findings() == []


def test_a_fast_create_is_reported_within_the_limit() -> None:
    shell = ScriptedShell({"state": STATE})
    found = runc_timings(shell, "OCDM", started=STARTED, version="4.4.7").findings()
    assert found == [
        "runc create finished 3.3 s after the activation began "
        "(Thunder's limit of 5000 ms per runc call)"
    ]
