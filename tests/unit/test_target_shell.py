"""Fixtures reach the target only through its shell and file channel: a restarted target is seen
by every layer made before the restart, and big files go through the target's FileTransfer."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
from helpers.restarting_target import RestartingTarget

from pytest_thunder_container.targets.base import CONSOLE_PUT_BELOW
from pytest_thunder_container.thunder.deploy import BundleSpec, ContainerDeployment

pytest_plugins = ["pytester"]

BUNDLE = "/usr/share/Thunder/OCDM/Container"


class StillThunder:
    """Thunder as a deployment sees it before any switch: one plugin, Deactivated."""

    def configuration(self, callsign: str) -> dict[str, Any]:
        return {"root": {"mode": "Local"}}

    def state(self, callsign: str) -> str:
        return "Deactivated"


def started() -> RestartingTarget:
    target = RestartingTarget()
    target.start()
    return target


def test_a_shell_taken_before_a_restart_reaches_the_new_console() -> None:
    target = started()
    shell = target.shell
    target.restart()
    assert shell.check("echo after").stdout == ""
    first, second = target.consoles
    assert first.closed
    assert "echo after" in second.commands
    assert "echo after" not in first.commands


def test_the_shells_transcript_is_the_current_consoles() -> None:
    target = started()
    shell = target.shell
    assert shell.transcript_path == Path("/results/console-boot1.log")
    target.restart()
    assert shell.transcript_path == Path("/results/console-boot2.log")


def test_a_big_put_goes_through_the_file_channel_a_small_one_over_the_console() -> None:
    target = started()
    big, small = os.urandom(CONSOLE_PUT_BELOW), os.urandom(CONSOLE_PUT_BELOW - 1)
    target.shell.put(big, "/tmp/big")
    target.shell.put(small, "/tmp/small")
    assert [(r.direction, r.path, r.size) for r in target.files.history] == [
        ("put", "/tmp/big", len(big))
    ]
    assert target.consoles[0].files == {"/tmp/big": big, "/tmp/small": small}
    assert target.shell.get("/tmp/small") == small
    assert target.files.history[-1].direction == "get"


def test_the_file_channel_after_a_restart_is_the_new_consoles() -> None:
    target = started()
    shell = target.shell
    target.restart()
    shell.put(b"x" * CONSOLE_PUT_BELOW, "/tmp/after")
    assert "/tmp/after" in target.consoles[1].files
    assert [r.path for r in target.files.history] == ["/tmp/after"]


def test_a_users_rootfs_tar_goes_through_the_file_channel(tmp_path: Path) -> None:
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as archive:
        blob = os.urandom(4 * CONSOLE_PUT_BELOW)
        member = tarfile.TarInfo("usr/lib/blob")
        member.size = len(blob)
        archive.addfile(member, io.BytesIO(blob))
    target = started()
    spec = BundleSpec("OCDM", BUNDLE, {"ociVersion": "1.0.2"}, tar)
    deployment = ContainerDeployment(
        target.shell,
        StillThunder(),  # type: ignore[arg-type]
        spec,
        results=tmp_path / "results",
    )
    deployment.deploy()
    puts = [(r.path, r.size) for r in target.files.history]
    assert puts == [(f"{BUNDLE}/rootfs.tar", tar.stat().st_size)]
    assert f"put {BUNDLE}/config.json" in target.consoles[0].commands  # small: console


# --- through the plugin's own fixtures -----------------------------------------------------

CONFTEST = """
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.restarting_target import RestartingTarget

from pytest_thunder_container.conformance.assessment import ThunderEnvironment
from pytest_thunder_container.plugin import suite_fixtures
from pytest_thunder_container.thunder.deploy import ContainerDeployment

@pytest.fixture(scope="session")
def thunder_target():
    target = RestartingTarget()
    target.start()
    yield target
    target.stop()


@pytest.fixture(scope="session")
def thunder_jsonrpc():
    return SimpleNamespace(dialect="R5", version=lambda: "5.3.0")


@pytest.fixture(scope="session")
def thunder_container_config():
    return {}


@pytest.fixture(scope="session", autouse=True)
def held():
    HELD = {}  # layer -> the shell its fixture gave it

    def environment(shell, callsign):
        HELD["environment"] = shell
        return ThunderEnvironment()

    def assess(deployment, thunder, shell, catalogue, **kwargs):
        HELD["assessment"] = shell

    def parity(scenario, deployment, thunder, *, leftovers, **kwargs):
        leftovers()

    def leftovers(shell, callsign):
        HELD["leftovers"] = shell

    def benchmark(setup, progress):
        HELD["benchmark"] = setup.shell

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ContainerDeployment, "deploy", lambda self: None)
        patch.setattr(ContainerDeployment, "restore", lambda self: None)
        patch.setattr(suite_fixtures, "thunder_environment", environment)
        patch.setattr(suite_fixtures, "assess_container", assess)
        patch.setattr(suite_fixtures, "run_parity", parity)
        patch.setattr(suite_fixtures, "leftovers", leftovers)
        patch.setattr(suite_fixtures, "run_benchmark", benchmark)
        patch.setattr(suite_fixtures, "target_record", lambda bench, facts: {"label": "x"})
        patch.setattr(suite_fixtures, "merge_latency", lambda results, record: (Path(), Path(), 0))
        yield HELD
"""

LAYERS = """
from pytest_thunder_container.shell.console import Console
from pytest_thunder_container.targets.base import TargetShell


def test_every_layer_holds_the_targets_shell(
    thunder_shell, thunder_deployment, thunder_assessment, thunder_parity, thunder_latency,
    thunder_target, held,
):
    held = {"thunder_shell": thunder_shell, "deployment": thunder_deployment.shell, **held}
    assert sorted(held) == [
        "assessment", "benchmark", "deployment", "environment", "leftovers", "thunder_shell"
    ]
    for layer, shell in held.items():
        assert isinstance(shell, TargetShell), layer
        assert not isinstance(shell, Console), layer
        assert shell is not thunder_target.console, layer
    thunder_target.dead = True  # found dead by the next test's thunder_shell


def test_after_a_restart_every_layer_reaches_the_new_console(
    thunder_shell, thunder_deployment, thunder_target, held
):
    assert [c.boot for c in thunder_target.consoles] == [1, 2]
    first, second = thunder_target.consoles
    held = {"thunder_shell": thunder_shell, "deployment": thunder_deployment.shell, **held}
    for layer, shell in held.items():
        shell.run(f"echo {layer}")
        assert f"echo {layer}" in second.commands, layer
        assert f"echo {layer}" not in first.commands, layer
"""


def test_the_suite_fixtures_give_every_layer_the_targets_shell(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_layers=LAYERS)
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", f"--thunder-results={pytester.path / 'r'}"
    )
    result.assert_outcomes(passed=2)
