"""Saved VM states in the cache: restore in about a second instead of a cold boot."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from pytest_thunder_container.errors import TargetError

SNAPSHOT_TAG = "thunder-ready"


@dataclass(frozen=True)
class SnapshotKey:
    """Everything that makes a saved state valid: change any of it and the state is unusable."""

    image_sha256: str
    machine: str
    qemu_version: str
    append: str

    @property
    def digest(self) -> str:
        blob = json.dumps(self.__dict__, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class SnapshotStore:
    """qcow2 files holding one internal snapshot each, named by their key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, key: SnapshotKey) -> Path:
        return self.directory / f"{key.machine}-{key.digest}.qcow2"

    def lookup(self, key: SnapshotKey) -> Path | None:
        path = self.path(key)
        return path if path.is_file() else None

    def checkout(self, key: SnapshotKey, destination: Path) -> bool:
        """Copy the saved state to a private file (QEMU locks and writes what it boots from)."""
        source = self.lookup(key)
        if source is None:
            return False
        shutil.copyfile(source, destination)
        return True

    def save(self, key: SnapshotKey, state_file: Path) -> Path:
        """Keep a copy of a qcow2 that now holds SNAPSHOT_TAG; atomic for concurrent sessions."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(key)
        partial = final.with_suffix(f".{os.getpid()}.partial")
        shutil.copyfile(state_file, partial)
        os.replace(partial, final)
        return final

    def discard(self, key: SnapshotKey) -> None:
        self.path(key).unlink(missing_ok=True)


def create_state_file(path: Path, size: str = "64M") -> None:
    """An empty qcow2 for savevm to write into (savevm needs a writable qcow2 drive)."""
    if shutil.which("qemu-img") is None:
        raise TargetError("qemu-img is not installed (fix: apt-get install qemu-utils)")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
