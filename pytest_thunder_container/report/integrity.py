"""The report's integrity section: every file of the results folder by size and sha256, signed.

The signature covers the whole report (verdict, harness version, catalogue and image sha256,
the file list) in a canonical JSON form, minus the signature's own value.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_thunder_container.report.signing import ALGORITHM, PublicKey, Signer

INTEGRITY = "integrity"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Discrepancy:
    """One way the folder or the report differs from what was recorded."""

    kind: str  # changed, missing, added, signature
    path: str
    detail: str

    def text(self) -> str:
        return f"{self.kind}: {self.path}" + (f" ({self.detail})" if self.detail else "")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_files(results: Path, report_name: str) -> Iterator[tuple[str, Path]]:
    """Every regular file under results but the report itself, as (posix relative path, path)."""
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results).as_posix()
        if relative != report_name and (path.is_file() or path.is_symlink()):
            yield relative, path


def manifest(results: Path, report_name: str) -> list[dict[str, Any]]:
    """{path, size, sha256} of every file the report relies on (the folder, the HTML included)."""
    return [
        {"path": relative, "size": path.stat().st_size, "sha256": file_digest(path)}
        for relative, path in folder_files(results, report_name)
    ]


def unsigned_section(signer: Signer | None) -> dict[str, Any]:
    """The integrity section before the files are listed: what the HTML page shows."""
    signature = None
    if signer is not None:
        signature = {"algorithm": ALGORITHM, "key_fingerprint": signer.fingerprint, "value": None}
    return {"algorithm": "sha256", "files": [], "signature": signature}


def canonical(report: Mapping[str, Any]) -> bytes:
    """The bytes a signature covers: the report, sorted keys, without the signature's value."""
    document = copy.deepcopy(dict(report))
    signature = document.get(INTEGRITY, {}).get("signature")
    if isinstance(signature, dict):
        signature["value"] = None
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def seal(report: dict[str, Any], results: Path, report_name: str, signer: Signer | None) -> None:
    """List the folder's files in the report and sign it (in place)."""
    section = report[INTEGRITY]
    section["files"] = manifest(results, report_name)
    if signer is not None:
        section["signature"]["value"] = signer.sign(canonical(report))


def check_files(report: Mapping[str, Any], results: Path, report_name: str) -> list[Discrepancy]:
    """Each file changed (size or sha256), missing, or added since the report was written."""
    recorded = {entry["path"]: entry for entry in report[INTEGRITY]["files"]}
    present = dict(folder_files(results, report_name))
    found = [
        Discrepancy("missing", relative, "listed in the report, not in the folder")
        for relative in recorded
        if relative not in present
    ]
    for relative, path in present.items():
        entry = recorded.get(relative)
        if entry is None:
            found.append(Discrepancy("added", relative, "in the folder, not in the report"))
            continue
        size, digest = path.stat().st_size, file_digest(path)
        if (size, digest) != (entry["size"], entry["sha256"]):
            found.append(
                Discrepancy(
                    "changed",
                    relative,
                    f"size {entry['size']} -> {size}, sha256 {entry['sha256'][:12]}... -> "
                    f"{digest[:12]}...",
                )
            )
    return sorted(found, key=lambda item: (item.path, item.kind))


def check_signature(
    report: Mapping[str, Any], public_key: PublicKey | None, report_name: str
) -> tuple[list[Discrepancy], str]:
    """Problems with the signature, and a line saying what was checked."""
    signature = report[INTEGRITY].get("signature")
    if not isinstance(signature, dict) or not signature.get("value"):
        if public_key is None:
            return [], "not signed: an edit of the report itself can't be told"
        return [Discrepancy("signature", report_name, "the report is not signed")], "not signed"
    signed_by = str(signature.get("key_fingerprint"))
    if public_key is None:
        return [], f"signed by {signed_by}, not checked (fix: --public-key=PUB)"
    if public_key.fingerprint != signed_by:
        detail = f"signed by {signed_by}, not by the given key {public_key.fingerprint}"
        return [Discrepancy("signature", report_name, detail)], "wrong key"
    if not public_key.verifies(canonical(report), str(signature["value"])):
        detail = f"does not match: the report was changed after it was signed by {signed_by}"
        return [Discrepancy("signature", report_name, detail)], "invalid"
    return [], f"valid {ALGORITHM} signature by {signed_by}"


def summary(found: Sequence[Discrepancy]) -> str:
    counts = {kind: sum(d.kind == kind for d in found) for kind in ("changed", "missing", "added")}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())
