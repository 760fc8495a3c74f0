"""The real-Thunder builder, no build: recipe, mirror, cache key, lock, manifest, host check."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ImageError, ThunderContainerError
from pytest_thunder_container.image import thunder_build, thunder_sources
from pytest_thunder_container.image.thunder_build import (
    build_into,
    build_manifest,
    cache_key,
    check_entry,
    collisions,
    relative_links,
    thunder_tree,
)
from pytest_thunder_container.image.thunder_config import configure_tree
from pytest_thunder_container.image.thunder_sources import (
    MirrorError,
    load_thunder_recipe,
    locate,
    mirror_dir,
)
from pytest_thunder_container.image.thunder_steps import host_changes, toolchain_file

RECIPE = load_thunder_recipe()
SHARED_MIRROR = Path(__file__).resolve().parents[3] / "shared" / "mirror" / "thunder"


def test_recipe_has_both_lines_in_build_order() -> None:
    order = [
        "ThunderTools",
        "Thunder",
        "ThunderInterfaces",
        "ThunderNanoServicesRDK",
        "OCDM-Clearkey",
        "ThunderNanoServices",
    ]
    assert [step.name for step in RECIPE.line("R5").steps] == order
    assert [step.name for step in RECIPE.line("R4.4").steps] == order
    assert RECIPE.line("R4.4").version == "4.4.7"
    assert RECIPE.line("R5").daemon == "usr/bin/Thunder"
    assert RECIPE.line("R4.4").steps[0].host


def test_recipe_options_are_the_issue_s() -> None:
    thunder = RECIPE.line("R5").steps[1]
    assert "-DPROCESSCONTAINERS_RUNC=ON" in thunder.options
    assert "-DPORT=80" in thunder.options
    assert RECIPE.line("R4.4").steps[5].options == ("-DPLUGIN_PROCESSCONTAINERS=ON",)


@pytest.mark.skipif(not (SHARED_MIRROR / "SHA256SUMS").exists(), reason="no shared mirror")
def test_recipe_sha256s_are_the_mirror_s() -> None:
    sums = dict(
        reversed(line.split()) for line in (SHARED_MIRROR / "SHA256SUMS").read_text().splitlines()
    )
    for line in RECIPE.lines.values():
        for step in line.steps:
            assert sums[step.archive] == step.sha256, step.archive


def test_unknown_line_names_the_known_ones() -> None:
    with pytest.raises(ImageError, match=r"known: R5, R4\.4"):
        RECIPE.line("R2")


def test_bad_sha256_in_recipe_names_the_step(tmp_path: Path) -> None:
    text = RECIPE.path.read_text().replace(RECIPE.line("R5").steps[1].sha256, "c0ffee", 1)
    (tmp_path / "recipe.toml").write_text(text)
    with pytest.raises(ImageError, match=r"step Thunder: sha256 'c0ffee' is not 64"):
        load_thunder_recipe(tmp_path / "recipe.toml")


def test_missing_archive_says_what_where_and_which_sha256(tmp_path: Path) -> None:
    step = RECIPE.line("R5").steps[1]
    with pytest.raises(MirrorError) as caught:
        locate(step, tmp_path)
    message = str(caught.value)
    assert "Thunder-R5.3.0.tar.gz is missing" in message
    assert step.sha256 in message
    assert str(tmp_path / "Thunder-R5.3.0.tar.gz") in message
    assert step.commit in message
    assert isinstance(caught.value, ThunderContainerError)


def test_corrupted_archive_gives_both_sha256s(tmp_path: Path) -> None:
    step = RECIPE.line("R4.4").steps[4]
    (tmp_path / step.archive).write_bytes(b"not a tarball")
    with pytest.raises(MirrorError) as caught:
        locate(step, tmp_path)
    assert hashlib.sha256(b"not a tarball").hexdigest() in str(caught.value)
    assert f"expected {step.sha256}" in str(caught.value)


def test_mirror_from_argument_then_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(thunder_sources.MIRROR_ENV, str(tmp_path / "env"))
    assert mirror_dir(tmp_path / "arg") == tmp_path / "arg"
    assert mirror_dir() == tmp_path / "env"


def test_cache_key_follows_its_line_the_common_settings_sources_and_compiler(
    tmp_path: Path,
) -> None:
    line = RECIPE.line("R5")
    base = cache_key(RECIPE, line, "gcc 12")
    assert cache_key(RECIPE, line, "gcc 13") != base
    assert cache_key(RECIPE, RECIPE.line("R4.4"), "gcc 12") != base
    (tmp_path / "recipe.toml").write_text(RECIPE.path.read_text() + "\n# a comment\n")
    commented = load_thunder_recipe(tmp_path / "recipe.toml")
    assert cache_key(commented, commented.line("R5"), "gcc 12") == base
    text = RECIPE.path.read_text()
    r44 = text.replace('version = "4.4.7"', 'version = "4.4.8"')
    (tmp_path / "recipe.toml").write_text(r44)
    other_line = load_thunder_recipe(tmp_path / "recipe.toml")
    assert cache_key(other_line, other_line.line("R5"), "gcc 12") == base  # R4.4 only
    assert cache_key(other_line, other_line.line("R4.4"), "gcc 12") != cache_key(
        RECIPE, RECIPE.line("R4.4"), "gcc 12"
    )
    (tmp_path / "recipe.toml").write_text(text.replace('"-DPORT=80"', '"-DPORT=8080"', 1))
    edited = load_thunder_recipe(tmp_path / "recipe.toml")
    assert cache_key(edited, edited.line("R5"), "gcc 12") != base
    common = text.replace('"-DCMAKE_BUILD_TYPE=MinSizeRel"', '"-DCMAKE_BUILD_TYPE=Release"')
    (tmp_path / "recipe.toml").write_text(common)
    shared = load_thunder_recipe(tmp_path / "recipe.toml")
    assert cache_key(shared, shared.line("R5"), "gcc 12") != base
    other = RECIPE.path.read_text().replace(line.steps[2].sha256, "0" * 64)
    (tmp_path / "recipe.toml").write_text(other)
    resourced = load_thunder_recipe(tmp_path / "recipe.toml")
    assert cache_key(resourced, resourced.line("R5"), "gcc 12") not in (base,)


def test_failed_build_leaves_no_entry_and_old_one_survives(tmp_path: Path) -> None:
    entry = tmp_path / "R5-abc"
    entry.mkdir()
    (entry / "old").write_text("previous")

    def broken(work: Path) -> Path:
        (work / "half").mkdir()
        raise ImageError("compiler died")

    with pytest.raises(ImageError, match="compiler died"):
        build_into(entry, broken)
    assert (entry / "old").read_text() == "previous"
    assert not list(tmp_path.glob(".build-*"))


def test_build_replaces_the_entry_in_one_rename(tmp_path: Path) -> None:
    entry = tmp_path / "R5-abc"
    (tmp_path / ".build-R5-abc-stale").mkdir()

    def good(work: Path) -> Path:
        (work / "out").mkdir()
        (work / "out" / "new").write_text("new")
        return work / "out"

    build_into(entry, good)
    assert (entry / "new").read_text() == "new"
    assert not list(tmp_path.glob(".build-*"))


def _fake_line_build(calls: list[str]):
    def build_line(recipe, line, archives, key, workdir, progress):
        calls.append(line.name)
        out = workdir / "out"
        (out / "root" / "usr" / "bin").mkdir(parents=True)
        (out / "root" / "usr" / "bin" / "Thunder").write_text("elf")
        time.sleep(0.2)
        tree = thunder_build.tree_digest({"root": out / "root"})
        (out / "manifest.json").write_text(json.dumps({"key": key, "tree_sha256": tree}))
        return out

    return build_line


@pytest.fixture
def fake_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(thunder_build, "build_line", _fake_line_build(calls))
    monkeypatch.setattr(thunder_build, "compiler_version", lambda: "aarch64 g++ 12")
    monkeypatch.setattr(thunder_build, "locate", lambda step, mirror: mirror / step.archive)
    monkeypatch.setenv(thunder_sources.MIRROR_ENV, str(tmp_path / "mirror"))
    return calls


def test_cache_is_reused_and_a_corrupted_entry_rebuilt(
    tmp_path: Path, fake_build: list[str]
) -> None:
    first = thunder_tree("R5", cache=tmp_path, progress=lambda _: None)
    again = thunder_tree("R5", cache=tmp_path, progress=lambda _: None)
    assert fake_build == ["R5"]
    assert again.directory == first.directory
    assert first.directory.parent == tmp_path / "thunder"
    assert first.directory.name.startswith("R5-")
    (first.root / "usr" / "bin" / "Thunder").write_text("tampered")
    notes: list[str] = []
    thunder_tree("R5", cache=tmp_path, progress=notes.append)
    assert fake_build == ["R5", "R5"]
    assert any("does not match its manifest" in note for note in notes)


def test_parallel_sessions_build_once(tmp_path: Path, fake_build: list[str]) -> None:
    results: list[Path] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(
                thunder_tree("R4.4", cache=tmp_path, progress=lambda _: None).root
            )
        )
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert fake_build == ["R4.4"]
    assert len(set(results)) == 1


def test_check_entry_reasons(tmp_path: Path) -> None:
    assert "no readable manifest" in (check_entry(tmp_path, "k") or "")
    (tmp_path / "manifest.json").write_text(json.dumps({"key": "other"}))
    assert "other inputs" in (check_entry(tmp_path, "k") or "")


def test_manifest_names_sources_compiler_sizes_and_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(thunder_build, "compiler_version", lambda: "aarch64-linux-gnu-g++ 12.2.0")
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "Thunder").write_bytes(b"x" * 100)
    line = RECIPE.line("R5")
    manifest = build_manifest(
        RECIPE, line, "key1", {}, root, {"Thunder": {"build": 41.0}}, {"global": {"port": 80}}
    )
    assert manifest["version"] == "5.3.0"
    assert manifest["compiler"] == "aarch64-linux-gnu-g++ 12.2.0"
    assert manifest["sources"][1]["commit"] == line.steps[1].commit
    assert manifest["sources"][1]["sha256"] == line.steps[1].sha256
    assert manifest["size_bytes"] == 100
    assert manifest["step_seconds"]["Thunder"]["build"] == 41.0
    assert manifest["tree_sha256"] == thunder_build.tree_digest({"root": root})


def test_toolchain_never_takes_programs_from_the_sysroot(tmp_path: Path) -> None:
    text = toolchain_file(tmp_path)
    assert "CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER" in text
    for kind in ("LIBRARY", "INCLUDE", "PACKAGE"):
        assert f"CMAKE_FIND_ROOT_PATH_MODE_{kind} ONLY" in text
    assert f'set(CMAKE_SYSROOT "{tmp_path}")' in text


def test_host_change_outside_staging_is_ignored_inside_is_reported(tmp_path: Path) -> None:
    (tmp_path / "usr" / "include" / "Thunder").mkdir(parents=True)
    before = {"/usr/include/stdio.h": 1}
    after = {"/usr/include/stdio.h": 1, "/usr/include/Thunder": 5, "/usr/include/newlib": 5}
    assert host_changes(before, after, tmp_path) == ["/usr/include/Thunder"]


def test_absolute_symlink_made_relative(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libz.so.1").write_text("z")
    (tmp_path / "usr" / "lib").mkdir(parents=True)
    (tmp_path / "usr" / "lib" / "libz.so").symlink_to("/lib/libz.so.1")
    assert relative_links(tmp_path) == 1
    assert (tmp_path / "usr" / "lib" / "libz.so").read_text() == "z"


def test_configs_get_port_binding_communicator_and_clearkey_checked(tmp_path: Path) -> None:
    line = RECIPE.line("R5")
    plugins = tmp_path / line.plugin_configs
    plugins.mkdir(parents=True)
    (tmp_path / line.config).write_text(json.dumps({"port": 9998}))
    ocdm = {"locator": "libThunderOCDM.so", "startmode": "Activated", "configuration": {}}
    ocdm["configuration"]["systems"] = [{"name": "ClearKey"}]
    (plugins / "OCDM.json").write_text(json.dumps(ocdm))
    (plugins / "Containers.json").write_text(json.dumps({"startmode": "Deactivated"}))
    settings = configure_tree(tmp_path, line)
    config = json.loads((tmp_path / line.config).read_text())
    assert config["port"] == 80 and config["binding"] == "0.0.0.0"
    assert config["processcontainers"] == {"default": "runc"}
    assert settings["OCDM"]["root.mode"] == "Local"
    assert settings["Containers"]["startmode"] == "Deactivated"
    ocdm["configuration"]["systems"] = []
    (plugins / "OCDM.json").write_text(json.dumps(ocdm))
    with pytest.raises(ImageError, match="lists no ClearKey system"):
        configure_tree(tmp_path, line)


def test_collisions_are_paths_with_different_contents(tmp_path: Path) -> None:
    for tree, drm in (("r5", "a"), ("r44", "b")):
        (tmp_path / tree / "lib").mkdir(parents=True)
        (tmp_path / tree / "lib" / "libz.so.1").write_text("same")
        (tmp_path / tree / "lib" / "libocdm.so").write_text(drm)
    assert collisions(tmp_path / "r5", tmp_path / "r44") == ["lib/libocdm.so"]
