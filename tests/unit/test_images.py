"""The image model: user image folders, manifests and their verification, recipes, the cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.model import (
    Image,
    cache_dir,
    image_identity,
    load_image_dir,
    load_recipe,
    parse_recipe,
    recipes_root,
    sha256_file,
    tree_digest,
    verify,
)


def _write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _built_image(directory: Path) -> Path:
    files = {"kernel": "Image", "dtb": "board.dtb", "initrd": "initrd.img"}
    artifacts = {}
    for role, name in files.items():
        path = _write(directory / name, f"{role} bytes".encode())
        artifacts[role] = {"file": name, "sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = {
        "name": "rpi3",
        "artifacts": artifacts,
        "image_sha256": image_identity({r: a["sha256"] for r, a in artifacts.items()}),
        "login": {"user": "root", "password": "thunder"},
        "append": "console=ttyAMA0 rdinit=/init",
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("THUNDER_CONTAINER_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("THUNDER_CONTAINER_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "thunder-container"


def test_user_dir_with_pi_firmware_names(tmp_path: Path) -> None:
    _write(tmp_path / "kernel8.img")
    _write(tmp_path / "rootfs.cpio.gz")
    _write(tmp_path / "bcm2710-rpi-3-b.dtb")
    _write(tmp_path / "bcm2837-rpi-3-b-plus.dtb")
    image = load_image_dir(tmp_path)
    assert image.kernel.name == "kernel8.img"
    assert image.initrd.name == "rootfs.cpio.gz"
    assert image.dtb is not None and image.dtb.name == "bcm2837-rpi-3-b-plus.dtb"
    assert image.manifest == {} and image.login is None
    assert image.append == "console=ttyAMA0"
    assert len(image.sha256) == 64


def test_user_dir_for_virt_needs_no_dtb(tmp_path: Path) -> None:
    _write(tmp_path / "vmlinuz-6.1.0-arm64")
    _write(tmp_path / "initrd.img-6.1.0-arm64")
    image = load_image_dir(tmp_path)
    assert image.dtb is None
    assert image.kernel.name.startswith("vmlinuz") and image.initrd.name.startswith("initrd")


def test_identity_of_a_user_dir_changes_with_its_files(tmp_path: Path) -> None:
    _write(tmp_path / "Image", b"one")
    _write(tmp_path / "initrd.gz", b"two")
    before = load_image_dir(tmp_path).sha256
    _write(tmp_path / "Image", b"three")
    assert load_image_dir(tmp_path).sha256 != before


def test_missing_kernel_and_initrd_are_both_named(tmp_path: Path) -> None:
    _write(tmp_path / "board.dtb")
    with pytest.raises(ImageError) as error:
        load_image_dir(tmp_path)
    message = str(error.value)
    assert "a kernel (Image, kernel8.img, vmlinuz*)" in message
    assert "an initrd (initrd*, *.cpio.gz, rootfs.cpio*)" in message


def test_missing_initrd_only(tmp_path: Path) -> None:
    _write(tmp_path / "Image")
    with pytest.raises(ImageError, match=r"an initrd .* missing") as error:
        load_image_dir(tmp_path)
    assert "kernel (" not in str(error.value)


def test_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such directory"):
        load_image_dir(tmp_path / "nope")


def test_built_image_comes_from_its_manifest(tmp_path: Path) -> None:
    image = load_image_dir(_built_image(tmp_path))
    assert isinstance(image, Image)
    assert image.name == "rpi3"
    assert image.login == ("root", "thunder")
    assert image.append == "console=ttyAMA0 rdinit=/init"
    assert image.dtb == tmp_path / "board.dtb"
    assert image.sha256 == image.manifest["image_sha256"]
    verify(image)


def test_verify_detects_a_corrupted_artifact_of_the_same_size(tmp_path: Path) -> None:
    image = load_image_dir(_built_image(tmp_path))
    data = bytearray(image.initrd.read_bytes())
    data[0] ^= 0xFF
    image.initrd.write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"initrd.img is corrupted"):
        verify(image)


def test_verify_detects_a_missing_artifact(tmp_path: Path) -> None:
    image = load_image_dir(_built_image(tmp_path))
    image.kernel.unlink()
    with pytest.raises(ImageError, match="Image is missing"):
        verify(image)


def test_a_broken_manifest_is_reported(tmp_path: Path) -> None:
    _write(tmp_path / "manifest.json", b"{not json")
    with pytest.raises(ImageError, match="not valid JSON"):
        load_image_dir(tmp_path)


def test_the_rpi3_recipe_parses() -> None:
    recipe = load_recipe("rpi3")
    assert recipe.name == "rpi3"
    assert recipe.kernel_package == "linux-image-arm64"
    assert recipe.login == ("root", "thunder-ref-5Kq")
    assert "rdinit=/init" in recipe.append
    names = {rule.name for rule in recipe.packages}
    assert {"busybox-static", "runc", "libc6"} <= names
    # Python was there for the retired stand-in of Thunder only: a vendor image promises none.
    assert not any(name.startswith(("python", "libpython")) for name in names)
    assert {"phy-generic", "dwc2", "cdc_ether", "virtio_net"} <= set(recipe.modules)
    assert dict(recipe.perms)["etc/shadow"] == 0o600
    assert recipe.trees[-1] == recipes_root() / "thunder" / "overlay"
    assert recipe.thunder_lines == ("R5", "R4.4")
    # Thunder's /usr/bin/runc runs runc from the sealed copy made at boot (src/).
    installs = {program.install: program.source.name for program in recipe.programs}
    assert installs == {
        "usr/bin/runc": "runc-launcher.c",
        "usr/libexec/runc-sealed-copy": "runc-sealed-copy.c",
    }


def test_an_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(ImageError, match=r"no image recipe 'rpi4'.*known: .*rpi3"):
        load_recipe("rpi4")


def test_a_malformed_recipe_names_the_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "x" / "recipe.toml", b'name = "x"\nappend = ""\n')
    with pytest.raises(ImageError, match=r"recipe.toml: `kernel` is missing"):
        parse_recipe(path)
    path.write_text('name = "x"\n[[packages]\n')
    with pytest.raises(ImageError, match=str(path)):
        parse_recipe(path)


def test_a_program_whose_source_is_missing_or_installs_outside_the_root_is_named(
    tmp_path: Path,
) -> None:
    whole = (recipes_root() / "rpi3" / "recipe.toml").read_text()
    base = whole[: whole.index("[[programs]]")]  # the rpi3 recipe without its own programs
    path = tmp_path / "x" / "recipe.toml"
    _write(path, (base + '[[programs]]\nsource = "src/none.c"\ninstall = "usr/bin/x"\n').encode())
    with pytest.raises(ImageError, match=r"programs\[0\]: the source .*src/none.c does not exist"):
        parse_recipe(path)
    _write(tmp_path / "x" / "src" / "ok.c", b"int main(void) { return 0; }\n")
    path.write_text(base + '[[programs]]\nsource = "src/ok.c"\ninstall = "/usr/bin/x"\n')
    with pytest.raises(ImageError, match=r"`install` must be a path inside the root"):
        parse_recipe(path)


def test_tree_digest_ignores_bytecode_but_sees_contents_and_modes(tmp_path: Path) -> None:
    script = _write(tmp_path / "tree" / "run.sh", b"echo hi\n")
    before = tree_digest({"t": tmp_path / "tree"})
    _write(tmp_path / "tree" / "__pycache__" / "m.cpython-311.pyc")
    assert tree_digest({"t": tmp_path / "tree"}) == before
    script.chmod(0o755)
    after_chmod = tree_digest({"t": tmp_path / "tree"})
    assert after_chmod != before
    script.write_bytes(b"echo ho\n")
    assert tree_digest({"t": tmp_path / "tree"}) != after_chmod
