"""Real Thunder for arm64, one cached runtime tree per API line: cache, build, stage, manifest."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ImageError
from .apt import AptSource, extract
from .cache_lock import build_lock, print_to_stderr
from .model import cache_dir, tree_digest
from .thunder_config import configure_tree
from .thunder_patches import apply_patches
from .thunder_sources import Line, ThunderRecipe, load_thunder_recipe, locate, mirror_dir
from .thunder_steps import (
    CROSS_PREFIX,
    StepContext,
    compiler_version,
    generator_python,
    require_toolchain,
    run_step,
    toolchain_file,
)

BUILDER_VERSION = "1"
Progress = Callable[[str], None]
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class ThunderTree:
    """A built line: `root` is the runtime tree to copy over an image's /."""

    line: str
    directory: Path
    manifest: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.directory / "root"


def thunder_tree(
    line: str,
    *,
    mirror: Path | str | None = None,
    progress: Progress = print_to_stderr,
    rebuild: bool = False,
    cache: Path | None = None,
    recipe: ThunderRecipe | None = None,
) -> ThunderTree:
    """The runtime tree of `line` ("R5", "R4.4") from the cache, cross-built first when needed."""
    recipe = recipe or load_thunder_recipe()
    spec = recipe.line(line)
    folder = (cache or cache_dir()) / "thunder"
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(recipe, spec, compiler_version())
    directory = folder / f"{line}-{key[:12]}"
    with build_lock(folder / f".{line}.lock", progress):
        if directory.exists() and not rebuild:
            problem = check_entry(directory, key)
            if problem is None:
                return ThunderTree(line, directory, _manifest(directory))
            progress(f"thunder {line}: {problem}; building it again")
        archives = {step.name: locate(step, mirror_dir(mirror)) for step in spec.steps}
        build_into(directory, lambda work: build_line(recipe, spec, archives, key, work, progress))
    return ThunderTree(line, directory, _manifest(directory))


def cache_key(recipe: ThunderRecipe, line: Line, compiler: str) -> str:
    """sha256 over the builder version, the parsed recipe's common settings and this line (its
    steps, with each source's sha256 and patches), and the compiler: editing the other line or a
    comment rebuilds nothing."""
    common = (
        recipe.common_options,
        recipe.build_packages,
        recipe.runtime_packages,
        recipe.runtime_libraries,
    )
    digest = hashlib.sha256(f"builder {BUILDER_VERSION}\n".encode())
    digest.update(repr((common, line)).encode())
    digest.update(f"compiler {compiler}\n".encode())
    return digest.hexdigest()


def _manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "manifest.json").read_text())


def check_entry(directory: Path, key: str) -> str | None:
    """Why a cache entry can't be used (None when it can): manifest, key and tree hash."""
    try:
        manifest = _manifest(directory)
    except (OSError, ValueError) as error:
        return f"{directory} has no readable manifest ({error})"
    if manifest.get("key") != key:
        return f"{directory} was built from other inputs"
    if tree_digest({"root": directory / "root"}) != manifest.get("tree_sha256"):
        return f"{directory}/root does not match its manifest (changed or incomplete)"
    return None


