"""One CMake project cross-built for arm64 into a staging sysroot; progress; a host check."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageError
from .thunder_sources import Source

Progress = Callable[[str], None]
CROSS_PREFIX = "aarch64-linux-gnu-"
TRIPLET = "aarch64-linux-gnu"
HOST_TOOLS_HINT = (
    "apt-get install -y --no-install-recommends g++-aarch64-linux-gnu "
    "binutils-aarch64-linux-gnu ninja-build cmake"
)
PROGRESS_EVERY = 20.0
# Where upstream install steps write when they miss DESTDIR (see THUNDER.md): watched per step.
HOST_WATCHED = ("/usr/include", "/usr/lib", "/usr/local/include", "/usr/local/lib", "/usr/share")
NINJA_STATUS = re.compile(r"^\[(\d+)/(\d+)\]")


class HostTouched(ImageError):
    """A build step wrote outside its staging dir, into the host's system folders."""


def require_toolchain() -> None:
    missing = [
        tool
        for tool in (f"{CROSS_PREFIX}g++", f"{CROSS_PREFIX}strip", "cmake", "ninja")
        if shutil.which(tool) is None
    ]
    if missing:
        raise ImageError(
            f"building Thunder needs {', '.join(missing)} on the host: run `{HOST_TOOLS_HINT}`"
        )


def compiler_version() -> str:
    """First line of `aarch64-linux-gnu-g++ --version`: part of the cache key."""
    require_toolchain()
    result = subprocess.run(
        [f"{CROSS_PREFIX}g++", "--version"], capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()[0].strip()


def generator_python() -> str:
    """A python with jsonref, which ThunderTools' generators import."""
    candidates = [sys.executable, shutil.which("python3") or "", "/usr/bin/python3"]
    for python in filter(None, candidates):
        probe = subprocess.run([python, "-c", "import jsonref"], capture_output=True, check=False)
        if probe.returncode == 0:
            return python
    raise ImageError(
        "ThunderTools' code generators need the Python module jsonref: "
        f"run `{sys.executable} -m pip install jsonref`"
    )


def toolchain_file(staging: Path) -> str:
    """CMake toolchain: staging is the sysroot for finding libraries, headers and packages.

    CMAKE_SYSROOT makes upstream's `${CMAKE_SYSROOT}${CMAKE_INSTALL_PREFIX}` install paths land
    in staging instead of the host's /usr; the compiler itself keeps its own sysroot (/).
    """
    libdirs = ":".join(
        str(staging / sub) for sub in ("usr/lib", f"usr/lib/{TRIPLET}", f"lib/{TRIPLET}")
    )
    includes = f"-idirafter {staging}/usr/include -idirafter {staging}/usr/include/{TRIPLET}"
    links = f"-L{staging}/usr/lib/{TRIPLET} -Wl,-rpath-link,{libdirs}"
    lines = [
        "set(CMAKE_SYSTEM_NAME Linux)",
        "set(CMAKE_SYSTEM_PROCESSOR aarch64)",
        f"set(CMAKE_C_COMPILER {CROSS_PREFIX}gcc)",
        f"set(CMAKE_CXX_COMPILER {CROSS_PREFIX}g++)",
        f"set(CMAKE_LIBRARY_ARCHITECTURE {TRIPLET})",
        f'set(CMAKE_SYSROOT "{staging}")',
        'set(CMAKE_SYSROOT_COMPILE "/")',
        'set(CMAKE_SYSROOT_LINK "/")',
        f'set(CMAKE_FIND_ROOT_PATH "{staging}")',
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)",
        f'set(CMAKE_C_FLAGS_INIT "{includes}")',
        f'set(CMAKE_CXX_FLAGS_INIT "{includes}")',
        *(f'set(CMAKE_{kind}_LINKER_FLAGS_INIT "{links}")' for kind in ("EXE", "SHARED", "MODULE")),
    ]
    return "\n".join(lines) + "\n"


def build_env(staging: Path) -> dict[str, str]:
    """The host environment with pkg-config pointed at staging only."""
    env = dict(os.environ)
    env["PKG_CONFIG_LIBDIR"] = ":".join(
        str(staging / sub)
        for sub in (f"usr/lib/{TRIPLET}/pkgconfig", "usr/lib/pkgconfig", "usr/share/pkgconfig")
    )
    env["PKG_CONFIG_SYSROOT_DIR"] = str(staging)
    env.pop("DESTDIR", None)
    return env


