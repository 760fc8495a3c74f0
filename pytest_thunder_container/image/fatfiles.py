"""The files of a FAT partition inside a disk image, read with mtools: nothing mounted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.partitions import Partition

# Vendor images rarely give their FAT the geometry mtools checks for by default.
_MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}


class BootPartition:
    """The FAT boot partition of an image, read with mtools at its byte offset."""

    def __init__(self, image: Path, partition: Partition) -> None:
        if shutil.which("mcopy") is None:
            raise ImageError("mtools is not installed (fix: apt-get install mtools)")
        self.image = image
        self.partition = partition
        self._drive = f"{image}@@{partition.start}"
        self._files: dict[str, str] | None = None

    def _mtools(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            list(args), capture_output=True, check=False, env={**os.environ, **_MTOOLS_ENV}
        )

    def files(self) -> dict[str, str]:
        """Every file's path, lower-cased (FAT ignores case), to its spelling on the card."""
        if self._files is None:
            listing = self._mtools("mdir", "-i", self._drive, "-/", "-b", "::/")
            empty = b'File "::/" not found' in listing.stderr  # mdir's word for "no files"
            if listing.returncode != 0 and not empty:
                error = listing.stderr.decode(errors="replace").strip().splitlines()
                raise ImageError(
                    f"{self.image}: partition {self.partition.number} is marked FAT but mtools "
                    f"can't read it ({'; '.join(error[-2:])}); the image may be damaged"
                )
            names = [
                line.removeprefix("::/")
                for line in listing.stdout.decode(errors="replace").splitlines()
            ]
            self._files = {n.lower(): n for n in names if n and not n.endswith("/")}
        return self._files

    def find(self, name: str) -> str | None:
        return self.files().get(name.lstrip("/").lower())

    def read(self, name: str) -> bytes | None:
        found = self.find(name)
        if found is None:
            return None
        result = self._mtools("mcopy", "-i", self._drive, f"::{found}", "-")
        if result.returncode != 0:
            raise ImageError(f"{self.image}: can't read {found} from the boot partition")
        return result.stdout

    def read_text(self, name: str) -> str | None:
        data = self.read(name)
        return None if data is None else data.decode("utf-8", errors="replace")

    def copy(self, name: str, dest: Path) -> None:
        result = self._mtools("mcopy", "-n", "-i", self._drive, f"::{name}", str(dest))
        if result.returncode != 0:
            raise ImageError(f"{self.image}: can't copy {name} out of the boot partition")

    def listing(self) -> str:
        return ", ".join(sorted(self.files().values())) or "no files"
