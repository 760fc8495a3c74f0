"""The image's root tree, assembled from unpacked packages: kept files, kernel, Python."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.apt import require_tools
from pytest_thunder_container.image.model import SKIPPED_NAMES, Recipe

Progress = Callable[[str], None]
KERNEL_FILE = "Image"
DTB_FILE = "bcm2837-rpi-3-b.dtb"


def _run(command: Sequence[str], what: str, env: Mapping[str, str] | None = None) -> str:
    result = subprocess.run(list(command), capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip()
        raise ImageError(f"{what}: `{' '.join(command)}` failed ({result.returncode}): {output}")
    return result.stdout


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch(rel, pattern) or fnmatch(rel, pattern + "/*") for pattern in patterns)


def select_files(package_root: Path, keep: Sequence[str], drop: Sequence[str], dest: Path) -> int:
    """Copy the files and symlinks a rule keeps (and does not drop) into `dest`; count them."""
    count = 0
    for path in sorted(package_root.rglob("*")):
        rel = path.relative_to(package_root).as_posix()
        if path.is_dir() and not path.is_symlink():
            continue
        if not _matches(rel, keep) or _matches(rel, drop):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, target)
        count += 1
    return count


def exclude_paths(folder: Path, patterns: Sequence[str]) -> int:
    """Delete what `patterns` match below `folder` (same rules as a package's `drop`)."""
    removed = 0
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.exists() and _matches(path.relative_to(folder).as_posix(), patterns):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed += 1
    return removed


def copy_tree(tree: Path, dest: Path) -> int:
    """Copy a source tree over `dest` (no bytecode caches); return the number of files."""
    count = 0
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree)
        if SKIPPED_NAMES.intersection(rel.parts) or path.suffix == ".pyc":
            continue
        target = dest / rel
        if path.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(path))
        elif path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        count += 1
    return count


def module_closure(modules_dir: Path, names: Sequence[str]) -> list[Path]:
    """The .ko files of `names` and everything they depend on (modinfo -F depends, recursively)."""
    index = {p.name.removesuffix(".ko").replace("-", "_"): p for p in modules_dir.rglob("*.ko")}
    builtin_file = modules_dir / "modules.builtin"
    builtin = builtin_file.read_text() if builtin_file.exists() else ""
    builtin_names = {
        Path(line).name.removesuffix(".ko").replace("-", "_") for line in builtin.split()
    }
    wanted = [name.replace("-", "_") for name in names]
    found: dict[str, Path] = {}
    while wanted:
        name = wanted.pop()
        if name in found or name in builtin_names:
            continue
        if name not in index:
            raise ImageError(f"kernel module {name} is neither in {modules_dir} nor built in")
        found[name] = index[name]
        depends = _run(["modinfo", "-F", "depends", str(index[name])], "kernel modules").strip()
        wanted.extend(dep.replace("-", "_") for dep in depends.split(",") if dep)
    return sorted(found.values())


def install_kernel(
    recipe: Recipe, kernel_root: Path, root: Path, out: Path, progress: Progress
) -> str:
    """Image and patched dtb into `out`, the module closure into `root`; give the kernel version."""
    require_tools("fdtput", "modinfo", "depmod")
    versions = sorted(p.name for p in (kernel_root / "lib" / "modules").iterdir())
    if len(versions) != 1:
        raise ImageError(f"expected one kernel in the kernel package, found {versions}")
    kver = versions[0]
    shutil.copyfile(kernel_root / "boot" / f"vmlinuz-{kver}", out / KERNEL_FILE)
    dtb = out / DTB_FILE
    shutil.copyfile(kernel_root / "usr" / "lib" / f"linux-image-{kver}" / recipe.dtb, dtb)
    patch_dtb(dtb, recipe.dtb_delete_nodes, recipe.rng_seed_bytes)
    modules_dir = kernel_root / "lib" / "modules" / kver
    target = root / "lib" / "modules" / kver
    target.mkdir(parents=True, exist_ok=True)
    closure = module_closure(modules_dir, recipe.modules)
    for module in closure:
        dest = target / module.relative_to(modules_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(module, dest)
    for name in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (modules_dir / name).exists():
            shutil.copyfile(modules_dir / name, target / name)
    _run(["depmod", "-b", str(root), kver], "kernel modules")
    size = sum(module.stat().st_size for module in closure) / 1e6
    progress(f"[kernel] {kver}: {len(closure)} modules ({size:.1f} MB), dtb patched")
    return kver


def patch_dtb(dtb: Path, delete_nodes: Sequence[str], rng_seed_bytes: int) -> None:
    """Delete nodes from a device tree and give /chosen a fresh rng-seed."""
    require_tools("fdtput")
    for node in delete_nodes:
        _run(["fdtput", "-r", str(dtb), node], f"patching {dtb.name}")
    if rng_seed_bytes:
        seed = os.urandom(rng_seed_bytes)
        words = [str(int.from_bytes(seed[i : i + 4], "big")) for i in range(0, len(seed), 4)]
        command = ["fdtput", "-p", "-t", "u", str(dtb), "/chosen", "rng-seed", *words]
        _run(command, f"patching {dtb.name}")


def stdlib_imports(trees: Sequence[Path]) -> set[str]:
    """Standard-library modules imported by the Python sources (and python scripts) in `trees`."""
    found: set[str] = set()
    for tree in trees:
        for path in sorted(tree.rglob("*")) if tree.is_dir() else []:
            if not path.is_file() or path.is_symlink():
                continue
            head = path.read_bytes()[:64]
            if path.suffix != ".py" and not (head.startswith(b"#!") and b"python" in head):
                continue
            try:
                module = ast.parse(path.read_bytes(), filename=str(path))
            except SyntaxError as error:
                raise ImageError(f"{path}: not valid Python ({error})") from error
            for node in ast.walk(module):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module)
    return {name for name in found if name.split(".")[0] in sys.stdlib_module_names}


