"""The inner session of test_faults_thunder.py: faults injected into real Thunder on one target.

Copied into a project as its test file and run by a real pytest, in this order; each test puts
back what it changed. What a user would read is written to <results>/said/<name>.txt for the
outer test to check. Not collected here (no test_ prefix).
"""

from __future__ import annotations

import copy
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container import (
    ContainerDeployment,
    DeployError,
    Settings,
    Shell,
    ThunderClient,
    ThunderContainerError,
    ThunderError,
    ThunderUnreachable,
    connect,
    diagnose_failed_activation,
    read_kill_times,
    restart_thunder,
    target_now,
    thunder_down,
    wait_for_no_leftovers,
)
from pytest_thunder_container.targets.base import Target, TargetShell
from pytest_thunder_container.thunder.hosts import find_plugin_hosts

CALLSIGN = "OCDM"
SERVICE = "/etc/init.d/S50thunder"
RESTART_TIMEOUT = 180.0
# R4.4.7 died within 5 s of a failed container launch (THUNDER.md, measured): wait longer.
AFTERLIFE_WAIT = 6.0
# OCDM waits for its implementation forever (Core::infinite): long enough to see it hold.
HOLD_TIMEOUT = 45.0
HOST_BINARIES = ("ThunderPlugin*", "WPEProcess*")
# In place of the /tmp bind: the container's /tmp is its own, with no communicator in it.
PRIVATE_TMP = {
    "destination": "/tmp",
    "type": "tmpfs",
    "source": "tmpfs",
    "options": ["nosuid", "nodev", "mode=1777"],
}


def said(results: Path, name: str, text: str) -> None:
    (results / "said").mkdir(exist_ok=True)
    (results / "said" / f"{name}.txt").write_text(text)


def states_until(thunder: ThunderClient, wanted: str, timeout: float) -> list[tuple[float, str]]:
    """Every state change of the plugin, seconds from now, until `wanted` or the timeout."""
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            state = thunder.state(CALLSIGN)
        except ThunderContainerError as error:
            state = f"<{str(error).splitlines()[0][:120]}>"
        if not seen or seen[-1][1] != state:
            seen.append((time.monotonic() - started, state))
        if state == wanted:
            break
        time.sleep(0.3)
    return seen


def timeline(seen: list[tuple[float, str]]) -> str:
    return ", ".join(f"{state} at {seconds:.1f} s" for seconds, state in seen)


def test_thunder_stopped_is_reported_within_the_timeouts(
    thunder_jsonrpc: ThunderClient,
    thunder_target: Target,
    thunder_shell: Shell,
    thunder_results: Path,
) -> None:
    thunder_jsonrpc.wait_for_state(CALLSIGN, "Activated", 120)
    with thunder_jsonrpc.runc_window():  # stopping Thunder stops the container (runc)
        thunder_shell.check(f"{SERVICE} stop", timeout=120)
    try:
        started = time.monotonic()
        with pytest.raises(ThunderUnreachable) as call:
            thunder_jsonrpc.call("Controller.1.subsystems", timeout=5)
        assert time.monotonic() - started < 10
        said(thunder_results, "call-while-stopped", str(call.value))
        started = time.monotonic()
        with pytest.raises(ThunderUnreachable) as connecting:
            url, shell = thunder_target.jsonrpc_url, TargetShell(thunder_target)
            connect(url, shell, wait=8, network_grace=2)
        # Its wait, plus at most one call (5 s) over each way, plus the console's margin.
        assert time.monotonic() - started < 8 + 5 + 5 + 5
        said(thunder_results, "connect-while-stopped", str(connecting.value))
    finally:
        with thunder_jsonrpc.runc_window():  # Thunder starts OCDM in its container again
            thunder_shell.check(f"{SERVICE} start")
            thunder_jsonrpc.wait_for_state(CALLSIGN, "Activated", 120)


def test_a_killed_plugin_host_is_seen_and_a_reactivation_works(
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_shell: Shell,
    thunder_settings: Settings,
    thunder_results: Path,
) -> None:
    factor = thunder_settings.timeout_factor
    thunder_deployment.use_container()
    drms = thunder_jsonrpc.call(f"{CALLSIGN}.1.drms")
    hosts = find_plugin_hosts(thunder_shell, CALLSIGN)
    assert len(hosts) == 1, hosts
    cgroup = thunder_shell.run(f"cat /proc/{hosts[0].pid}/cgroup").stdout.strip()
    kill_times = read_kill_times(thunder_shell)
    thunder_shell.check(f"kill -9 {hosts[0].pid}")
    seen = states_until(thunder_jsonrpc, "Deactivated", 60 * factor)
    with pytest.raises(ThunderError) as call:
        thunder_jsonrpc.call(f"{CALLSIGN}.1.drms")
    left = wait_for_no_leftovers(thunder_shell, CALLSIGN, kill_times, factor)
    said(
        thunder_results,
        "host-killed",
        f"killed {hosts[0].binary} pid {hosts[0].pid} (cgroup {cgroup}); {timeline(seen)}",
    )
    said(thunder_results, "call-after-host-killed", str(call.value))
    said(thunder_results, "left-after-host-killed", left.describe())
    assert seen[-1][1] == "Deactivated", timeline(seen)
    assert call.value.core_code == 2  # ERROR_UNAVAILABLE: the plugin is not active
    assert not left.left, left.describe()
    thunder_deployment.activate()
    assert thunder_jsonrpc.call(f"{CALLSIGN}.1.drms") == drms
    assert len(find_plugin_hosts(thunder_shell, CALLSIGN)) == 1


