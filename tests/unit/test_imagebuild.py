"""The builder: cache hits, rebuilds, the image key, the lock between processes, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_thunder_container.cli import main as cli
from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.apt import Package
from pytest_thunder_container.image.build import (
    ARTIFACT_FILES,
    build_lock,
    build_manifest,
    ensure_image,
    image_key,
    latest_built,
    resolve_packages,
)
from pytest_thunder_container.image.model import Recipe, load_recipe, verify
from pytest_thunder_container.image.thunder_build import ThunderTree


class FakeSource:
    """Every package at a fixed version; the kernel metapackage depends on one kernel."""

    def __init__(self, versions: Mapping[str, str] | None = None) -> None:
        self.versions = dict(versions or {})
        self.resolved: list[list[str]] = []

    def resolve(self, names: Sequence[str], *, refresh: bool = False) -> dict[str, Package]:
        self.resolved.append(list(names))
        depends = {"linux-image-arm64": "linux-image-6.1.0-99-arm64 (= 6.1.99-1)"}
        return {
            name: Package(name, self.versions.get(name, "1.0"), "", 0, depends.get(name, ""))
            for name in names
        }

    def fetch(self, packages: Sequence[Package]) -> dict[str, Path]:
        raise AssertionError("the fake build never fetches")


class FakeBuild:
    """Writes three small artifacts and a real manifest; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, recipe, packages, source, key, workdir, progress, thunder=None) -> Path:
        self.calls += 1
        out = workdir / "out"
        out.mkdir()
        for role, name in ARTIFACT_FILES.items():
            (out / name).write_bytes(f"{role} {key}".encode())
        manifest = build_manifest(recipe, key, "6.1.0-99-arm64", packages, out, thunder)
        (out / "manifest.json").write_text(json.dumps(manifest))
        return out


PATCH = {"path": "Source/x.cpp", "old": "= 2000", "new": "= 20000", "why": "emulation"}


def fake_thunder(lines: Sequence[str], progress) -> dict[str, ThunderTree]:
    """Thunder trees as the image builder sees them, with no cross build."""
    source = {"name": "Thunder", "repository": "rdkcentral/Thunder", "tag": "R5.3.0"}
    manifest = {
        "version": "5.3.0",
        "daemon": "usr/bin/Thunder",
        "tree_sha256": "ab" * 32,
        "compiler": "aarch64-linux-gnu-g++ (Debian 12.2.0-14) 12.2.0",
        "sources": [{**source, "commit": "c" * 40, "sha256": "d" * 64, "patches": [PATCH]}],
    }
    return {line: ThunderTree(line, Path("/nonexistent"), manifest) for line in lines}


@pytest.fixture
def recipe() -> Recipe:
    return load_recipe("rpi3")


def test_second_call_finds_the_image_without_building(recipe: Recipe, tmp_path: Path) -> None:
    build = FakeBuild()
    first = ensure_image(
        recipe, tmp_path, FakeSource(), progress=print, build=build, thunder=fake_thunder
    )
    start = time.monotonic()
    second = ensure_image(
        recipe, tmp_path, FakeSource(), progress=print, build=build, thunder=fake_thunder
    )
    assert time.monotonic() - start < 1.0
    assert build.calls == 1
    assert second.directory == first.directory
    assert first.directory.name.startswith("rpi3-") and len(first.directory.name) == 17
    assert not list((tmp_path / "images").glob(".build-*"))


def test_a_corrupted_cache_is_reported_and_rebuilt(recipe: Recipe, tmp_path: Path) -> None:
    build = FakeBuild()
    messages: list[str] = []
    image = ensure_image(
        recipe, tmp_path, FakeSource(), progress=messages.append, build=build, thunder=fake_thunder
    )
    image.kernel.write_bytes(b"garbage of another length")
    again = ensure_image(
        recipe, tmp_path, FakeSource(), progress=messages.append, build=build, thunder=fake_thunder
    )
    assert build.calls == 2
    assert any("Image is corrupted" in m for m in messages)
    assert "[image] building it again" in messages
    verify(again)


def test_rebuild_builds_even_when_cached(recipe: Recipe, tmp_path: Path) -> None:
    build = FakeBuild()
    ensure_image(recipe, tmp_path, FakeSource(), progress=print, build=build, thunder=fake_thunder)
    ensure_image(
        recipe,
        tmp_path,
        FakeSource(),
        progress=print,
        build=build,
        rebuild=True,
        thunder=fake_thunder,
    )
    assert build.calls == 2


def test_kernel_is_resolved_through_the_metapackage(recipe: Recipe) -> None:
    source = FakeSource()
    packages = resolve_packages(recipe, source)
    assert next(iter(packages)) == "linux-image-6.1.0-99-arm64"
    assert "linux-image-arm64" not in packages
    assert "runc" in packages


def test_key_changes_with_a_package_version(recipe: Recipe) -> None:
    before = image_key(recipe, resolve_packages(recipe, FakeSource()))
    newer = FakeSource({"runc": "1.1"})
    assert image_key(recipe, resolve_packages(recipe, newer)) != before
    assert image_key(recipe, resolve_packages(recipe, FakeSource())) == before