def build_into(directory: Path, build: Callable[[Path], Path]) -> None:
    """Run `build` in a temporary folder beside `directory`, then rename the result into place."""
    for stale in directory.parent.glob(f".build-{directory.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)  # only a build that died leaves one
    workdir = Path(tempfile.mkdtemp(prefix=f".build-{directory.name}-", dir=directory.parent))
    try:
        built = build(workdir)
        if directory.exists():
            directory.replace(workdir / "old")
        built.replace(directory)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def build_line(
    recipe: ThunderRecipe,
    line: Line,
    archives: Mapping[str, Path],
    key: str,
    workdir: Path,
    progress: Progress,
) -> Path:
    """Every step of `line` into workdir/staging; the runtime tree and manifest into workdir/out."""
    require_toolchain()
    started = time.monotonic()
    staging, out, logs = workdir / "staging", workdir / "out", workdir / "out" / "logs"
    for folder in (staging, logs, workdir / "src"):
        folder.mkdir(parents=True)
    apt = AptSource(cache_dir() / "thunder" / "apt", progress)
    packages = apt.resolve([*recipe.build_packages, *recipe.runtime_packages])
    debs = apt.fetch(list(packages.values()))
    for name in recipe.build_packages:
        extract(debs[name], staging)
    relative_links(staging)
    toolchain = workdir / "aarch64.cmake"
    toolchain.write_text(toolchain_file(staging))
    ctx = StepContext(
        line.name,
        len(line.steps),
        staging,
        toolchain,
        generator_python(),
        recipe.common_options,
        logs,
        progress,
    )
    times: dict[str, dict[str, float]] = {}
    for index, step in enumerate(line.steps, 1):
        src = unpack(archives[step.name], workdir / "src")
        apply_patches(src, step.patches, f"thunder {line.name} {step.label}")
        times[step.name] = run_step(index, step, src, ctx)
    start = time.monotonic()
    runtime = workdir / "runtime"
    for name in recipe.runtime_packages:
        extract(debs[name], runtime)
    root = out / "root"
    copied = select([staging], line.keep, root)
    copied += select([runtime, staging], recipe.runtime_libraries, root)
    stripped = strip_elves(root)
    settings = configure_tree(root, line)
    times["stage"] = {"runtime": round(time.monotonic() - start, 1)}
    progress(f"thunder {line.name}: runtime tree {copied} files, {stripped} stripped")
    manifest = build_manifest(recipe, line, key, packages, root, times, settings)
    manifest["build_seconds"] = round(time.monotonic() - started, 1)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    progress(f"thunder {line.name}: built in {manifest['build_seconds']:.0f} s")
    return out


def unpack(archive: Path, into: Path) -> Path:
    """Unpack a `git archive` tarball; return its single top folder."""
    with tarfile.open(archive) as tar:
        tops = {Path(name).parts[0] for name in tar.getnames() if name}
        tar.extractall(into, filter="data")
    if len(tops) != 1:
        raise ImageError(f"{archive} should hold one top folder, holds {sorted(tops)}")
    return into / tops.pop()


def relative_links(root: Path) -> int:
    """Make absolute symlinks under `root` relative (zlib1g-dev's libz.so points to /lib/...)."""
    fixed = 0
    for path in root.rglob("*"):
        if path.is_symlink() and os.readlink(path).startswith("/"):
            target = root / os.readlink(path).lstrip("/")
            path.unlink()
            path.symlink_to(os.path.relpath(target, path.parent))
            fixed += 1
    return fixed


def select(roots: Sequence[Path], patterns: Sequence[str], dest: Path) -> int:
    """Copy the files and symlinks matching `patterns` (relative paths) from the roots to dest."""
    count = 0
    for root in roots:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_dir() and not path.is_symlink():
                continue
            if not any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                continue
            if path.is_symlink():
                target.symlink_to(os.readlink(path))
            else:
                shutil.copy2(path, target)
            count += 1
    return count


def strip_elves(root: Path) -> int:
    """Strip debug and unneeded symbols from every arm64 ELF file under root."""
    elves = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as stream:
                if stream.read(4) == ELF_MAGIC:
                    elves.append(path)
    for path in elves:
        mode = path.stat().st_mode
        path.chmod(mode | 0o200)
        subprocess.run(
            [f"{CROSS_PREFIX}strip", "--strip-unneeded", str(path)], check=True, capture_output=True
        )
        path.chmod(mode)
    return len(elves)


def build_manifest(
    recipe: ThunderRecipe,
    line: Line,
    key: str,
    packages: Mapping[str, Any],
    root: Path,
    times: Mapping[str, Mapping[str, float]],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """What the tree is built from and of: sources, compiler, sizes, times, config choices."""
    files = [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]
    return {
        "line": line.name,
        "version": line.version,
        "key": key,
        "builder_version": BUILDER_VERSION,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "compiler": compiler_version(),
        "sources": [
            {
                "name": step.name,
                "repository": step.repository,
                "tag": step.tag,
                "commit": step.commit,
                "archive": step.archive,
                "sha256": step.sha256,
                "options": list(step.options),
                "patches": [patch.describe() for patch in step.patches],
            }
            for step in line.steps
        ],
        "packages": {name: package.version for name, package in sorted(packages.items())},
        "daemon": line.daemon,
        "plugin_host": line.plugin_host,
        "config": line.config,
        "settings": dict(settings),
        "tree_sha256": tree_digest({"root": root}),
        "files": len(files),
        "size_bytes": sum(path.stat().st_size for path in files),
        "step_seconds": {name: dict(phases) for name, phases in times.items()},
    }


def thunder_trees(
    lines: Sequence[str] = ("R5", "R4.4"),
    *,
    mirror: Path | str | None = None,
    progress: Progress = print_to_stderr,
    rebuild: bool = False,
) -> dict[str, ThunderTree]:
    """Each line's tree (built when needed), in order; what the image builder calls."""
    return {
        line: thunder_tree(line, mirror=mirror, progress=progress, rebuild=rebuild)
        for line in lines
    }


def collisions(first: Path, second: Path) -> list[str]:
    """Paths both runtime trees hold with different contents (same files, e.g. libz, are fine)."""
    clashes = []
    for path in sorted(first.rglob("*")):
        rel = path.relative_to(first)
        other = second / rel
        if path.is_dir() or not (other.exists() or other.is_symlink()):
            continue
        if path.is_symlink() or other.is_symlink():
            same = path.is_symlink() and other.is_symlink() and path.readlink() == other.readlink()
        else:
            same = path.read_bytes() == other.read_bytes()
        if not same:
            clashes.append(rel.as_posix())
    return clashes