@dataclass(frozen=True)
class StepContext:
    """What every step of one line shares."""

    line: str
    total: int
    staging: Path
    toolchain: Path
    python: str
    common_options: tuple[str, ...]
    logs: Path
    progress: Progress


def host_snapshot(roots: Iterable[str] = HOST_WATCHED, depth: int = 2) -> dict[str, int]:
    """Names and mtimes of the entries up to `depth` levels below each root."""
    found: dict[str, int] = {}

    def walk(folder: Path, level: int) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            try:
                found[entry.path] = entry.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
            if level < depth and entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), level + 1)

    for root in roots:
        walk(Path(root), 1)
    return found


def host_changes(before: Mapping[str, int], after: Mapping[str, int], staging: Path) -> list[str]:
    """Host entries added, removed or changed meanwhile that the build also put into staging.

    A folder whose mtime alone changed counts only when named for Thunder: others (e.g.
    /usr/share/doc) change whenever the host installs a package.
    """
    changed = set(after) ^ set(before)
    for path in set(after) & set(before):
        if before[path] != after[path]:
            named = re.search(r"thunder|wpeframework", path, re.IGNORECASE)
            if not os.path.isdir(path) or os.path.islink(path) or named:
                changed.add(path)
    return sorted(path for path in changed if os.path.lexists(staging / path.lstrip("/")))


def run_step(index: int, source: Source, src: Path, ctx: StepContext) -> dict[str, float]:
    """Configure, build and install one project into staging; seconds per phase."""
    build = ctx.staging.parent / "build" / source.name
    log = ctx.logs / f"{index}-{source.name}.log"
    head = f"thunder {ctx.line}: [{index}/{ctx.total}] {source.label}"
    # Host tools are installed where they run from (R4.4.6 bakes its install path into the
    # Find*.cmake modules); target code is installed for /usr, under DESTDIR.
    prefix = f"{ctx.staging}/usr" if source.host else "/usr"
    destdir = {} if source.host else {"DESTDIR": str(ctx.staging)}
    options = [f"-DPYTHON_EXECUTABLE={ctx.python}", f"-DCMAKE_INSTALL_PREFIX={prefix}"]
    if not source.host:
        options += [
            f"-DCMAKE_TOOLCHAIN_FILE={ctx.toolchain}",
            f"-DTOOLS_SYSROOT={ctx.staging}",
            *ctx.common_options,
        ]
    configure = ["cmake", "-G", "Ninja", "-S", str(src), "-B", str(build), *options]
    env = build_env(ctx.staging)
    times: dict[str, float] = {}
    before = host_snapshot()
    for phase, command, extra in (
        ("configure", [*configure, *source.options], {}),
        ("build", ["ninja", "-C", str(build)], {}),
        ("install", ["ninja", "-C", str(build), "install"], destdir),
    ):
        ctx.progress(f"{head} {phase} ...")
        start = time.monotonic()
        _run_logged(command, {**env, **extra}, log, f"{head} {phase}", ctx.progress)
        times[phase] = round(time.monotonic() - start, 1)
    leaked = host_changes(before, host_snapshot(), ctx.staging)
    if leaked:
        raise HostTouched(
            f"{source.label} wrote into the host outside its staging dir: {', '.join(leaked)} "
            f"(see {log}); remove these by hand, they are not the host's own"
        )
    ctx.progress(f"{head} done: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    return times


def _run_logged(
    command: list[str], env: Mapping[str, str], log: Path, what: str, progress: Progress
) -> None:
    """Run `command` with its output appended to `log`; say how far ninja is every ~20 s."""
    status = {"line": ""}
    start = time.monotonic()
    with log.open("a") as sink:
        sink.write(f"$ {' '.join(command)}\n")
        sink.flush()
        process = subprocess.Popen(
            command,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert process.stdout is not None
        stream = process.stdout

        def pump() -> None:
            for line in stream:
                sink.write(line)
                match = NINJA_STATUS.match(line)
                if match:
                    status["line"] = match.group(0)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            while True:
                try:
                    process.wait(timeout=PROGRESS_EVERY)
                    break
                except subprocess.TimeoutExpired:
                    progress(f"{what} {status['line']} {time.monotonic() - start:.0f} s")
        except BaseException:
            process.kill()
            process.wait()
            raise
        reader.join()
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise ImageError(f"{what} failed ({process.returncode}); log {log}:\n{tail}")
