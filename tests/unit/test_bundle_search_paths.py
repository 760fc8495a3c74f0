"""The bundle goes where Thunder looks, read off Thunder; a bundle found earlier is refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from pytest_thunder_container.errors import DeployError
from pytest_thunder_container.shell.protocol import CommandResult
from pytest_thunder_container.thunder import deploy
from pytest_thunder_container.thunder.bundle_paths import (
    bundles_with_config,
    from_daemon_config,
    from_host_argv,
)
from pytest_thunder_container.thunder.deploy import BundleSpec, ContainerDeployment
from pytest_thunder_container.thunder.hosts import PluginHost

R44_CONFIG = {
    "port": 80,
    "persistentpath": "/root/",
    "datapath": "/usr/share/WPEFramework/",
    "volatilepath": "/tmp/",
}


class LocalShell:
    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        done = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=30)
        return CommandResult(cmd, done.returncode, done.stdout.rstrip("\n"))

    def check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        result = self.run(cmd, timeout)
        assert result.returncode == 0, result
        return result

    def put(self, data: bytes, path: str, mode: int | None = None) -> None:
        Path(path).write_bytes(data)


class StillThunder:
    def configuration(self, callsign: str) -> dict[str, Any]:
        return {"root": {"mode": "Local"}}

    def state(self, callsign: str) -> str:
        return "Deactivated"

    def status(self, callsign: str) -> dict[str, Any]:
        return {"callsign": callsign, "classname": "OCDM", "state": "Deactivated"}

    def set_configuration(self, callsign: str, configuration: dict[str, Any]) -> None:
        pass


def host_argv(volatile: str, persistent: str, data: str) -> tuple[str, ...]:
    return (
        "/usr/bin/ThunderPlugin", "-l", "libThunderOCDM.so", "-c", "OCDM", "-C", "OCDM",
        "-r", "/tmp/communicator", "-p", f'"{persistent}"', "-d", f'"{data}"',
        "-v", f'"{volatile}"',
    )  # fmt: skip


def test_the_host_arguments_give_thunders_order_and_the_data_path_is_the_default() -> None:
    paths = from_host_argv(
        "OCDM", host_argv("/tmp/OCDM/", "/root/OCDM/", "/usr/share/Thunder/OCDM/")
    )
    assert paths is not None
    assert paths.bundles == (
        "/tmp/OCDM/Container",
        "/root/OCDM/Container",
        "/usr/share/Thunder/OCDM/Container",
    )
    assert paths.default_bundle() == "/usr/share/Thunder/OCDM/Container"


def test_r44_data_path_is_keyed_by_classname_not_callsign() -> None:
    paths = from_daemon_config(
        "DRM", "OCDM", R44_CONFIG, "/etc/WPEFramework/config.json", {"callsign": "DRM"}
    )
    assert paths.bundles == (
        "/tmp/DRM/Container",
        "/root/DRM/Container",
        "/usr/share/WPEFramework/OCDM/Container",
    )
    assert paths.default_bundle() == "/usr/share/WPEFramework/OCDM/Container"


def test_postfixes_and_a_debug_containerpath_come_from_the_plugin() -> None:
    plugin = {
        "volatilepathpostfix": "ocdm-v",
        "configuration": {"root": {"configuration": {"containerpath": "/opt/c/"}}},
    }
    paths = from_daemon_config("OCDM", "OCDM", {"datapath": "/d/"}, "test", plugin)
    assert paths.bundles == ("/opt/c/Container", "/tmp/ocdm-v/Container", "/d/OCDM/Container")


def test_bundles_with_config_keeps_thunders_order(tmp_path: Path) -> None:
    bundles = [str(tmp_path / name / "Container") for name in ("a", "b", "c")]
    for bundle in bundles[1:]:
        os.makedirs(bundle)
        Path(bundle, "config.json").write_text("{}")
    assert bundles_with_config(LocalShell(), bundles) == bundles[1:]


def deployment_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, directory: str
) -> ContainerDeployment:
    base = tmp_path / "target"
    argv = host_argv(f"{base}/tmp/OCDM/", f"{base}/root/OCDM/", f"{base}/share/OCDM/")
    monkeypatch.setattr(
        deploy, "find_plugin_hosts", lambda shell, callsign: [PluginHost(235, "OCDM", argv)]
    )
    monkeypatch.setattr(deploy, "RUNC", "/bin/sh")
    spec = BundleSpec("OCDM", directory, {"ociVersion": "1.0.2"}, None)
    return ContainerDeployment(LocalShell(), StillThunder(), spec, results=tmp_path / "r")  # type: ignore[arg-type]


def test_an_earlier_config_json_refuses_the_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = tmp_path / "target" / "root" / "OCDM" / "Container"
    earlier.mkdir(parents=True)
    (earlier / "config.json").write_text("{}")
    deployment = deployment_on(tmp_path, monkeypatch, BundleSpec.default_directory("OCDM"))
    with pytest.raises(DeployError, match=f"{earlier}/config.json exists .* fix: remove"):
        deployment.deploy()
    assert deployment.bundle == str(tmp_path / "target" / "share" / "OCDM" / "Container")
    assert not (tmp_path / "target" / "share").exists()  # nothing placed


def test_a_bundle_off_the_search_path_is_refused_before_activation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = deployment_on(tmp_path, monkeypatch, str(tmp_path / "elsewhere" / "Container"))
    deployment.search_paths = deployment.find_search_paths()
    with pytest.raises(DeployError, match="is not on Thunder's search path for OCDM"):
        deployment.use_container()
