"""What a bootable image is: kernel, device tree, initrd and manifest; where images are cached."""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_thunder_container.errors import ImageError

DEFAULT_APPEND = "console=ttyAMA0"
ARTIFACT_ROLES = ("kernel", "dtb", "initrd")
KERNEL_NAMES = ("Image", "kernel8.img", "vmlinuz*")
DTB_NAMES = ("bcm2837-rpi-3-b*.dtb", "*.dtb")
INITRD_NAMES = ("initrd*", "*.cpio.gz", "rootfs.cpio*")
SKIPPED_NAMES = frozenset({"__pycache__", ".pytest_cache"})


@dataclass(frozen=True)
class Image:
    """A kernel, an initrd and (for raspi3b) a device tree, ready to boot."""

    directory: Path
    kernel: Path
    initrd: Path
    dtb: Path | None
    manifest: dict[str, Any] = field(default_factory=dict, compare=False)
    sha256: str = ""

    @property
    def name(self) -> str:
        return str(self.manifest.get("name") or self.directory.name)

    @property
    def login(self) -> tuple[str, str | None] | None:
        return manifest_login(self.manifest)

    @property
    def append(self) -> str:
        return str(self.manifest.get("append") or DEFAULT_APPEND)


def cache_dir() -> Path:
    """Where built images and fetched packages live: $THUNDER_CONTAINER_CACHE or ~/.cache."""
    configured = os.environ.get("THUNDER_CONTAINER_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "thunder-container"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def image_identity(artifact_hashes: Mapping[str, str]) -> str:
    """One hash naming an image: over its artifacts' hashes, in role order."""
    lines = "".join(f"{role}:{artifact_hashes[role]}\n" for role in sorted(artifact_hashes))
    return hashlib.sha256(lines.encode()).hexdigest()


def _pick(directory: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        found = sorted(p for p in directory.glob(pattern) if p.is_file())
        if found:
            return found[0]
    return None


def _from_manifest(directory: Path, manifest: dict[str, Any]) -> Image:
    artifacts = manifest.get("artifacts")
    if not isinstance(artifacts, dict) or "kernel" not in artifacts or "initrd" not in artifacts:
        raise ImageError(f"{directory / 'manifest.json'}: no kernel/initrd artifacts listed")
    paths = {role: directory / str(entry["file"]) for role, entry in artifacts.items()}
    return Image(
        directory=directory,
        kernel=paths["kernel"],
        initrd=paths["initrd"],
        dtb=paths.get("dtb"),
        manifest=manifest,
        sha256=str(manifest.get("image_sha256", "")),
    )


def load_image_dir(path: Path) -> Image:
    """The image in a directory: a built one (manifest.json) or a user's kernel+initrd(+dtb)."""
    directory = path.expanduser().resolve()
    if not directory.is_dir():
        raise ImageError(f"--thunder-image={path}: no such directory")
    manifest_path = directory / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError as error:
            raise ImageError(f"{manifest_path}: not valid JSON ({error})") from error
        return _from_manifest(directory, manifest)
    kernel = _pick(directory, KERNEL_NAMES)
    initrd = _pick(directory, INITRD_NAMES)
    missing = [
        f"{what} ({', '.join(names)})"
        for what, names, found in (
            ("a kernel", KERNEL_NAMES, kernel),
            ("an initrd", INITRD_NAMES, initrd),
        )
        if found is None
    ]
    if kernel is None or initrd is None:
        raise ImageError(
            f"--thunder-image={path}: {' and '.join(missing)} missing; "
            f"the directory must hold a kernel, an initrd and, for raspi3b, a device tree "
            f"({', '.join(DTB_NAMES)})"
        )
    dtb = _pick(directory, DTB_NAMES)
    hashes = {"kernel": sha256_file(kernel), "initrd": sha256_file(initrd)}
    if dtb is not None:
        hashes["dtb"] = sha256_file(dtb)
    return Image(directory, kernel, initrd, dtb, {}, image_identity(hashes))


def verify(image: Image) -> None:
    """Check every artifact against the manifest's size and sha256 (a no-op without one)."""
    artifacts = image.manifest.get("artifacts") or {}
    hashes: dict[str, str] = {}
    for role, entry in sorted(artifacts.items()):
        path = image.directory / str(entry["file"])
        if not path.is_file():
            raise ImageError(f"image {image.directory}: {entry['file']} is missing")
        size = path.stat().st_size
        digest = sha256_file(path) if size == entry.get("size") else "(size differs)"
        if digest != entry.get("sha256"):
            raise ImageError(
                f"image {image.directory}: {entry['file']} is corrupted "
                f"(sha256 {digest}, manifest says {entry.get('sha256')}); rebuild it with "
                f"`thunder-container image build {image.name} --rebuild`"
            )
        hashes[role] = digest
    if hashes and image.sha256 and image_identity(hashes) != image.sha256:
        raise ImageError(f"image {image.directory}: image_sha256 does not match its artifacts")


def recipes_root() -> Path:
    """The images/ folder: packaged as _images in a wheel, beside the package in a checkout."""
    here = Path(__file__).resolve().parents[1]
    for candidate in (here / "_images", here.parent / "images"):
        if candidate.is_dir():
            return candidate
    raise ImageError(f"no image recipes found beside {here} (expected images/ or _images/)")


def _files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if SKIPPED_NAMES.intersection(parts) or path.suffix == ".pyc":
            continue
        if path.is_symlink() or path.is_file():
            yield path


def tree_digest(roots: Mapping[str, Path]) -> str:
    """sha256 over the files (name, executable bit, contents or link target) under each root."""
    digest = hashlib.sha256()
    for label, root in sorted(roots.items()):
        for path in _files(root):
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                content = b"link:" + os.readlink(path).encode()
            else:
                content = path.read_bytes()
            mode = "x" if not path.is_symlink() and os.access(path, os.X_OK) else "-"
            digest.update(f"{label}/{rel}\0{mode}\0".encode())
            digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class PackageRule:
    """A package of the recipe and which of its files go into the image."""

    name: str
    keep: tuple[str, ...]
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Program:
    """A program of the recipe's own: a C source cross-compiled for the target into the root."""

    source: Path
    install: str  # relative to the root: "usr/bin/runc"


@dataclass(frozen=True)
class Recipe:
    """images/<name>/recipe.toml, parsed."""

    name: str
    directory: Path
    machines: tuple[str, ...]
    append: str
    login: tuple[str, str]
    compression: str
    trees: tuple[Path, ...]
    dirs: tuple[str, ...]
    kernel_package: str
    dtb: str
    dtb_delete_nodes: tuple[str, ...]
    rng_seed_bytes: int
    modules: tuple[str, ...]
    packages: tuple[PackageRule, ...]
    links: tuple[tuple[str, str], ...]
    perms: tuple[tuple[str, int], ...]
    python_lib: str
    python_must_import: tuple[str, ...]
    python_compile: tuple[str, ...]
    python_exclude: tuple[str, ...]
    # Real Thunder's API lines cross-built into the image (images/thunder/recipe.toml).
    thunder_lines: tuple[str, ...] = ()
    programs: tuple[Program, ...] = ()

    def sources(self) -> dict[str, Path]:
        """The folders whose contents define the image (the recipe and the trees it copies)."""
        roots = {self.name: self.directory}
        for tree in self.trees:
            if not tree.is_relative_to(self.directory):
                roots[os.path.relpath(tree, self.directory.parent)] = tree
        return roots


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImageError(f"{where}: `{key}` must be a list of strings")
    return tuple(value)


def _required(table: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ImageError(f"{where}: `{key}` is missing")
    return table[key]


def parse_recipe(path: Path) -> Recipe:
    """Read a recipe.toml; ImageError naming the file and the key when it is malformed."""
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ImageError(f"{where}: {error}") from error
    kernel = _required(data, "kernel", where)
    python = data.get("python", {})
    login = _required(data, "login", where)
    packages = []
    for index, rule in enumerate(data.get("packages", [])):
        rule_where = f"{where}: packages[{index}]"
        packages.append(
            PackageRule(
                name=str(_required(rule, "name", rule_where)),
                keep=_strings(rule, "keep", rule_where),
                drop=_strings(rule, "drop", rule_where),
            )
        )
    directory = path.parent
    programs = tuple(
        _program(rule, directory, f"{where}: programs[{index}]")
        for index, rule in enumerate(data.get("programs", []))
    )
    try:
        perms = tuple((key, int(value, 8)) for key, value in data.get("perms", {}).items())
    except (TypeError, ValueError) as error:
        raise ImageError(f'{where}: `perms` values must be octal strings like "0600"') from error
    return Recipe(
        name=str(_required(data, "name", where)),
        directory=directory,
        machines=_strings(data, "machines", where),
        append=str(_required(data, "append", where)),
        login=(str(_required(login, "user", where)), str(_required(login, "password", where))),
        compression=str(data.get("compression", "gzip-6")),
        trees=tuple((directory / tree).resolve() for tree in _strings(data, "trees", where)),
        dirs=_strings(data, "dirs", where),
        kernel_package=str(_required(kernel, "package", where)),
        dtb=str(_required(kernel, "dtb", where)),
        dtb_delete_nodes=_strings(kernel, "dtb_delete_nodes", where),
        rng_seed_bytes=int(kernel.get("rng_seed_bytes", 32)),
        modules=_strings(kernel, "modules", where),
        packages=tuple(packages),
        links=tuple((str(k), str(v)) for k, v in data.get("links", {}).items()),
        perms=perms,
        python_lib=str(python.get("lib", "usr/lib/python3.11")),
        python_must_import=_strings(python, "must_import", where),
        python_compile=_strings(python, "compile", where),
        python_exclude=_strings(python, "exclude", where),
        thunder_lines=_strings(data.get("thunder", {}), "lines", where),
        programs=programs,
    )


def _program(rule: Mapping[str, Any], directory: Path, where: str) -> Program:
    source = directory / str(_required(rule, "source", where))
    install = str(_required(rule, "install", where))
    if not source.is_file():
        raise ImageError(
            f"{where}: the source {source} does not exist (fix: `source` is relative "
            f"to {directory})"
        )
    if install.startswith("/") or ".." in Path(install).parts:
        raise ImageError(
            f"{where}: `install` must be a path inside the root, like "
            f'"usr/bin/name", not {install!r}'
        )
    return Program(source=source, install=install)


def load_recipe(name: str, root: Path | None = None) -> Recipe:
    """The recipe called `name` under images/; ImageError listing the known ones otherwise."""
    base = root or recipes_root()
    path = base / name / "recipe.toml"
    if not path.is_file():
        known = sorted(p.parent.name for p in base.glob("*/recipe.toml"))
        raise ImageError(f"no image recipe {name!r} in {base}; known: {', '.join(known) or 'none'}")
    return parse_recipe(path)


def manifest_login(manifest: dict[str, Any]) -> tuple[str, str | None] | None:
    """The console login an image's manifest records (user, password), if any."""
    login = manifest.get("login")
    if not login:
        return None
    return str(login["user"]), login.get("password")
