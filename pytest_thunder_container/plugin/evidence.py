"""The thunder_evidence fixture's object: files kept for a test, whatever its outcome."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.report.certification import EvidenceFile

EVIDENCE_DIR = "evidence"
EVIDENCE_PROPERTY = "evidence"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_READABLE_LENGTH = 100


def evidence_directory(nodeid: str) -> str:
    """A folder name for a test: readable, and unique thanks to a digest of the whole node ID."""
    readable = _UNSAFE.sub("_", nodeid).strip("._")[:_READABLE_LENGTH]
    digest = hashlib.sha256(nodeid.encode("utf-8")).hexdigest()[:8]
    return f"{readable}-{digest}"


def parse_evidence_property(value: object) -> EvidenceFile | None:
    """The EvidenceFile recorded in a user property (a JSON object), or None if it isn't one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(key), str) for key in ("name", "path", "kind")
    ):
        return None
    return EvidenceFile(name=value["name"], path=value["path"], kind=value["kind"])


class Evidence:
    """Files kept in <results>/evidence/<test>/ for one test, and mirrored into allure if active."""

    def __init__(
        self,
        *,
        nodeid: str,
        results: Path,
        user_properties: list[tuple[str, object]],
        allure_active: bool,
    ) -> None:
        self._results = results
        self._relative = Path(EVIDENCE_DIR, evidence_directory(nodeid))
        self._properties = user_properties
        self._allure_active = allure_active
        self._used_names: set[str] = set()

    @property
    def directory(self) -> Path:
        """Where this test's files go."""
        return self._results / self._relative

    def attach(
        self, name: str, body: str | bytes, *, kind: str = "text/plain", extension: str = "txt"
    ) -> Path:
        """Keep `body` as <name>.<extension>; returns the file written."""
        path = self._new_file(name, extension)
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8")
        if self._allure_active:
            import allure

            allure.attach(body, name=name, attachment_type=kind, extension=extension)
        return self._record(name, path, kind)

    def attach_file(
        self, name: str, path: Path | str, *, kind: str = "text/plain", extension: str | None = None
    ) -> Path:
        """Keep a copy of the file as it is now (a transcript may grow later); returns the copy."""
        source = Path(path)
        suffix = source.suffix.lstrip(".") if extension is None else extension
        copy = self._new_file(name, suffix)
        try:
            shutil.copyfile(source, copy)
        except OSError as error:
            copy.unlink(missing_ok=True)
            raise ThunderContainerError(
                f"evidence {name!r}: can't copy {source}: {error.strerror} "
                "(fix: attach a file that exists, or attach() its text instead)"
            ) from None
        if self._allure_active:
            import allure

            allure.attach.file(str(copy), name=name, attachment_type=kind, extension=suffix)
        return self._record(name, copy, kind)

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        """A named step of the test (boot, deploy, each check): an allure step when allure is on."""
        if not self._allure_active:
            yield
            return
        import allure

        with allure.step(title):
            yield

    def _new_file(self, name: str, extension: str) -> Path:
        stem = _UNSAFE.sub("_", name).strip("._") or "evidence"
        extension = _UNSAFE.sub("_", extension).strip("._")
        if extension and stem.endswith(f".{extension}"):
            stem = stem.removesuffix(f".{extension}")
        dot = f".{extension}" if extension else ""
        file_name, counter = f"{stem}{dot}", 1
        # Attaching the same name twice in one test keeps both: nothing is lost.
        while file_name in self._used_names:
            counter += 1
            file_name = f"{stem}-{counter}{dot}"
        self._used_names.add(file_name)
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / file_name

    def _record(self, name: str, path: Path, kind: str) -> Path:
        relative = (self._relative / path.name).as_posix()
        entry = {"name": name, "path": relative, "kind": kind}
        self._properties.append((EVIDENCE_PROPERTY, json.dumps(entry, ensure_ascii=False)))
        return path
