"""The reference image builder: follows images/<name>/recipe.toml into a cached, verified Image."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.apt import (
    AptSource,
    Package,
    PackageSource,
    dependency_named,
    extract,
    require_tools,
)
from pytest_thunder_container.image.cache_lock import build_lock, print_to_stderr
from pytest_thunder_container.image.initramfs import Entry, compress, tree_entries, write_newc
from pytest_thunder_container.image.model import (
    Image,
    Recipe,
    cache_dir,
    image_identity,
    load_image_dir,
    load_recipe,
    sha256_file,
    tree_digest,
    verify,
)
from pytest_thunder_container.image.programs import compile_programs, program_compiler
from pytest_thunder_container.image.rootfs import (
    DTB_FILE,
    KERNEL_FILE,
    check_python_imports,
    copy_tree,
    exclude_paths,
    install_kernel,
    precompile,
    select_files,
)
from pytest_thunder_container.image.thunder_build import ThunderTree, thunder_trees
from pytest_thunder_container.image.thunder_config import state_directories

BUILDER_VERSION = "2"
ARTIFACT_FILES = {"kernel": KERNEL_FILE, "dtb": DTB_FILE, "initrd": "initrd.img"}
DEVICE_NODES = (Entry.char_device("dev/console", 5, 1),)

Progress = Callable[[str], None]
Trees = Mapping[str, ThunderTree]
Build = Callable[[Recipe, Mapping[str, Package], PackageSource, str, Path, Progress, Trees], Path]
# Real Thunder's runtime tree per API line, cross-built into the cache when needed.
ThunderProvider = Callable[[Sequence[str], Progress], Trees]


def built_thunder(lines: Sequence[str], progress: Progress) -> Trees:
    return thunder_trees(lines, progress=progress)


def reference_image(
    name: str = "rpi3",
    *,
    progress: Progress = print_to_stderr,
    rebuild: bool = False,
    refresh: bool = False,
) -> Image:
    """The reference image `name` from the cache, built first when needed, always verified."""
    cache = cache_dir()
    source = AptSource(cache / "apt", progress)
    recipe = load_recipe(name)
    return ensure_image(recipe, cache, source, progress=progress, rebuild=rebuild, refresh=refresh)


def ensure_image(
    recipe: Recipe,
    cache: Path,
    source: PackageSource,
    *,
    progress: Progress,
    rebuild: bool = False,
    refresh: bool = False,
    build: Build | None = None,
    thunder: ThunderProvider = built_thunder,
) -> Image:
    """Find the image for this recipe and these package versions, or build it, under the lock."""
    images = cache / "images"
    images.mkdir(parents=True, exist_ok=True)
    # Thunder's own cache entries have their own lock: a build of minutes holds no image lock.
    trees = thunder(recipe.thunder_lines, progress) if recipe.thunder_lines else {}
    with build_lock(images / ".lock", progress):
        packages = resolve_packages(recipe, source, refresh=refresh)
        key = image_key(recipe, packages, trees)
        directory = images / f"{recipe.name}-{key[:12]}"
        if directory.exists() and not rebuild:
            try:
                image = load_image_dir(directory)
                verify(image)
                return image
            except ImageError as error:
                progress(f"[image] {error}")
                progress("[image] building it again")
        builder = build or build_image
        return _build_into(
            directory,
            lambda workdir: builder(recipe, packages, source, key, workdir, progress, trees),
            progress,
        )


def _build_into(directory: Path, build: Callable[[Path], Path], progress: Progress) -> Image:
    """Build in a temporary folder beside `directory`, then rename it into place."""
    for stale in directory.parent.glob(".build-*"):
        # Only a build that died leaves one: the lock is held, nobody else is building.
        shutil.rmtree(stale, ignore_errors=True)
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=".build-", dir=directory.parent))
    try:
        built = build(workdir)
        if directory.exists():
            directory.replace(workdir / "old")
        built.replace(directory)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    image = load_image_dir(directory)
    verify(image)
    progress(f"[image] {directory} ({time.monotonic() - start:.1f} s)")
    return image


def resolve_packages(
    recipe: Recipe, source: PackageSource, *, refresh: bool = False
) -> dict[str, Package]:
    """The packages to fetch, kernel first: the metapackage's dependency, then the recipe's."""
    names = [recipe.kernel_package, *(rule.name for rule in recipe.packages)]
    found = source.resolve(names, refresh=refresh)
    kernel_name = dependency_named(found[recipe.kernel_package].depends, "linux-image-")
    kernel = source.resolve([kernel_name])
    return {**kernel, **{rule.name: found[rule.name] for rule in recipe.packages}}


def image_key(recipe: Recipe, packages: Mapping[str, Package], trees: Trees | None = None) -> str:
    """sha256 over the builder version, the recipe's files, the packages and Thunder's trees."""
    digest = hashlib.sha256(f"builder {BUILDER_VERSION}\n".encode())
    digest.update(f"recipe {tree_digest(recipe.sources())}\n".encode())
    for name, package in sorted(packages.items()):
        digest.update(f"package {name} {package.version}\n".encode())
    for line, tree in sorted((trees or {}).items()):
        digest.update(f"thunder {line} {tree.manifest['tree_sha256']}\n".encode())
    if recipe.programs:  # their sources are recipe files: the compiler is what else counts
        digest.update(f"programs compiler {program_compiler()}\n".encode())
    return digest.hexdigest()


def build_image(
    recipe: Recipe,
    packages: Mapping[str, Package],
    source: PackageSource,
    key: str,
    workdir: Path,
    progress: Progress,
    thunder: Trees | None = None,
) -> Path:
    """Fetch, unpack and assemble the image in `workdir`; return the folder of its artifacts."""
    require_tools("dpkg-deb", "fdtput", "modinfo", "depmod")
    out, root, unpacked = workdir / "out", workdir / "root", workdir / "packages"
    out.mkdir()
    debs = source.fetch(list(packages.values()))
    start = time.monotonic()
    for name, deb in debs.items():
        extract(deb, unpacked / name)
    progress(f"[deb] unpacked {len(debs)} packages ({time.monotonic() - start:.1f} s)")

    start = time.monotonic()
    for folder in recipe.dirs:
        (root / folder).mkdir(parents=True, exist_ok=True)
    kept = sum(
        select_files(unpacked / rule.name, rule.keep, rule.drop, root) for rule in recipe.packages
    )
    removed = exclude_paths(root / recipe.python_lib, recipe.python_exclude)
    progress(f"[rootfs] {kept} files kept from {len(recipe.packages)} packages, {removed} excluded")
    kernel_name = next(name for name in packages if name.startswith("linux-image-"))
    kernel_version = install_kernel(recipe, unpacked / kernel_name, root, out, progress)
    for tree in recipe.trees:
        if tree.is_dir():
            progress(f"[rootfs] {copy_tree(tree, root)} entries from {tree}")
        else:
            progress(f"[rootfs] {tree} does not exist (yet): skipped")
    for line, tree in (thunder or {}).items():
        progress(f"[rootfs] {copy_tree(tree.root, root)} entries of real Thunder {line}")
        if "config" in tree.manifest:  # every built tree; fakes in tests may have none
            for folder in state_directories(tree.root / tree.manifest["config"]):
                (root / folder).mkdir(parents=True, exist_ok=True)
    for link, target in recipe.links:
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        (root / link).unlink(missing_ok=True)
        (root / link).symlink_to(target)
    compile_programs(recipe.programs, root, progress)
    if (root / recipe.python_lib).is_dir():  # only an image that ships Python
        check_python_imports(root, recipe, unpacked, progress)
        precompile(root, recipe, progress)
    progress(f"[rootfs] assembled ({time.monotonic() - start:.1f} s)")

    start = time.monotonic()
    entries = [*tree_entries(root, dict(recipe.perms)), *DEVICE_NODES]
    archive = io.BytesIO()
    size = write_newc(entries, archive)
    initrd = compress(archive.getvalue(), recipe.compression)
    (out / ARTIFACT_FILES["initrd"]).write_bytes(initrd)
    progress(
        f"[initramfs] {len(entries)} files, {size / 1e6:.1f} MB -> {len(initrd) / 1e6:.1f} MB "
        f"{recipe.compression} ({time.monotonic() - start:.1f} s)"
    )
    manifest = build_manifest(recipe, key, kernel_version, packages, out, thunder)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def build_manifest(
    recipe: Recipe,
    key: str,
    kernel_version: str,
    packages: Mapping[str, Package],
    out: Path,
    thunder: Trees | None = None,
) -> dict[str, Any]:
    """What the image is, how to boot and log in, and the checksum of every artifact."""
    artifacts = {
        role: {
            "file": file,
            "sha256": sha256_file(out / file),
            "size": (out / file).stat().st_size,
        }
        for role, file in ARTIFACT_FILES.items()
    }
    return {
        "name": recipe.name,
        "key": key,
        "recipe_sha256": tree_digest(recipe.sources()),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "kernel_version": kernel_version,
        "packages": {name: package.version for name, package in packages.items()},
        "artifacts": artifacts,
        "image_sha256": image_identity({r: a["sha256"] for r, a in artifacts.items()}),
        "login": {"user": recipe.login[0], "password": recipe.login[1]},
        "append": recipe.append,
        "machines": list(recipe.machines),
        "compression": recipe.compression,
        "builder_version": BUILDER_VERSION,
        "thunder": {line: thunder_facts(tree) for line, tree in (thunder or {}).items()},
    }


def thunder_facts(tree: ThunderTree) -> dict[str, Any]:
    """What the image says of one real Thunder line: version, sources, the build's checksum."""
    manifest = tree.manifest
    return {
        "version": manifest["version"],
        "daemon": manifest["daemon"],
        "build_sha256": manifest["tree_sha256"],
        "compiler": manifest["compiler"],
        "sources": {
            source["name"]: {key: source[key] for key in ("repository", "tag", "commit", "sha256")}
            for source in manifest["sources"]
        },
        "patches": [
            {"source": source["name"], **patch}
            for source in manifest["sources"]
            for patch in source.get("patches", [])
        ],
    }