_IMPORT_CHECK = """
import importlib, json, sys
lib, dropped, names = sys.argv[1], set(filter(None, sys.argv[2].split(","))), sys.argv[3:]
dynload = [p for p in sys.path if p.endswith("lib-dynload")]

class Dropped:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in dropped:
            raise ModuleNotFoundError(f"{name} is not in the image", name=name)

sys.meta_path.insert(0, Dropped)
sys.path[:] = [lib, *dynload]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = f"{type(error).__name__}: {error}"
print(json.dumps(failed))
"""


def _extension_names(folder: Path) -> set[str]:
    return {path.name.split(".")[0] for path in folder.glob("*.so")} if folder.is_dir() else set()


def host_python311() -> str | None:
    """A host interpreter of the target's Python version: Debian's own first (same builtins)."""
    debian = Path("/usr/bin/python3.11")
    if debian.exists():
        return str(debian)
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    return None


def check_python_imports(root: Path, recipe: Recipe, unpacked: Path, progress: Progress) -> None:
    """Import what the reference Thunder needs from the trimmed stdlib, with the host's 3.11."""
    interpreter = host_python311()
    if interpreter is None:
        progress("[python] warning: no python3.11 on the host, the trimmed stdlib is not checked")
        return
    lib = root / recipe.python_lib
    shipped = set().union(
        *(_extension_names(p / recipe.python_lib / "lib-dynload") for p in unpacked.iterdir())
    )
    dropped = shipped - _extension_names(lib / "lib-dynload")
    names = sorted(set(recipe.python_must_import) | stdlib_imports(recipe.trees))
    # -S -I: no site, no user paths: the check sees only the trimmed tree and the host's
    # extension modules, less those the image does not ship. -B: it must not leave
    # timestamp-based .pyc behind (they would name the build folder and never validate).
    command = [interpreter, "-B", "-S", "-I", "-c", _IMPORT_CHECK, str(lib)]
    command.append(",".join(sorted(dropped)))
    failed = json.loads(_run([*command, *names], "checking the trimmed stdlib"))
    if failed:
        detail = "; ".join(f"{name}: {error}" for name, error in sorted(failed.items()))
        raise ImageError(
            f"the trimmed Python stdlib misses what the reference Thunder imports ({detail}); "
            f"take the module off a `drop` list in {recipe.directory / 'recipe.toml'}"
        )
    progress(f"[python] {len(names)} modules import from the trimmed stdlib")


def precompile(root: Path, recipe: Recipe, progress: Progress) -> None:
    """Compile unchecked-hash .pyc for the target (mtimes in the initramfs are all 0)."""
    if sys.version_info[:2] != (3, 11):
        host = ".".join(str(part) for part in sys.version_info[:2])
        progress(
            f"[python] warning: host python is {host}, not 3.11: no .pyc precompiled "
            "(imports on the target will be about 4x slower)"
        )
        return
    # One process and a fixed hash seed: the same sources give the same bytes (no -j, whose
    # workers marshal differently; set constants are ordered by string hashes).
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    for rel in recipe.python_compile:
        folder = root / rel
        if not folder.is_dir():
            continue
        command = [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-f",
            "--invalidation-mode",
            "unchecked-hash",
            "-d",
            "/" + rel,
            str(folder),
        ]
        _run(command, "precompiling Python", env=environment)
    count = sum(1 for _ in root.rglob("*.pyc"))
    progress(f"[python] {count} modules precompiled")
