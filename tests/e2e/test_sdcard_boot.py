"""End to end: the reference image as an SD card image, booted cold, then restored elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_thunder_container.image.model import sha256_file
from pytest_thunder_container.image.sdcard_build import build_sdcard

pytestmark = pytest.mark.e2e

# Run by a pytest of its own on the SD card target; EXPECT_BOOT says how it must have started.
CHECKS = """
import os


def test_the_target_started_as_expected(thunder_target):
    assert thunder_target.properties()["boot"] == os.environ["EXPECT_BOOT"]


def test_arm64(thunder_shell):
    assert thunder_shell.check("uname -m").stdout == "aarch64"


def test_the_root_is_ext4_on_the_sd_card(thunder_shell):
    mount = thunder_shell.check("grep ' / ' /proc/mounts").stdout.split()
    assert mount[:3] == ["/dev/mmcblk0p2", "/", "ext4"]
    assert "rw" in mount[3].split(",")


def test_runc_runs_a_trivial_container(thunder_shell):
    bundle = "/tmp/tc-sd"
    thunder_shell.check(
        f"rm -rf {bundle} && mkdir -p {bundle}/rootfs/proc {bundle}/rootfs/dev "
        f"{bundle}/rootfs/sys {bundle}/rootfs/tmp && cd {bundle} && cp -a /bin /lib rootfs/ && "
        "runc spec && sed -i -e 's/\\"terminal\\": true/\\"terminal\\": false/' "
        "-e 's/\\"sh\\"$/\\"sh\\", \\"-c\\", \\"exit 7\\"/' config.json"
    )
    result = thunder_shell.run(f"cd {bundle} && runc run tc-sd-$$", timeout=60)
    assert result.returncode == 7, result.stdout


def test_thunder_answers(thunder_jsonrpc):
    # From the SD card Python starts slower than from RAM: OCDM may still be activating.
    thunder_jsonrpc.wait_for_state("OCDM", "Activated", timeout=60)
    assert "ClearKey" in [drm["name"] for drm in thunder_jsonrpc.call("OCDM.1.drms")]
"""


def _run_checks(image: Path, workdir: Path, expect_boot: str, factor: float) -> None:
    env = {
        **os.environ,
        "THUNDER_CONTAINER_CACHE": str(workdir / "cache"),
        "EXPECT_BOOT": expect_boot,
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-x",
        "--thunder-target=rpi3",
        f"--thunder-image={image}",
        f"--thunder-results={workdir / 'results'}",
        f"--thunder-timeout-factor={factor}",
        str(workdir / "test_on_sdcard.py"),
    ]
    result = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600 * factor,
        check=False,
    )
    assert result.returncode == 0, (
        f"the checks on {image} ({expect_boot}) failed:\n{result.stdout[-6000:]}\n"
        f"{result.stderr[-2000:]}\n(console and QEMU logs: {workdir / 'results'})"
    )


def test_the_reference_sd_card_boots_from_its_ext4_root(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    from pytest_thunder_container.image.build import reference_image

    factor = float(pytestconfig.getoption("thunder_timeout_factor", 1.0))
    image = build_sdcard(reference_image("rpi3"), tmp_path / "sdcard.img")
    (tmp_path / "test_on_sdcard.py").write_text(CHECKS)
    before = sha256_file(image)

    _run_checks(image, tmp_path, "cold boot", factor)
    # The same card elsewhere: its saved state is found by content, its overlay follows it.
    moved = shutil.copyfile(image, tmp_path / "elsewhere.img")
    _run_checks(moved, tmp_path, "snapshot restore", factor)

    assert sha256_file(image) == before
    assert sha256_file(moved) == before
