"""The `thunder-container` command: image, thunder, lint, certify, report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pytest_thunder_container.errors import ThunderContainerError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thunder-container",
        description="Conformance tooling for Thunder plugins in runc containers.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    image = sub.add_parser("image", help="build or inspect target images")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    from pytest_thunder_container.image import build as imagebuild

    imagebuild.add_arguments(image_sub)
    from pytest_thunder_container.image import sdcard_build as sdbuild

    sdbuild.add_arguments(image_sub)

    thunder = sub.add_parser("thunder", help="cross-build real Thunder for the reference image")
    from pytest_thunder_container.image import thunder_cli

    thunder_cli.add_arguments(thunder.add_subparsers(dest="thunder_command", required=True))

    lint = sub.add_parser("lint", help="check an OCI config.json against the Thunder rules")
    from pytest_thunder_container.cli import lint as lintcli

    lintcli.add_arguments(lint)

    certify = sub.add_parser(
        "certify",
        help="run the packaged suites with the recommended options; exit 0 only when certified",
        usage="thunder-container certify [PYTEST-OPTION ...]",
        description="Run the conformance suites of the installed package. Every option is "
        "pytest's: --thunder-image=PATH, --thunder-target=..., -n 2, ... (pytest --help).",
    )
    from pytest_thunder_container.cli import certify as certifycli

    certifycli.add_arguments(certify)

    report = sub.add_parser("report", help="verify a results folder; make a signing key")
    from pytest_thunder_container.cli import report as reportcli

    reportcli.add_arguments(report.add_subparsers(dest="report_command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "pass_to_pytest", False):
        args.pytest_args = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args))
    except ThunderContainerError as error:
        print(f"thunder-container: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("thunder-container: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
