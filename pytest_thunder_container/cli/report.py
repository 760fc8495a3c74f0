"""`thunder-container report verify|keygen`: check a results folder against its report; keys."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.report.certification import REPORT_JSON
from pytest_thunder_container.report.integrity import (
    INTEGRITY,
    check_files,
    check_signature,
    summary,
)
from pytest_thunder_container.report.signing import generate_keys, load_public_key


def add_arguments(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = sub.add_parser(
        "verify",
        help="recompute every file's sha256 against thunder-report.json; exit 1 on any change",
    )
    verify.add_argument("results", type=Path, metavar="DIR", help="the results folder")
    verify.add_argument(
        "--public-key",
        type=Path,
        metavar="PUB",
        help="check the report's Ed25519 signature with this PEM public key",
    )
    verify.set_defaults(func=run_verify)
    keygen = sub.add_parser("keygen", help="make an Ed25519 key pair for --thunder-sign-key")
    keygen.add_argument("private", type=Path, metavar="KEY", help="private key (PEM PKCS#8, 0600)")
    keygen.add_argument("public", type=Path, metavar="PUB", help="public key (PEM SPKI)")
    keygen.set_defaults(func=run_keygen)


def run_verify(args: argparse.Namespace) -> int:
    """One line per file changed, missing or added, and the signature's state; exit 1 on any."""
    public_key = load_public_key(args.public_key, what="--public-key") if args.public_key else None
    report = _load_report(args.results)
    problems = check_files(report, args.results, REPORT_JSON)
    signature_problems, signature_note = check_signature(report, public_key, REPORT_JSON)
    problems += signature_problems
    for problem in problems:
        print(problem.text())
    listed = len(report[INTEGRITY]["files"])
    print(
        f"{args.results}: {listed} files listed; {summary(problems)}; signature: {signature_note}"
    )
    return 1 if problems else 0


def run_keygen(args: argparse.Namespace) -> int:
    fingerprint = generate_keys(args.private, args.public)
    print(f"private key {args.private} (keep it secret), public key {args.public}")
    print(f"fingerprint {fingerprint}")
    return 0


def _load_report(results: Path) -> dict[str, Any]:
    path = results / REPORT_JSON
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ThunderContainerError(
            f"{path}: no report (fix: give the --thunder-results folder of a run)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ThunderContainerError(f"{path}: not a readable report: {error}") from None
    files = report.get(INTEGRITY, {}).get("files") if isinstance(report, dict) else None
    if not isinstance(files, list):
        raise ThunderContainerError(
            f"{path}: no integrity section (an older harness wrote it, or it is not a "
            "thunder-report.json): nothing to verify against"
        )
    shape = {"path": str, "size": int, "sha256": str}
    for entry in files:
        if not (
            isinstance(entry, dict) and all(isinstance(entry.get(k), t) for k, t in shape.items())
        ):
            raise ThunderContainerError(
                f"{path}: integrity.files holds {entry!r}, not {{path, size, sha256}}: "
                "the report was edited by hand"
            )
    return report
