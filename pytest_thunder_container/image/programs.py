"""The recipe's own small programs (C sources under images/<name>/), cross-compiled for arm64.

They link against the image's own glibc (Debian's libc6, which runc needs anyway): the cross
compiler's arm64 libc headers are the same release as the image's packages.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.model import Program
from pytest_thunder_container.image.thunder_steps import CROSS_PREFIX, HOST_TOOLS_HINT

Progress = Callable[[str], None]
COMPILER = f"{CROSS_PREFIX}gcc"
# Stripped, small (4 KiB pages instead of the 64 KiB alignment: 6 KB files, not 67 KB).
FLAGS = ("-Os", "-s", "-Wall", "-Wextra", "-Wl,-z,max-page-size=4096")


def program_compiler(compiler: str = COMPILER) -> str:
    """First line of the compiler's `--version`: part of the image's cache key."""
    try:
        found = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise ImageError(
            f"the reference image's own programs need {compiler} on the host ({error}): "
            f"run `{HOST_TOOLS_HINT}` (or `sh scripts/setup-host`)"
        ) from None
    return found.stdout.splitlines()[0].strip()


def compile_programs(
    programs: Sequence[Program],
    root: Path,
    progress: Progress,
    *,
    compiler: str = COMPILER,
    defines: Sequence[str] = (),
) -> None:
    """Compile each program's source to its place under `root` (replacing what is there, a
    package's symlink included); ImageError with the compiler's own message on failure."""
    if not programs:
        return
    program_compiler(compiler)
    for program in programs:
        start = time.monotonic()
        target = root / program.install
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        command = [compiler, *FLAGS, *(f"-D{d}" for d in defines), "-o", str(target)]
        built = subprocess.run(
            [*command, str(program.source)], capture_output=True, text=True, check=False
        )
        if built.returncode != 0:
            raise ImageError(
                f"{program.source} did not compile with {compiler}:\n{built.stderr.strip()}"
            )
        progress(
            f"[rootfs] compiled {program.source.name} to /{program.install} "
            f"({target.stat().st_size} bytes, {time.monotonic() - start:.1f} s)"
        )
