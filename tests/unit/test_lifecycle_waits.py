"""Lifecycle judgements that wait for real Thunder: kill times, Activation, a dead daemon."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.scripted_shell import ScriptedShell

from pytest_thunder_container.conformance.failed_activation import diagnose_failed_activation
from pytest_thunder_container.conformance.leftovers import (
    KillTimes,
    parse_kill_times,
    read_kill_times,
    wait_for_no_leftovers,
)
from pytest_thunder_container.errors import DeployError
from pytest_thunder_container.plugin.thunder_watch import ThunderWatch
from pytest_thunder_container.thunder.client import ThunderError, ThunderUnreachable
from pytest_thunder_container.thunder.deploy import BundleSpec, ContainerDeployment
from pytest_thunder_container.thunder.health import THUNDER_LOG, ThunderDown, thunder_down

HOST_LINE = "812\tOCDM\t/usr/bin/ThunderPlugin\x1f-C\x1fOCDM\x1f-r\x1f/tmp/communicator\n"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_kill_times_come_from_thunders_config_or_its_defaults() -> None:
    given = parse_kill_times('{"softkillcheckwaittime": 3, "hardkillcheckwaittime": 2}', "/c")
    assert (given.soft, given.hard, given.source) == (3, 2, "/c")
    assert parse_kill_times('{"port": 80}', "/c") == KillTimes(10, 4, "defaults: neither key in /c")
    assert parse_kill_times("not json", "/c").soft == 10
    r4 = ScriptedShell({"/etc/WPEFramework/config.json": '{"softkillcheckwaittime": 1}'})
    assert read_kill_times(r4) == KillTimes(1, 4, "/etc/WPEFramework/config.json")
    assert read_kill_times(ScriptedShell()).source.startswith("defaults: no /etc/Thunder/")


def test_the_judgement_polls_until_the_container_is_gone() -> None:
    clock = FakeClock()
    # R5 deletes the container ~2.7 s after answering the deactivate.
    shell = ScriptedShell(
        {
            "runc list": lambda _: "OCDM\n" if clock.now < 2.7 else "",
            "/proc/[0-9]*/comm": lambda _: HOST_LINE if clock.now < 1.0 else "",
        }
    )
    wait = wait_for_no_leftovers(shell, "OCDM", KillTimes(), 1.0, clock=clock, sleep=clock.sleep)
    assert not wait.left
    assert 2.7 <= wait.waited < 3.5


def test_a_container_that_stays_is_reported_with_the_wait_and_its_reason() -> None:
    clock = FakeClock()
    shell = ScriptedShell({"runc list": "OCDM\n"})
    wait = wait_for_no_leftovers(
        shell,
        "OCDM",
        KillTimes(10, 4, "/etc/Thunder/config.json"),
        2.0,
        clock=clock,
        sleep=clock.sleep,
    )
    assert wait.left and wait.waited == pytest.approx(38.0)
    assert wait.describe() == (
        "runc still lists OCDM after waiting 38.0 s (deadline 38.0 s: softkillcheckwaittime 10 s"
        " + hardkillcheckwaittime 4 s + 5 s for the container stop (/etc/Thunder/config.json)"
        " x timeout factor 2)"
    )


class StuckThunder:
    """OCDM waiting forever for its implementation: Thunder holds it in Activation."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def configuration(self, callsign: str) -> dict[str, Any]:
        return {"root": {"mode": "Local"}}

    def state(self, callsign: str) -> str:
        return "Activation"

    def activate(self, callsign: str, timeout: float | None = None) -> None:
        raise ThunderUnreachable("no answer within 120 s")

    def deactivate(self, callsign: str, timeout: float | None = None) -> None:
        self.calls.append("deactivate")

    def set_configuration(self, callsign: str, configuration: dict[str, Any]) -> None:
        self.calls.append("set_configuration")

    def version(self) -> str:
        return "5.3.0"


def test_an_activation_that_never_completes_is_said_and_not_restored(tmp_path: Path) -> None:
    thunder = StuckThunder()
    spec = BundleSpec("OCDM", "/usr/share/Thunder/OCDM/Container", {})
    deployment = ContainerDeployment(ScriptedShell(), thunder, spec, results=tmp_path)  # type: ignore[arg-type]
    deployment.original_configuration = {"root": {"mode": "Local"}}
    with pytest.raises(DeployError, match="Thunder holds OCDM in Activation until it restarts"):
        deployment.activate()
    with pytest.raises(
        DeployError,
        match=r"holds OCDM in Activation until it restarts .*: its configuration and state",
    ):
        deployment.restore()
    assert thunder.calls == []
    deployment.restore()  # the second time there is nothing left to say


class TimedOutThunder(StuckThunder):
    """R5.3.0 after a runc create past its 2000 ms: the plugin back in Deactivated."""

    def state(self, callsign: str) -> str:
        return "Deactivated"

    def activate(self, callsign: str, timeout: float | None = None) -> None:
        raise ThunderError("Controller.1.activate", -31006, "ERROR_OPENING_FAILED")


LATE_CREATE = (
    '{"ociVersion":"1.0.2","id":"OCDM","pid":812,"status":"created",'
    '"bundle":"/usr/share/Thunder/OCDM/Container","created":"2024-05-02T09:14:07.3051234Z"}'
)


