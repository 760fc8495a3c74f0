"""The package as a vendor gets it: a wheel built from this clone, installed with its dependencies
into a fresh venv, run from an empty folder. No QEMU: the runs are static-only or list/collect."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from faults.inner import inner_env

from pytest_thunder_container.conformance.catalogue import load_catalogue
from pytest_thunder_container.oci.config import tutorial_config

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "pytest_thunder_container"
SUITES = "pytest_thunder_container.suites"


def run(command: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = inner_env()
    env.pop("PYTHONPATH", None)  # a vendor's shell: nothing of this clone on the path
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(REPO)], out)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("pytest_thunder_container-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv of its own (no system site-packages): the wheel and the dependencies it declares."""
    root = tmp_path_factory.mktemp("venv")
    made = run([sys.executable, "-m", "venv", str(root)], root)
    assert made.returncode == 0, made.stderr
    installed = run([str(root / "bin" / "python"), "-m", "pip", "install", str(wheel)], root)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    folder = tmp_path / "vendor"
    folder.mkdir()
    return folder


def test_the_installed_wheel_is_what_runs_not_this_clone(venv: Path, empty: Path) -> None:
    probe = "import sys, pytest_thunder_container as p; print(p.__file__); print(sys.path)"
    done = run([str(venv / "bin" / "python"), "-c", probe], empty)
    where, path = done.stdout.splitlines()
    assert where.startswith(str(venv / "lib")), done.stdout + done.stderr
    assert str(REPO) not in path


def test_the_wheel_holds_the_suites_the_catalogue_and_every_file_of_the_image_recipes(
    wheel: Path,
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = {info.filename: info for info in archive.infolist()}
        expected = {
            f"pytest_thunder_container/_images/{path.relative_to(REPO / 'images').as_posix()}": path
            for path in (REPO / "images").rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        expected |= {
            f"pytest_thunder_container/{path.relative_to(PACKAGE).as_posix()}": path
            for path in PACKAGE.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        }
        missing = sorted(set(expected) - set(members))
        assert not missing, f"not in the wheel: {missing}"
        for name, path in expected.items():
            assert archive.read(name) == path.read_bytes(), name
            mode = members[name].external_attr >> 16
            assert mode & 0o111 == path.stat().st_mode & 0o111, f"{name}: executable bit lost"
    for data in (
        "conformance/requirements.toml",
        "parity/scenarios/ocdm.toml",
        "suites/test_namespaces.py",
        "report/templates/thunder-report.html",
    ):
        assert f"pytest_thunder_container/{data}" in members


def test_the_image_recipes_load_from_the_installed_package(venv: Path, empty: Path) -> None:
    probe = (
        "from pytest_thunder_container.image.model import recipes_root, load_recipe\n"
        "from pytest_thunder_container.image.thunder_sources import load_thunder_recipe\n"
        "print(recipes_root()); print(load_recipe('rpi3').name)\n"
        "print(sorted(load_thunder_recipe().lines))"
    )
    done = run([str(venv / "bin" / "python"), "-c", probe], empty)
    assert done.returncode == 0, done.stderr
    root, name, lines = done.stdout.splitlines()
    assert root.startswith(str(venv / "lib")) and root.endswith("_images")
    assert name == "rpi3"
    assert lines != "[]"


def test_requirements_are_listed_from_an_empty_folder(venv: Path, empty: Path) -> None:
    listing = run(
        [str(venv / "bin" / "pytest"), "--pyargs", SUITES, "--thunder-requirements"], empty
    )
    assert listing.returncode == 0, listing.stdout + listing.stderr
    for requirement in load_catalogue():
        assert requirement.id in listing.stdout


def test_collection_finds_every_suite_test_the_clone_finds(venv: Path, empty: Path) -> None:
    installed = run(
        [str(venv / "bin" / "pytest"), "--pyargs", SUITES, "--collect-only", "-q"], empty
    )
    clone = run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q"], REPO)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    def tests(output: str) -> list[str]:
        return sorted(line.split("/")[-1] for line in output.splitlines() if "::" in line)

    assert tests(installed.stdout) == tests(clone.stdout)
    assert len(tests(installed.stdout)) >= 100


def test_a_vendor_image_option_is_checked_by_the_installed_plugin(venv: Path, empty: Path) -> None:
    done = run(
        [str(venv / "bin" / "pytest"), "--pyargs", SUITES, "--thunder-image=vendor.img"], empty
    )
    assert done.returncode == 4
    assert "--thunder-image=vendor.img" in done.stderr


def test_certify_a_config_statically_from_an_empty_folder(venv: Path, empty: Path) -> None:
    (empty / "config.json").write_text(json.dumps(tutorial_config()))
    certify = run(
        [
            str(venv / "bin" / "thunder-container"),
            "certify",
            "--thunder-static-only",
            "--thunder-container-config=config.json",
        ],
        empty,
    )
    assert certify.returncode == 1, certify.stdout + certify.stderr  # runtime MUSTs not run
    assert "thunder-container certify: verdict: not certified" in certify.stdout
    assert "  report: thunder-results/thunder-report.json (not signed)" in certify.stdout
    report = json.loads((empty / "thunder-results" / "thunder-report.json").read_text())
    assert report["harness"]["version"]
    results = {r["id"]: r["result"] for r in report["requirements"]}
    assert results["TC-CFG-001"] in ("passed", "not-applicable")
    assert results["TC-COM-001"] == "not-run"  # static passed; its runtime test never ran
    assert sorted(path.name for path in empty.iterdir()) == ["config.json", "thunder-results"]
    verify = run(
        [str(venv / "bin" / "thunder-container"), "report", "verify", "thunder-results"], empty
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
