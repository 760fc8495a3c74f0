"""The reference image's own programs: compiled, and the sealed runc copy really exercised.

The same C sources are compiled for this host (gcc) so that their behaviour runs here for real;
the arm64 build is checked to be an aarch64 executable."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.model import Program, load_recipe
from pytest_thunder_container.image.programs import compile_programs

SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
EM_AARCH64 = 183
REAL = shutil.which("readlink") or "/usr/bin/readlink"  # a small program that says its own exe


def _programs() -> dict[str, Program]:
    return {p.source.stem: p for p in load_recipe("rpi3").programs}


@pytest.fixture
def built(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The launcher and the sealed-copy maker for this host, the state file in tmp_path; every
    holder they leave is killed after the test."""
    state = tmp_path / "runc.sealed"
    programs = [Program(p.source, f"bin/{p.source.stem}") for p in _programs().values()]
    compile_programs(
        programs,
        tmp_path,
        lambda line: None,
        compiler="gcc",
        defines=(f'RUNC_STATE="{state}"', f'RUNC_REAL="{REAL}"'),
    )
    yield tmp_path / "bin", state
    with contextlib.suppress(OSError, ValueError, IndexError):
        holder = int(state.read_text().split("/")[2])
        os.kill(holder, signal.SIGKILL)


def test_the_launcher_runs_the_real_runc_when_there_is_no_copy(
    built: tuple[Path, Path],
) -> None:
    bin_dir, _ = built
    said = subprocess.run(
        [bin_dir / "runc-launcher", "/proc/self/exe"], capture_output=True, text=True, check=True
    )
    assert said.stdout.strip() == os.path.realpath(REAL)


def test_the_launcher_runs_the_one_sealed_copy_with_the_callers_arguments(
    built: tuple[Path, Path],
) -> None:
    bin_dir, state = built
    subprocess.run([bin_dir / "runc-sealed-copy", REAL, state], check=True, timeout=10)
    copy = state.read_text().strip()
    assert copy.startswith("/proc/") and "/fd/" in copy
    # The copy is a memfd sealed against any change: runc 1.1 then makes no clone of its own.
    fd = os.open(copy, os.O_RDONLY)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GET_SEALS) == SEALS
        copied = os.fstat(fd)
    finally:
        os.close(fd)
    assert copied.st_size == os.stat(REAL).st_size
    said = subprocess.run(
        [bin_dir / "runc-launcher", "/proc/self/exe"], capture_output=True, text=True, check=True
    )
    assert said.stdout.strip() == "/memfd:runc (deleted)"


def test_a_sealed_copy_of_a_missing_runc_says_what_and_leaves_no_state(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, state = built
    failed = subprocess.run(
        [bin_dir / "runc-sealed-copy", tmp_path / "none", state], capture_output=True, text=True
    )
    assert failed.returncode == 1
    assert f"cannot make a sealed copy of {tmp_path / 'none'}" in failed.stderr
    assert not state.exists()


def test_the_programs_cross_compile_to_arm64(tmp_path: Path) -> None:
    compile_programs(list(_programs().values()), tmp_path, lambda line: None)
    for name in ("usr/bin/runc", "usr/libexec/runc-sealed-copy"):
        header = (tmp_path / name).read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == EM_AARCH64
        assert os.access(tmp_path / name, os.X_OK)


def test_a_source_that_does_not_compile_gives_the_compilers_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.c"
    broken.write_text("int main(void) { return nope; }\n")
    with pytest.raises(ImageError, match=r"(?s)broken.c did not compile .*nope"):
        compile_programs([Program(broken, "usr/bin/x")], tmp_path, lambda line: None)


def test_a_missing_compiler_is_named_with_the_fix(tmp_path: Path) -> None:
    program = Program(tmp_path / "x.c", "usr/bin/x")
    with pytest.raises(ImageError, match=r"need no-such-gcc on the host.*setup-host"):
        compile_programs([program], tmp_path, lambda line: None, compiler="no-such-gcc")
