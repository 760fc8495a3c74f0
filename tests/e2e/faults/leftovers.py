"""What a run may leave behind: its own QEMU processes and run folders, secrets in its files.

Other engineers run QEMU on the same machine: a run's own run folders are found in the command
lines its QEMU logs recorded (`$ qemu-system-aarch64 ... path=/tmp/thunder-qemu-XXXX/...`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path

RUNDIR = re.compile(r"(/\S*?/thunder-qemu-[A-Za-z0-9_]+)/")


def qemu_rundirs(results: Path) -> set[Path]:
    """Every run folder the QEMU processes of a results folder were started with."""
    found: set[Path] = set()
    for log in results.rglob("qemu-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("$ "):
                found.update(Path(match) for match in RUNDIR.findall(line))
    return found


def processes_mentioning(paths: Iterable[Path]) -> list[str]:
    """`pid: command line` of every live process whose command line names one of `paths`."""
    wanted = [str(path) for path in paths]
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(path in text for path in wanted):
            found.append(f"{cmdline.parent.name}: {text[:300]}")
    return found


def assert_nothing_left(results: Path, *, expect_qemu: bool = True, grace: float = 5.0) -> None:
    """No QEMU of this run still runs and none of its run folders is left in /tmp."""
    rundirs = qemu_rundirs(results)
    assert rundirs or not expect_qemu, f"no QEMU command line in the logs of {results}"
    deadline = time.monotonic() + grace
    while processes_mentioning(rundirs) and time.monotonic() < deadline:
        time.sleep(0.1)  # a QEMU killed with its parent may take a moment to go
    assert not processes_mentioning(rundirs), processes_mentioning(rundirs)
    assert not [rundir for rundir in rundirs if rundir.exists()]


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under `root` whose bytes contain `secret`."""
    needle = secret.encode()
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]
