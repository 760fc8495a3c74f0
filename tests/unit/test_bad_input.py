"""Bad user input stops the run with a usage error naming the option and the fix, before any
target boots: the real plugin in a real pytest process, as a user runs it."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ONE_TEST = "def test_never_runs(thunder_shell):\n    raise AssertionError('a target was used')\n"


def _not_json(folder: Path) -> list[str]:
    (folder / "config.json").write_text('{"ociVersion": "1.0.2",')
    return ["--thunder-container-config=config.json"]


def _not_oci(folder: Path) -> list[str]:
    (folder / "config.json").write_text(json.dumps({"name": "a package.json, not OCI"}))
    return ["--thunder-container-config=config.json"]


def _not_a_tar(folder: Path) -> list[str]:
    (folder / "rootfs.tar").write_bytes(b"\x7fELF not a tar at all" * 40)
    return ["--thunder-rootfs=rootfs.tar"]


def _empty_tar(folder: Path) -> list[str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w"):
        pass
    (folder / "rootfs.tar").write_bytes(buffer.getvalue())
    return ["--thunder-rootfs=rootfs.tar"]


def _image_without_kernel(folder: Path) -> list[str]:
    (folder / "image").mkdir()
    (folder / "image" / "README").write_text("no kernel here")
    return ["--thunder-image=image"]


def _fixed(*args: str) -> Callable[[Path], list[str]]:
    return lambda folder: list(args)


CASES = {
    "unknown target": (_fixed("--thunder-target=rpi4"), "--thunder-target"),
    "missing image": (_fixed("--thunder-image=nowhere/sdcard.img"), "no such file"),
    "image without a kernel": (_image_without_kernel, "--thunder-image="),
    "config not json": (_not_json, "--thunder-container-config"),
    "config not oci": (_not_oci, "not an OCI runtime config"),
    "rootfs not a tar": (_not_a_tar, "not a tar archive"),
    "rootfs empty tar": (_empty_tar, "the tar archive is empty"),
    "callsign with shell syntax": (_fixed("--thunder-callsign=OCDM;reboot"), "callsign"),
    "image on a serial target": (
        _fixed("--thunder-target=serial:/dev/ttyUSB9", "--thunder-image=."),
        "drop one of the two options",
    ),
    "cold boot on a serial target": (
        _fixed("--thunder-target=serial:/dev/ttyUSB9", "--thunder-cold-boot"),
        "QEMU targets only",
    ),
    "zero timeout factor": (_fixed("--thunder-timeout-factor=0"), "must be > 0"),
    "bad port": (_fixed("--thunder-port=70000"), "not a TCP port"),
    "no bench runs": (_fixed("--thunder-bench-runs=0"), "at least 1"),
    "unknown api": (_fixed("--thunder-reference-api=R3"), "invalid choice: 'R3'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_a_usage_error_before_anything_boots(
    pytester: pytest.Pytester, case: str
) -> None:
    make_args, expected = CASES[case]
    pytester.makepyfile(test_user=ONE_TEST)
    args = make_args(pytester.path)
    result = pytester.runpytest_subprocess(*args, "--thunder-results=out", "-p", "no:randomly")
    said = result.stderr.str() + result.stdout.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, said
    assert expected in said
    assert "Traceback" not in said
    # Nothing was booted: no console transcript, no QEMU log in the results.
    out = pytester.path / "out"
    assert not out.exists() or not list(out.rglob("*.log"))