def test_key_changes_with_a_recipe_file(recipe: Recipe, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    (overlay / "etc").mkdir(parents=True)
    (overlay / "etc" / "hostname").write_text("rpi3\n")
    copy = replace(recipe, directory=tmp_path, trees=(overlay,))
    packages = resolve_packages(copy, FakeSource())
    before = image_key(copy, packages)
    (overlay / "etc" / "hostname").write_text("other\n")
    assert image_key(copy, packages) != before


def test_key_covers_trees_outside_the_recipe_folder(recipe: Recipe, tmp_path: Path) -> None:
    outside = tmp_path / "reference-thunder" / "rootfs"
    outside.mkdir(parents=True)
    copy = replace(recipe, directory=tmp_path / "rpi3", trees=(outside,))
    packages = resolve_packages(copy, FakeSource())
    before = image_key(copy, packages)
    (outside / "S50thunder").write_text("#!/bin/sh\n")
    assert image_key(copy, packages) != before


LOCKED_BUILDER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_imagebuild import FakeBuild, FakeSource, fake_thunder
    from pytest_thunder_container.image.build import ensure_image
    from pytest_thunder_container.image.model import load_recipe

    cache = Path(sys.argv[1])

    class SlowBuild(FakeBuild):
        def __call__(self, *args):
            (cache / "started").touch()
            with open(cache / "builds", "a") as log:
                log.write("build\\n")
            time.sleep(1.5)
            return super().__call__(*args)

    image = ensure_image(load_recipe("rpi3"), cache, FakeSource(),
                         progress=lambda m: print(m, file=sys.stderr, flush=True),
                         build=SlowBuild(), thunder=fake_thunder)
    print(image.directory)
    """
)


def test_the_lock_makes_a_second_process_wait_and_reuse(tmp_path: Path) -> None:
    script = tmp_path / "builder.py"
    script.write_text(LOCKED_BUILDER.format(tests=str(Path(__file__).parent)))
    cache = tmp_path / "cache"
    cache.mkdir()
    command = [sys.executable, str(script), str(cache)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (cache / "started").exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the first builder never started building"
        time.sleep(0.05)
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    out_first, err_first = first.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, err_first + second.stderr
    assert "waiting for another build holding" in second.stderr
    assert str(cache / "images" / ".lock") in second.stderr
    assert (cache / "builds").read_text() == "build\n"
    assert out_first.strip() == second.stdout.strip()


def test_cli_build_prints_the_directory_last(monkeypatch, tmp_path: Path, capsys) -> None:
    from pytest_thunder_container.image import build as imagebuild

    build = FakeBuild()

    def fake_reference_image(name: str, *, rebuild: bool, refresh: bool):
        return ensure_image(
            load_recipe(name),
            tmp_path,
            FakeSource(),
            progress=print,
            build=build,
            thunder=fake_thunder,
        )

    monkeypatch.setattr(imagebuild, "reference_image", fake_reference_image)
    assert cli.main(["image", "build", "rpi3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith(str(tmp_path / "images" / "rpi3-"))


def test_cli_show_prints_the_manifest(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("THUNDER_CONTAINER_CACHE", str(tmp_path))
    assert cli.main(["image", "show", "rpi3"]) == 2
    assert "image build rpi3" in capsys.readouterr().err
    image = ensure_image(
        load_recipe("rpi3"),
        tmp_path,
        FakeSource(),
        progress=print,
        build=FakeBuild(),
        thunder=fake_thunder,
    )
    capsys.readouterr()
    assert cli.main(["image", "show", "rpi3"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == str(image.directory)
    assert '"image_sha256"' in out and '"password": "thunder-ref-5Kq"' in out


def test_latest_built_without_any_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no built rpi3 image"):
        latest_built("rpi3", tmp_path)


def test_manifest_describes_the_image(recipe: Recipe, tmp_path: Path) -> None:
    recipe = replace(recipe, thunder_lines=("R5", "R4.4"))
    image = ensure_image(
        recipe, tmp_path, FakeSource(), progress=print, build=FakeBuild(), thunder=fake_thunder
    )
    manifest = image.manifest
    assert manifest["name"] == "rpi3" and manifest["kernel_version"] == "6.1.0-99-arm64"
    assert manifest["login"] == {"user": "root", "password": "thunder-ref-5Kq"}
    assert manifest["append"] == "console=ttyAMA0 rdinit=/init"
    assert manifest["machines"] == ["rpi3", "virt"]
    assert set(manifest["artifacts"]) == {"kernel", "dtb", "initrd"}
    assert manifest["packages"]["linux-image-6.1.0-99-arm64"] == "1.0"
    assert manifest["built_at"].endswith("+00:00")
    assert image.sha256 == manifest["image_sha256"]
    # The real Thunder each API line carries: version, sources by commit, the build's checksum.
    assert set(manifest["thunder"]) == {"R5", "R4.4"}
    facts = manifest["thunder"]["R5"]
    assert facts["version"] == "5.3.0" and facts["build_sha256"] == "ab" * 32
    assert facts["sources"]["Thunder"]["commit"] == "c" * 40
    assert facts["patches"] == [{"source": "Thunder", **PATCH}]  # every change to upstream


def test_the_image_key_changes_with_a_thunder_build(recipe: Recipe) -> None:
    packages = resolve_packages(recipe, FakeSource())
    trees = fake_thunder(["R5"], print)
    rebuilt = {"R5": replace(trees["R5"], manifest={**trees["R5"].manifest, "tree_sha256": "0"})}
    assert image_key(recipe, packages, trees) != image_key(recipe, packages, rebuilt)


def test_the_lock_wait_has_a_timeout(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with build_lock(lock, print):
        start = time.monotonic()
        with (
            pytest.raises(ImageError, match="another process still holds"),
            build_lock(lock, print, timeout=0.3),
        ):
            pass
        assert time.monotonic() - start < 2
