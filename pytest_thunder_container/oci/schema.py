"""The official OCI runtime-spec JSON schema, loaded from Debian's package (never copied here)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from pytest_thunder_container.errors import ThunderContainerError

DEBIAN_PACKAGE = "golang-github-opencontainers-specs-dev"
RUNTIME_SPEC_DIR = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec")
DEBIAN_SCHEMA_DIR = RUNTIME_SPEC_DIR / "schema"
ROOT_SCHEMA = "config-schema.json"
SKIPPED_MESSAGE = f"OCI schema check skipped: install {DEBIAN_PACKAGE}"


class SchemaUnavailable(ThunderContainerError):
    """The OCI schema is not installed (or not readable), so the schema check can't run."""


@dataclass(frozen=True)
class SchemaViolation:
    """One place where a config breaks the schema: a JSON path and the schema's message."""

    path: str
    message: str


@dataclass(frozen=True)
class SchemaSource:
    """Where the schema came from: its folder, the Debian package version, the spec version."""

    directory: Path
    package_version: str | None
    spec_version: str | None

    def describe(self) -> str:
        """One line for reports, e.g. 'runtime-spec 1.0.2-dev (Debian ... 1.0.2.118.g5cfc4c3-1)'."""
        spec = f"runtime-spec {self.spec_version}" if self.spec_version else "runtime-spec"
        if self.package_version:
            return f"{spec} (Debian {DEBIAN_PACKAGE} {self.package_version})"
        return f"{spec} (schema from {self.directory})"


@dataclass(frozen=True)
class OciSchema:
    """A ready validator for config.json plus the record of which schema it is."""

    source: SchemaSource
    validator: Draft4Validator

    def violations(self, config: Any) -> list[SchemaViolation]:
        """Every schema violation of a config, ordered by JSON path."""
        found = [_violation(error) for error in self.validator.iter_errors(config)]
        return sorted(found, key=lambda violation: violation.path)


def load_oci_schema(directory: Path = DEBIAN_SCHEMA_DIR) -> OciSchema:
    """A draft-04 validator rooted at the schema folder; SchemaUnavailable when it's absent."""
    root = directory / ROOT_SCHEMA
    if not root.is_file():
        raise SchemaUnavailable(f"{SKIPPED_MESSAGE} (no {root})")
    resources: list[tuple[str, Resource[Any]]] = []
    for path in sorted(directory.glob("*.json")):
        try:
            contents = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SchemaUnavailable(
                f"OCI schema check skipped: can't read {path}: {error}"
            ) from None
        resource = Resource.from_contents(contents, default_specification=DRAFT4)
        resources.append((path.resolve().as_uri(), resource))
    registry: Registry[Any] = Registry().with_resources(resources)
    # The $refs are relative ("defs.json#/..."): entering by the file URI gives them their base.
    validator = Draft4Validator({"$ref": root.resolve().as_uri()}, registry=registry)
    source = SchemaSource(
        directory=directory,
        package_version=_debian_package_version() if directory == DEBIAN_SCHEMA_DIR else None,
        spec_version=_spec_version(directory.parent / "specs-go" / "version.go"),
    )
    return OciSchema(source=source, validator=validator)


def json_path(parts: Iterable[str | int]) -> str:
    """Format path parts as `linux.namespaces[2].type`; the top level is `(top level)`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _violation(error: ValidationError) -> SchemaViolation:
    # anyOf/oneOf errors say only "not valid under any of the given schemas": a sub-error says why.
    if error.context:
        error = best_match(error.context)
    parts: list[str | int] = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            parts.append(missing[0])
    return SchemaViolation(path=json_path(parts), message=" ".join(error.message.split()))


def _debian_package_version() -> str | None:
    try:
        completed = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", DEBIAN_PACKAGE],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None


def _spec_version(version_go: Path) -> str | None:
    """The runtime-spec version the Go bindings beside the schema declare (e.g. 1.0.2-dev)."""
    try:
        text = version_go.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    numbers = {
        name: re.search(rf"Version{name}\s*=\s*(\d+)", text) for name in ("Major", "Minor", "Patch")
    }
    if any(match is None for match in numbers.values()):
        return None
    dev = re.search(r'VersionDev\s*=\s*"([^"]*)"', text)
    major, minor, patch = (match.group(1) for match in numbers.values() if match is not None)
    return f"{major}.{minor}.{patch}{dev.group(1) if dev else ''}"
