"""arm64 Debian packages via the host's apt, with a private state dir: the host is left alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from pytest_thunder_container.errors import ImageError
from pytest_thunder_container.image.model import sha256_file

LISTS_MAX_AGE = 24 * 3600.0
ARCH = "arm64"
HOST_TOOLS_HINT = "apt-get install --no-install-recommends device-tree-compiler kmod dpkg apt"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Package:
    """One candidate package as the package lists describe it."""

    name: str
    version: str
    sha256: str
    size: int
    depends: str = ""

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version.replace(':', '%3a')}_{ARCH}.deb"


class PackageSource(Protocol):
    """Where the builder gets packages from (apt on the host, or a fake in tests)."""

    def resolve(self, names: Sequence[str], *, refresh: bool = False) -> dict[str, Package]: ...

    def fetch(self, packages: Sequence[Package]) -> dict[str, Path]: ...


def require_tools(*tools: str) -> None:
    """ImageError naming the install command when a host tool is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ImageError(
            f"building the reference image needs {', '.join(missing)} on the host: "
            f"run `{HOST_TOOLS_HINT}`"
        )


def parse_records(text: str) -> list[dict[str, str]]:
    """Parse deb822 records (apt-cache show output): one dict per paragraph."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                records.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            current[key] = value.strip()
    if current:
        records.append(current)
    return records


def dependency_named(depends: str, prefix: str) -> str:
    """The first package in a Depends field whose name starts with `prefix`."""
    for clause in depends.split(","):
        name = clause.split("|")[0].split("(")[0].strip()
        if name.startswith(prefix):
            return name
    raise ImageError(f"no dependency starting with {prefix!r} in Depends: {depends!r}")


def extract(deb: Path, dest: Path) -> None:
    """Unpack a .deb's files into `dest` (no maintainer scripts run)."""
    require_tools("dpkg-deb")
    dest.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ImageError(f"dpkg-deb -x {deb} failed: {result.stderr.strip()}")


class AptSource:
    """apt-get/apt-cache for arm64 with lists, archives and status under `state_dir`."""

    def __init__(self, state_dir: Path, progress: Progress) -> None:
        self.state_dir = state_dir
        self.progress = progress
        self.lists = state_dir / "lists"
        self.archives = state_dir / "archives"
        self.stamp = state_dir / "lists-updated"
        self.record = state_dir / "resolved.json"

    def _options(self) -> list[str]:
        status = self.state_dir / "status"
        options = {
            "APT::Architecture": ARCH,
            "APT::Architectures": ARCH,
            "Dir::State::Lists": self.lists,
            "Dir::State::Status": status,
            "Dir::State::extended_states": self.state_dir / "extended_states",
            "Dir::Cache": self.state_dir / "cache",
            "Dir::Cache::Archives": self.archives,
            "APT::Sandbox::User": "root",
        }
        return [part for key, value in options.items() for part in ("-o", f"{key}={value}")]

    def _run(self, tool: str, args: Sequence[str], cwd: Path | None = None) -> str:
        require_tools(tool)
        for folder in (self.lists / "partial", self.archives / "partial", self.state_dir / "cache"):
            folder.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "status").touch()
        command = [tool, *self._options(), *args]
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise ImageError(f"`{tool} {' '.join(args)}` failed ({result.returncode}):\n{tail}")
        return result.stdout

    def lists_age(self) -> float | None:
        """Seconds since the last successful update, or None when never updated."""
        if not self.stamp.exists():
            return None
        return time.time() - self.stamp.stat().st_mtime

    def update(self, *, refresh: bool = False) -> bool:
        """Update the private lists when older than a day (or when asked); True if updated."""
        age = self.lists_age()
        if age is not None and age < LISTS_MAX_AGE and not refresh:
            return False
        self.progress("[apt] updating the arm64 package lists")
        start = time.monotonic()
        try:
            self._run("apt-get", ["update"])
        except ImageError as error:
            if age is None:
                raise
            self.progress(f"[apt] update failed, keeping lists {age / 3600:.0f} h old: {error}")
            return False
        self.stamp.touch()
        self.progress(f"[apt] lists updated ({time.monotonic() - start:.1f} s)")
        return True

    def _recorded(self) -> dict[str, Package]:
        if not self.record.exists() or not self.stamp.exists():
            return {}
        try:
            data = json.loads(self.record.read_text())
        except ValueError:
            return {}
        if data.get("lists") != self.stamp.stat().st_mtime:
            return {}
        return {name: Package(**fields) for name, fields in data["packages"].items()}

    def _remember(self, packages: Mapping[str, Package]) -> None:
        known = {**self._recorded(), **packages}
        data = {
            "lists": self.stamp.stat().st_mtime,
            "packages": {name: asdict(package) for name, package in sorted(known.items())},
        }
        self.record.write_text(json.dumps(data, indent=1))

    def resolve(self, names: Sequence[str], *, refresh: bool = False) -> dict[str, Package]:
        """Candidate version, SHA256 and size of each package (no apt call when known)."""
        updated = self.update(refresh=refresh)
        known = {} if updated else self._recorded()
        if all(name in known for name in names):
            return {name: known[name] for name in names}
        output = self._run("apt-cache", ["show", "--no-all-versions", *names])
        found: dict[str, Package] = {}
        for record in parse_records(output):
            if record.get("Package") in names and record["Package"] not in found:
                found[record["Package"]] = Package(
                    name=record["Package"],
                    version=record["Version"],
                    sha256=record.get("SHA256", ""),
                    size=int(record.get("Size", "0")),
                    depends=", ".join(
                        filter(None, (record.get("Pre-Depends"), record.get("Depends")))
                    ),
                )
        missing = sorted(set(names) - set(found))
        if missing:
            raise ImageError(f"no {ARCH} candidate for {', '.join(missing)} in the package lists")
        self._remember(found)
        return {name: found[name] for name in names}

    def fetch(self, packages: Sequence[Package]) -> dict[str, Path]:
        """The .deb of each package, downloaded unless the cache holds one with the right SHA256."""
        self.archives.mkdir(parents=True, exist_ok=True)
        wanted = [pkg for pkg in packages if not self._cached_ok(pkg)]
        if wanted:
            total = sum(pkg.size for pkg in wanted) / 1e6
            self.progress(f"[apt] downloading {len(wanted)} packages, {total:.0f} MB")
            start = time.monotonic()
            with tempfile.TemporaryDirectory(dir=self.state_dir) as tmp:
                pins = [f"{pkg.name}={pkg.version}" for pkg in wanted]
                self._run("apt-get", ["download", *pins], cwd=Path(tmp))
                by_sha = {sha256_file(deb): deb for deb in Path(tmp).glob("*.deb")}
                for pkg in wanted:
                    if pkg.sha256 not in by_sha:
                        raise ImageError(
                            f"apt-get download gave no {pkg.deb_name} with SHA256 {pkg.sha256}"
                        )
                    by_sha[pkg.sha256].replace(self.archives / pkg.deb_name)
            self.progress(f"[apt] downloaded ({time.monotonic() - start:.1f} s)")
        return {pkg.name: self.archives / pkg.deb_name for pkg in packages}

    def _cached_ok(self, package: Package) -> bool:
        deb = self.archives / package.deb_name
        return (
            deb.exists()
            and deb.stat().st_size == package.size
            and (not package.sha256 or sha256_file(deb) == package.sha256)
        )