def latest_built(name: str, cache: Path) -> Image:
    """The most recently built image of recipe `name` in the cache (no apt, no build)."""
    built = []
    for manifest in (cache / "images").glob(f"{name}-*/manifest.json"):
        try:
            built.append((json.loads(manifest.read_text()).get("built_at", ""), manifest.parent))
        except ValueError:
            continue
    if not built:
        raise ImageError(
            f"no built {name} image in {cache / 'images'}; "
            f"run `thunder-container image build {name}`"
        )
    return load_image_dir(max(built)[1])


def _build_command(args: argparse.Namespace) -> int:
    image = reference_image(args.name, rebuild=args.rebuild, refresh=args.refresh)
    print(image.directory)
    return 0


def _show_command(args: argparse.Namespace) -> int:
    image = latest_built(args.name, cache_dir())
    print(json.dumps(image.manifest, indent=2))
    print(image.directory)
    return 0


def add_arguments(subparsers: Any) -> None:
    """`thunder-container image build NAME` and `image show NAME`."""
    build = subparsers.add_parser(
        "build",
        help="build a reference image (or find it in the cache); prints its directory",
        description="Build the reference image NAME from images/NAME/recipe.toml, or find it in "
        "the cache ($THUNDER_CONTAINER_CACHE or ~/.cache/thunder-container). Progress goes to "
        "stderr; the last line on stdout is the image directory.",
    )
    build.add_argument("name", metavar="NAME", help="recipe name, e.g. rpi3")
    build.add_argument("--rebuild", action="store_true", help="build even if the cache has it")
    build.add_argument(
        "--refresh", action="store_true", help="update the package lists even if fresh"
    )
    build.set_defaults(func=_build_command)
    show = subparsers.add_parser(
        "show", help="print the manifest of the latest built image NAME, then its directory"
    )
    show.add_argument("name", metavar="NAME", help="recipe name, e.g. rpi3")
    show.set_defaults(func=_show_command)
