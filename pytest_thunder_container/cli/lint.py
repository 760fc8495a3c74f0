"""The `thunder-container lint` command: findings on stdout, the summary on stderr."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pytest_thunder_container.conformance.catalogue import load_catalogue
from pytest_thunder_container.conformance.static_rules import Finding, LintContext, check_config
from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.oci.config import DEFAULT_COMMUNICATOR, DIALECTS, load_config
from pytest_thunder_container.oci.schema import DEBIAN_SCHEMA_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`thunder-container lint`: findings on stdout, one per line; the summary line on stderr."""
    parser.add_argument("configs", nargs="+", type=Path, metavar="CONFIG", help="config.json files")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--dialect", choices=DIALECTS, help="Thunder generation (default: both)")
    parser.add_argument("--arch", default="arm64", help="target architecture (default arm64)")
    parser.add_argument(
        "--allow-bind",
        action="append",
        default=[],
        metavar="PATH",
        help="a host path a writable bind mount may carry besides /tmp (TC-MNT-007); repeatable",
    )
    parser.add_argument(
        "--communicator", default=DEFAULT_COMMUNICATOR, help="Thunder's communicator address"
    )
    parser.add_argument(
        "--schema-dir",
        type=Path,
        default=DEBIAN_SCHEMA_DIR,
        help="folder of the OCI config-schema.json (default: Debian's package)",
    )
    parser.set_defaults(func=run_lint)


@dataclass(frozen=True)
class FileResult:
    """The lint of one CONFIG argument: its findings, or why it couldn't be read."""

    path: str
    findings: tuple[Finding, ...] = ()
    error: str | None = None

    def count(self, level: str) -> int:
        """How many findings of a level (MUST or SHOULD)."""
        return sum(finding.level == level for finding in self.findings)


def run_lint(args: argparse.Namespace) -> int:
    """Lint every CONFIG; exit 2 for unusable input, else 1 when a MUST fails, else 0.

    Text: one finding per line on stdout (prefixed by the file when there are several), the
    summary line on stderr, so stdout holds findings only.
    """
    ctx = LintContext.create(
        load_catalogue(),
        dialect=args.dialect,
        arch=args.arch,
        communicator=args.communicator,
        schema_dir=args.schema_dir,
        allowed_binds=tuple(args.allow_bind),
    )
    results = [_lint_file(path, ctx) for path in args.configs]
    unusable = sum(result.error is not None for result in results)
    must = sum(result.count("MUST") for result in results)
    should = sum(result.count("SHOULD") for result in results)
    exit_code = 2 if unusable else (1 if must else 0)
    if args.format == "json":
        print(json.dumps(_json_report(ctx, results, exit_code), indent=2))
    else:
        for result in results:
            prefix = f"{result.path}: " if len(results) > 1 else ""
            for finding in result.findings:
                print(prefix + finding.text())
    counts = f"{must} MUST, {should} SHOULD findings"
    if unusable:
        counts += f", {unusable} of {len(results)} files unusable"
    print(f"{counts}; {ctx.schema_note}", file=sys.stderr)
    return exit_code


def _lint_file(path: Path, ctx: LintContext) -> FileResult:
    try:
        return FileResult(str(path), tuple(check_config(load_config(path), ctx)))
    except ThunderContainerError as problem:
        print(f"thunder-container lint: {problem}", file=sys.stderr)
        return FileResult(str(path), error=str(problem))


def _json_report(ctx: LintContext, results: list[FileResult], exit_code: int) -> dict[str, Any]:
    source = ctx.schema.source if ctx.schema else None
    schema = {
        "checked": source is not None,
        "note": ctx.schema_note,
        "description": source.describe() if source else None,
        "directory": str(source.directory) if source else None,
        "package_version": source.package_version if source else None,
        "spec_version": source.spec_version if source else None,
    }
    files = [
        {
            "path": result.path,
            "usable": result.error is None,
            "error": result.error,
            "must": result.count("MUST"),
            "should": result.count("SHOULD"),
            "findings": [asdict(finding) for finding in result.findings],
        }
        for result in results
    ]
    return {
        "schema": schema,
        "dialect": ctx.dialect,
        "arch": ctx.arch,
        "communicator": ctx.communicator,
        "allowed_binds": list(ctx.allowed_binds),  # TC-MNT-007: besides the catalogue's /tmp
        "files": files,
        "findings": [{"file": r.path, **asdict(f)} for r in results for f in r.findings],
        "exit_code": exit_code,
    }
