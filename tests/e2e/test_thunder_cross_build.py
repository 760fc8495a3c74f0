"""Real Thunder cross-built for both lines (slow on a cold cache: minutes per line)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_thunder_container.image.thunder_build import ThunderTree, collisions, thunder_trees
from pytest_thunder_container.image.thunder_steps import host_snapshot

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("aarch64-linux-gnu-g++", "cmake", "ninja")),
        reason="no arm64 cross toolchain (g++-aarch64-linux-gnu, cmake, ninja-build)",
    ),
]
EM_AARCH64 = 183
# glibc's own libraries, the C++ runtime, zlib and OpenSSL (ClearKey): nothing else from outside.
SYSTEM_LIBS = {
    "libc.so.6",
    "libm.so.6",
    "ld-linux-aarch64.so.1",
    "libstdc++.so.6",
    "libgcc_s.so.1",
    "libz.so.1",
    "libssl.so.3",
    "libcrypto.so.3",
}


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, ThunderTree], dict[str, int], dict[str, int]]:
    before = host_snapshot(["/usr/include"], depth=3)
    trees = thunder_trees(("R5", "R4.4"))
    return trees, before, host_snapshot(["/usr/include"], depth=3)


def _elves(root: Path) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF"
    ]


def _needed(path: Path) -> set[str]:
    out = subprocess.run(
        ["aarch64-linux-gnu-readelf", "-d", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return {line.split("[")[1].split("]")[0] for line in out.splitlines() if "(NEEDED)" in line}


@pytest.mark.parametrize("line", ["R5", "R4.4"])
def test_every_binary_is_arm64_and_needs_only_known_libraries(built, line: str) -> None:
    tree = built[0][line]
    own = {path.name for path in tree.root.rglob("*.so*")}
    for path in _elves(tree.root):
        machine = int.from_bytes(path.read_bytes()[18:20], "little")
        assert machine == EM_AARCH64, path
        assert _needed(path) <= SYSTEM_LIBS | own, (path, _needed(path) - SYSTEM_LIBS - own)


@pytest.mark.parametrize("line", ["R5", "R4.4"])
def test_daemon_ocdm_clearkey_and_containers_are_there(built, line: str) -> None:
    tree = built[0][line]
    manifest = tree.manifest
    assert (tree.root / manifest["daemon"]).is_file()
    assert list(tree.root.glob("usr/share/*/OCDM/*ClearKey.drm")), "no ClearKey.drm"
    assert list(tree.root.glob("usr/lib/*/plugins/*OCDM.so")), "no OCDM plugin"
    assert list(tree.root.glob("usr/lib/*/plugins/*Containers.so")), "no Containers plugin"
    assert manifest["settings"]["OCDM"]["systems"] == ["ClearKey"]
    assert manifest["settings"]["Containers"]["startmode"] == "Deactivated"


def test_host_include_folder_untouched(built) -> None:
    _, before, after = built
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, changed


def test_both_trees_fit_one_image_root(built) -> None:
    trees = built[0]
    assert collisions(trees["R5"].root, trees["R4.4"].root) == []
