"""A bundle path with shell syntax in it is only ever a path: a deployment on a real shell."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.console_targets import make_console, shell_env, spawn

from pytest_thunder_container.shell.console import Console
from pytest_thunder_container.thunder import deploy
from pytest_thunder_container.thunder.deploy import BundleSpec, ContainerDeployment


class StillThunder:
    """Thunder as the deployment sees it before any switch: one plugin, Deactivated."""

    def configuration(self, callsign: str) -> dict[str, Any]:
        return {"root": {"mode": "Local"}}

    def state(self, callsign: str) -> str:
        return "Deactivated"

    def set_configuration(self, callsign: str, configuration: dict[str, Any]) -> None:
        pass


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Console]:
    session = make_console(spawn(["/bin/sh", "-i"], shell_env(tmp_path), tmp_path), tmp_path)
    session.attach(timeout=10)
    yield session
    session.close()


def rootfs_tar(path: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        data = b"#!/bin/sh\n"
        member = tarfile.TarInfo("usr/bin/ThunderPlugin")
        member.size, member.mode = len(data), 0o755
        archive.addfile(member, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize(
    "name",
    ["a b;touch {pwned}", "$(touch {pwned})", "`touch {pwned}`", "x' \"; touch {pwned}; '"],
)
def test_a_bundle_path_with_shell_syntax_runs_nothing(
    shell: Console, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(deploy, "RUNC", "/bin/sh")  # the host has no runc; only its presence counts
    pwned = tmp_path / "pwned"
    bundle = tmp_path / "plugins" / name.format(pwned=pwned).replace("/", "_") / "Container"
    spec = BundleSpec("OCDM", str(bundle), {"ociVersion": "1.0.2"}, rootfs_tar(tmp_path / "r.tar"))
    deployment = ContainerDeployment(shell, StillThunder(), spec, results=tmp_path / "results")  # type: ignore[arg-type]
    deployment.deploy()
    assert (bundle / "config.json").is_file()
    assert (bundle / "rootfs" / "usr" / "bin" / "ThunderPlugin").is_file()
    deployment.restore()
    assert not (tmp_path / "plugins").exists()
    assert not pwned.exists()
