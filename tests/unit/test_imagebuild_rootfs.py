"""Assembling the root tree: file selection, the device tree patch, Python checks, and a whole
build from small fake .debs (real dpkg-deb, fdtput, depmod and cpio; no network, no kernel)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.apt import Package
from pytest_thunder_container.image.build import build_image
from pytest_thunder_container.image.model import PackageRule, Recipe, load_recipe
from pytest_thunder_container.image.rootfs import (
    check_python_imports,
    copy_tree,
    patch_dtb,
    precompile,
    select_files,
    stdlib_imports,
)
from pytest_thunder_container.image.thunder_build import ThunderTree

KVER = "6.1.0-99-arm64"
DTS = """/dts-v1/;
/ {
    model = "Raspberry Pi 3 Model B";
    chosen { };
    soc { serial@7e201000 { compatible = "arm,pl011"; bluetooth { compatible = "bt"; }; }; };
};
"""
needs = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("dtc", "fdtput", "fdtget", "dpkg-deb", "depmod", "cpio")),
    reason="needs device-tree-compiler, dpkg, kmod and cpio on the host",
)


def _files(root: Path, names: dict[str, bytes]) -> Path:
    for name, data in names.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _dtb(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["dtc", "-I", "dts", "-O", "dtb", "-o", str(path)],
        input=DTS.encode(),
        check=True,
        capture_output=True,
    )
    return path


def _deb(workdir: Path, name: str, files: dict[str, bytes]) -> Path:
    root = _files(workdir / name, files)
    control = f"Package: {name}\nVersion: 1.0\nArchitecture: arm64\nMaintainer: t <t@t>\n"
    _files(root, {"DEBIAN/control": (control + "Description: test\n").encode()})
    deb = workdir / f"{name}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


class DebSource:
    """Serves .debs built on the spot instead of downloading."""

    def __init__(self, debs: dict[str, Path]) -> None:
        self.debs = debs

    def resolve(self, names: Sequence[str], *, refresh: bool = False) -> dict[str, Package]:
        return {name: Package(name, "1.0", "", 0) for name in names}

    def fetch(self, packages: Sequence[Package]) -> dict[str, Path]:
        return {package.name: self.debs[package.name] for package in packages}


def test_select_files_keeps_and_drops_whole_folders(tmp_path: Path) -> None:
    package = _files(
        tmp_path / "pkg",
        {
            "usr/lib/py/json/__init__.py": b"",
            "usr/lib/py/test/t.py": b"",
            "usr/lib/py/os.py": b"",
            "usr/share/doc/x": b"",
        },
    )
    (package / "usr/lib/py/link.py").symlink_to("os.py")
    dest = tmp_path / "root"
    count = select_files(package, ["usr/lib/py"], ["usr/lib/py/test"], dest)
    assert count == 3
    assert (dest / "usr/lib/py/json/__init__.py").exists()
    assert not (dest / "usr/lib/py/test").exists() and not (dest / "usr/share").exists()
    assert os.readlink(dest / "usr/lib/py/link.py") == "os.py"


def test_copy_tree_leaves_bytecode_caches_behind(tmp_path: Path) -> None:
    tree = _files(tmp_path / "tree", {"a/m.py": b"", "a/__pycache__/m.cpython-311.pyc": b""})
    copy_tree(tree, tmp_path / "root")
    assert (tmp_path / "root/a/m.py").exists()
    assert not (tmp_path / "root/a/__pycache__").exists()


@needs
def test_patch_dtb_frees_the_uart_and_seeds_the_rng(tmp_path: Path) -> None:
    dtb = _dtb(tmp_path / "board.dtb")
    patch_dtb(dtb, ["/soc/serial@7e201000/bluetooth"], 32)
    nodes = subprocess.run(
        ["fdtget", "-l", str(dtb), "/soc/serial@7e201000"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "bluetooth" not in nodes
    seed = subprocess.run(
        ["fdtget", "-t", "bx", str(dtb), "/chosen", "rng-seed"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(seed) == 32


def test_stdlib_imports_of_modules_and_python_scripts(tmp_path: Path) -> None:
    tree = _files(
        tmp_path / "tree",
        {
            "usr/lib/app/m.py": b"import json, os.path\nfrom http import server\nfrom . import x\n",
            "usr/bin/tool": b"#!/usr/bin/python3\nimport socketserver\nimport refthunder\n",
            "etc/init.d/S50": b"#!/bin/sh\nimport nothing\n",
        },
    )
    assert stdlib_imports([tree]) == {"json", "os.path", "http", "socketserver"}


def test_a_missing_stdlib_module_fails_the_build_naming_it(tmp_path: Path) -> None:
    lib = _files(tmp_path / "root" / "usr/lib/python3.11", {"json/__init__.py": b""})
    tree = _files(tmp_path / "tree", {"app.py": b"import json\nimport xmlrpc.client\n"})
    recipe = replace(load_recipe("rpi3"), trees=(tree,), python_must_import=())
    if shutil.which("python3.11") is None and not os.path.exists("/usr/bin/python3.11"):
        pytest.skip("no python3.11 on the host")
    with pytest.raises(ImageError, match=r"xmlrpc.client: ModuleNotFoundError"):
        check_python_imports(lib.parents[2], recipe, tmp_path / "tree", lambda _: None)
    assert not list(lib.rglob("*.pyc")), "the check must not leave timestamp-based bytecode"


@needs
def test_whole_build_from_fake_packages(tmp_path: Path) -> None:
    debs = {
        "linux-image-6.1.0-99-arm64": _deb(
            tmp_path / "debs",
            "linux-image-6.1.0-99-arm64",
            {
                f"boot/vmlinuz-{KVER}": b"kernel image",
                f"lib/modules/{KVER}/modules.order": b"",
                f"lib/modules/{KVER}/modules.builtin": b"",
                f"usr/lib/linux-image-{KVER}/broadcom/bcm2837-rpi-3-b.dtb": _dtb(
                    tmp_path / "dtb" / "x.dtb"
                ).read_bytes(),
            },
        ),
        "busybox-static": _deb(
            tmp_path / "debs",
            "busybox-static",
            {
                "bin/busybox": b"#!/bin/sh\n",
                "usr/share/man/busybox.1.gz": b"",
            },
        ),
    }
    overlay = _files(
        tmp_path / "recipe" / "overlay",
        {"init": b"#!/bin/busybox sh\n", "etc/shadow": b"root:x:\n"},
    )
    (overlay / "init").chmod(0o755)
    recipe = replace(
        load_recipe("rpi3"),
        directory=tmp_path / "recipe",
        modules=(),
        trees=(overlay, tmp_path / "missing-tree"),
        python_must_import=(),
        python_compile=(),
        packages=(PackageRule("busybox-static", ("bin/busybox",)),),
        compression="gzip-1",
    )
    packages = {name: Package(name, "1.0", "", 0) for name in debs}
    messages: list[str] = []
    workdir = tmp_path / "work"
    workdir.mkdir()
    thunder_dir = tmp_path / "thunder-R5"
    (thunder_dir / "root/usr/bin").mkdir(parents=True)
    (thunder_dir / "root/usr/bin/Thunder").write_bytes(b"\x7fELF daemon")
    (thunder_dir / "root/etc/Thunder").mkdir(parents=True)
    (thunder_dir / "root/etc/Thunder/config.json").write_text('{"persistentpath": "/var/Thunder/"}')
    manifest = {
        "version": "5.3.0",
        "daemon": "usr/bin/Thunder",
        "config": "etc/Thunder/config.json",
        "tree_sha256": "e" * 64,
        "compiler": "g++",
        "sources": [],
    }
    thunder = {"R5": ThunderTree("R5", thunder_dir, manifest)}
    out = build_image(
        recipe, packages, DebSource(debs), "k" * 64, workdir, messages.append, thunder
    )

    assert (out / "Image").read_bytes() == b"kernel image"
    listing = subprocess.run(
        ["cpio", "-t", "-v", "--quiet"],
        input=gzip.decompress((out / "initrd.img").read_bytes()),
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = {
        line.split()[-1] if "->" not in line else line.split()[-3] for line in listing.splitlines()
    }
    assert {
        "init",
        "bin/busybox",
        "dev/console",
        "etc/shadow",
        "usr/bin/python3",
        f"lib/modules/{KVER}/modules.dep",
        "tmp",
        "newroot",
        "usr/bin/Thunder",
        "var/Thunder",  # the persistent path OCDM's storage is made in
    } <= names
    assert "usr/share/man/busybox.1.gz" not in names
    shadow = next(line for line in listing.splitlines() if line.endswith("etc/shadow"))
    assert shadow.startswith("-rw-------")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kernel_version"] == KVER
    assert manifest["artifacts"]["initrd"]["file"] == "initrd.img"
    assert manifest["thunder"]["R5"]["version"] == "5.3.0"
    assert any("missing-tree does not exist" in m for m in messages)
    assert any(m.startswith("[initramfs] ") and "gzip-1" in m for m in messages)


def test_missing_host_tools_stop_the_build_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    recipe: Recipe = load_recipe("rpi3")
    with pytest.raises(ImageError, match="apt-get install --no-install-recommends device-tree"):
        build_image(recipe, {}, DebSource({}), "k", tmp_path, lambda _: None)


@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="precompiles only with python 3.11")
def test_precompiled_bytecode_is_unchecked_and_reproducible(tmp_path: Path) -> None:
    source = b"TABLE = {'a', 'b', 'c'}\ndef f(x):\n    return x in {'x', 'y'}\n"
    recipe = replace(load_recipe("rpi3"), python_compile=("usr/lib/app",))
    results = []
    for run in ("one", "two"):
        root = _files(tmp_path / run, {"usr/lib/app/m.py": source})
        precompile(root, recipe, lambda _: None)
        results.append((root / "usr/lib/app/__pycache__/m.cpython-311.pyc").read_bytes())
    assert results[0] == results[1]
    # PEP 552 flags word: 0b01 = hash-based, not checked against the source (mtimes are 0).
    assert int.from_bytes(results[0][4:8], "little") == 0b01


def test_a_host_python_other_than_311_skips_precompiling_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "version_info", (3, 12, 0, "final", 0))
    root = _files(tmp_path / "root", {"usr/lib/python3.11/m.py": b""})
    messages: list[str] = []
    precompile(root, load_recipe("rpi3"), messages.append)
    assert not list(root.rglob("*.pyc"))
    assert any("warning" in m and "not 3.11" in m for m in messages)