def test_a_failed_activation_names_the_leaked_container_and_when_runc_created_it(
    tmp_path: Path,
) -> None:
    shell = ScriptedShell(
        {
            "date -u": "2024-05-02T09:14:07.9Z",  # the answer came 0.6 s after the create
            "pidof runc": (1, ""),
            "list -q": "OCDM\n",
            "/usr/bin/runc state OCDM": LATE_CREATE,
        }
    )
    spec = BundleSpec("OCDM", "/usr/share/Thunder/OCDM/Container", {})
    deployment = ContainerDeployment(shell, TimedOutThunder(), spec, results=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(DeployError) as failed:
        deployment.activate()
    said = str(failed.value)
    assert said.startswith("Thunder could not activate OCDM: ") and "ERROR_OPENING_FAILED" in said
    assert "LEAKED CONTAINER: runc lists it while the plugin is Deactivated" in said
    assert "runc create finished 0.4 s after the activation began" in said
    assert "(Thunder's limit of 2000 ms per runc call)" in said


def test_a_failed_activation_without_a_runc_witness_says_no_container_leaked(
    tmp_path: Path,
) -> None:
    shell = ScriptedShell({"date -u": "2024-05-02T09:14:07.9Z", "pidof runc": (1, "")})
    spec = BundleSpec("OCDM", "/usr/share/Thunder/OCDM/Container", {})
    deployment = ContainerDeployment(shell, TimedOutThunder(), spec, results=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(DeployError) as failed:
        deployment.activate()
    assert str(failed.value) == (
        f"Thunder could not activate OCDM: {failed.value.__cause__}; no leaked container"
    )


class DeadThunder:
    def call(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        raise ThunderUnreachable("connection refused on 127.0.0.1:8080")


def test_a_dead_thunder_is_described_with_its_process_and_its_log() -> None:
    shell = ScriptedShell(
        {"pidof": (1, ""), THUNDER_LOG: "CRITICAL CONDITION! Failed to launch remote object\n"}
    )
    down = thunder_down(DeadThunder(), shell)  # type: ignore[arg-type]
    assert down is not None
    text = down.describe()
    assert "connection refused" in text and "no Thunder or WPEFramework process runs" in text
    assert text.endswith("CRITICAL CONDITION! Failed to launch remote object")


def _item(nodeid: str, target: Any) -> Any:
    return SimpleNamespace(
        nodeid=nodeid,
        fixturenames=["thunder_jsonrpc"],
        funcargs={"thunder_jsonrpc": object(), "thunder_target": target},
    )


def _report(watch: ThunderWatch, item: Any, failed: bool) -> Any:
    report = SimpleNamespace(failed=failed, nodeid=item.nodeid, sections=[])
    hook = watch.pytest_runtest_makereport(item, None)  # type: ignore[arg-type]
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(SimpleNamespace(get_result=lambda: report))
    return report


def test_thunders_death_is_said_once_and_the_tests_after_it_are_skipped() -> None:
    down = ThunderDown("connection refused", "no Thunder process runs", "last words")
    alive = [True]
    watch = ThunderWatch(probe=lambda client, shell: None if alive[0] else down)
    target = SimpleNamespace(healthy=lambda: True, shell=ScriptedShell())
    assert _report(watch, _item("t::passes", target), failed=False).sections == []
    assert _report(watch, _item("t::fails_alone", target), failed=True).sections == []
    alive[0] = False
    first = _report(watch, _item("t::kills", target), failed=True)
    assert first.sections[0][0] == "Thunder died during this test"
    assert "last words" in first.sections[0][1]
    with pytest.raises(pytest.skip.Exception, match="infrastructure: Thunder died during t::kills"):
        watch.pytest_runtest_setup(_item("t::next", target))
    assert _report(watch, _item("t::next", target), failed=True).sections == []  # said once
    alive[0] = True  # restarted by a test: the rest run again
    watch.pytest_runtest_setup(_item("t::after_restart", target))
    assert watch.death is None


def test_a_dead_target_is_not_booked_as_thunders_death() -> None:
    watch = ThunderWatch(probe=lambda client, shell: ThunderDown("refused", "gone", ""))
    target = SimpleNamespace(healthy=lambda: False, shell=ScriptedShell())
    assert _report(watch, _item("t::qemu_killed", target), failed=True).sections == []
    assert watch.death is None


class FailedThunder:
    def state(self, callsign: str) -> str:
        return "Deactivated"

    def version(self) -> str:
        return "5.3.0"


def test_after_a_failed_activation_a_leaked_container_is_reported() -> None:
    shell = ScriptedShell({"pidof runc": (1, ""), "runc list": "OCDM\n"})
    found = diagnose_failed_activation(shell, FailedThunder(), "OCDM", started=None)  # type: ignore[arg-type]
    assert found.leaked
    assert found.describe().startswith(
        "LEAKED CONTAINER: runc lists it while the plugin is Deactivated"
    )
    clean = ScriptedShell({"pidof runc": (1, ""), "runc list": "other\n"})
    assert not diagnose_failed_activation(clean, FailedThunder(), "OCDM", started=None).leaked  # type: ignore[arg-type]
