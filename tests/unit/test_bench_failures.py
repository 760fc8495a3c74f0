"""A Container activation that fails during the latency benchmark: explained, repeated, cleaned."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from helpers.scripted_shell import ScriptedShell

from pytest_thunder_container.errors import DeployError
from pytest_thunder_container.perf import start_latency
from pytest_thunder_container.perf.runc_wrapper import RuncCall, describe_calls
from pytest_thunder_container.perf.start_latency import (
    CLOCKS,
    ActivationFailed,
    BenchError,
    Benchmark,
    BenchSetup,
    TimedRun,
    book_failed_activation,
)

START = 1_800_000_000.0
# R5.3.0 gave up on a create that took 2.31 s; runc finished it anyway.
SLOW_CREATE = [
    RuncCall("delete", START + 0.1, START + 0.4, 0, "delete --force OCDM"),
    RuncCall("create", START + 0.5, START + 2.81, 0, "create --bundle /usr/share/OCDM OCDM"),
]


def test_each_call_is_timed_and_the_one_past_thunders_limit_is_marked() -> None:
    said = describe_calls(SLOW_CREATE, 2000)
    assert said == (
        "runc calls: delete 300 ms, create 2310 ms PAST THE LIMIT "
        "(Thunder's limit of 2000 ms per runc call)"
    )
    assert "PAST" not in describe_calls(SLOW_CREATE, 5000)
    unfinished = [RuncCall("exec", START, None, None, "exec OCDM"), *SLOW_CREATE[:1]]
    assert describe_calls(unfinished, None).startswith("runc calls: exec (no end logged), delete")
    assert describe_calls([], 2000).startswith("runc calls: none logged")


@dataclass
class Thunder:
    state_is: str = "Deactivated"

    def state(self, callsign: str) -> str:
        return self.state_is

    def version(self) -> str:
        return "5.3.0"


class Wrapper:
    def calls(self, start: float, end: float) -> list[RuncCall]:
        return [c for c in SLOW_CREATE if c.start >= start and (c.end or 0) <= end]


def failed_run() -> ActivationFailed:
    run = TimedRun(START, START + 2.412, 0, '{"error":{"code":-31006}}')
    return ActivationFailed('Controller.1.activate of OCDM answered {"code": -31006}', run)


def test_a_failed_activation_is_explained_and_its_leaked_container_deleted() -> None:
    shell = ScriptedShell({"pidof runc": (1, ""), "list -q": "OCDM\n", "delete --force": ""})
    setup = BenchSetup(shell, Thunder(), None, "OCDM")  # type: ignore[arg-type]
    bench = Benchmark(10)
    book_failed_activation(setup, bench, CLOCKS["ts"], Wrapper(), failed_run())  # type: ignore[arg-type]
    (finding,) = bench.failed_activations
    assert finding.startswith("Container activation 1 failed after 2412 ms: ")
    assert "answered" in finding and "-31006" in finding
    # The late create ended after Thunder's answer: still counted.
    assert "create 2310 ms PAST THE LIMIT (Thunder's limit of 2000 ms" in finding
    assert "LEAKED CONTAINER" in finding and finding.endswith("(deleted by the benchmark)")
    assert any(c.endswith("delete --force OCDM") for c in shell.commands)


def test_no_leak_no_delete_and_too_many_failures_end_the_benchmark() -> None:
    shell = ScriptedShell({"pidof runc": (1, ""), "list -q": ""})
    setup = BenchSetup(shell, Thunder(), None, "OCDM")  # type: ignore[arg-type]
    bench = Benchmark(10)
    book_failed_activation(setup, bench, CLOCKS["ts"], Wrapper(), failed_run())  # type: ignore[arg-type]
    assert "no leaked container" in bench.failed_activations[0]
    assert not any("delete --force" in c for c in shell.commands)
    book_failed_activation(setup, bench, CLOCKS["ts"], Wrapper(), failed_run())  # type: ignore[arg-type]
    with pytest.raises(BenchError, match=r"3 Container activations failed; the last: Container"):
        book_failed_activation(setup, bench, CLOCKS["ts"], Wrapper(), failed_run())  # type: ignore[arg-type]


class FailingSwitch:
    def use_container(self) -> None:
        raise DeployError(
            "Thunder could not activate OCDM: ERROR_OPENING_FAILED; no leaked container"
        )


def test_a_failed_switch_to_container_mode_is_booked_and_counted() -> None:
    setup = BenchSetup(ScriptedShell(), Thunder(), FailingSwitch(), "OCDM")  # type: ignore[arg-type]
    bench = Benchmark(10)
    start_latency._switch_to_container(setup, bench)
    assert bench.failed_activations == [
        "Container activation 1 failed: Thunder could not activate OCDM: ERROR_OPENING_FAILED; "
        "no leaked container"
    ]
    bench.failed_activations.append("another")
    with pytest.raises(BenchError, match=r"^3 Container activations failed; the last: Container"):
        start_latency._switch_to_container(setup, bench)