def test_a_rootfs_without_the_plugin_host_fails_its_activation_clearly(
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_shell: Shell,
    thunder_settings: Settings,
    thunder_results: Path,
) -> None:
    q, factor = shlex.quote, thunder_settings.timeout_factor
    usr_bin = f"{thunder_deployment.bundle}/rootfs/usr/bin"
    aside = f"{thunder_deployment.bundle}/hosts.tc-faults"
    names = " ".join(f"{q(usr_bin)}/{name}" for name in HOST_BINARIES)
    thunder_deployment.deactivate()
    kill_times = read_kill_times(thunder_shell)
    thunder_shell.check(
        f"mkdir {q(aside)} && for f in {names}; do "
        f'[ -e "$f" ] || [ -L "$f" ] || continue; mv "$f" {q(aside)}/; done && '
        f'[ -n "$(ls {q(aside)})" ] && ! ls {names} 2>/dev/null'
    )
    down = None
    try:
        started_at, started = target_now(thunder_shell), time.monotonic()
        with pytest.raises(DeployError) as failure:
            thunder_deployment.use_container()
        took = time.monotonic() - started
        said(thunder_results, "activation-without-host", f"{failure.value}\n(after {took:.1f} s)")
        time.sleep(AFTERLIFE_WAIT * factor)
        down = thunder_down(thunder_jsonrpc, thunder_shell)
        if down is None:
            found = diagnose_failed_activation(
                thunder_shell, thunder_jsonrpc, CALLSIGN, started=started_at, timeout_factor=factor
            )
            said(thunder_results, "after-activation-without-host", found.describe())
            left = wait_for_no_leftovers(thunder_shell, CALLSIGN, kill_times, factor)
            said(thunder_results, "left-after-activation-without-host", left.describe())
            assert not found.leaked and not left.left, f"{found.describe()}; {left.describe()}"
    finally:
        thunder_shell.check(f"mv {q(aside)}/* {q(usr_bin)}/ && rmdir {q(aside)}")
        if down is not None:
            said(thunder_results, "thunder-died-without-host", down.describe())
            restart_thunder(thunder_jsonrpc, thunder_shell, timeout=RESTART_TIMEOUT * factor)
    assert down is None or thunder_jsonrpc.dialect == "R4.4", down.describe()
    thunder_deployment.use_container()
    assert len(find_plugin_hosts(thunder_shell, CALLSIGN)) == 1


def without_communicator(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its /tmp bind mount replaced by a private tmpfs."""
    cut_off = copy.deepcopy(config)
    mounts = [m for m in cut_off.get("mounts", []) if m.get("destination") != "/tmp"]
    cut_off["mounts"] = [*mounts, dict(PRIVATE_TMP)]
    return cut_off


def test_a_host_that_cannot_reach_the_communicator_is_held_in_activation(
    thunder_deployment: ContainerDeployment,
    thunder_jsonrpc: ThunderClient,
    thunder_shell: Shell,
    thunder_settings: Settings,
    thunder_results: Path,
) -> None:
    factor, good = thunder_settings.timeout_factor, thunder_deployment.config
    thunder_deployment.deactivate()
    thunder_deployment.write_config(without_communicator(good), label="no-communicator")
    try:
        started = time.monotonic()
        with pytest.raises(DeployError) as failure:
            thunder_deployment.use_container(timeout=HOLD_TIMEOUT)
        took = time.monotonic() - started
        said(
            thunder_results,
            "activation-without-communicator",
            f"{failure.value}\n(after {took:.1f} s)",
        )
        hosts = find_plugin_hosts(thunder_shell, CALLSIGN)
        state = thunder_jsonrpc.state(CALLSIGN)
        try:
            thunder_jsonrpc.deactivate(CALLSIGN, timeout=10)
            refused = "deactivate accepted"
        except ThunderContainerError as error:
            refused = f"deactivate refused: {error}"
        said(
            thunder_results,
            "held-without-communicator",
            f"state {state}; hosts {[h.pid for h in hosts]}; {refused}",
        )
        assert state == "Activation", state
    finally:
        thunder_deployment.write_config(good, label="restored")
        restart_thunder(thunder_jsonrpc, thunder_shell, timeout=RESTART_TIMEOUT * factor)
    thunder_jsonrpc.wait_for_state(CALLSIGN, "Activated", 120)
    thunder_deployment.use_container()
    assert len(find_plugin_hosts(thunder_shell, CALLSIGN)) == 1
