"""`thunder-container thunder build`: cross-build real Thunder's runtime trees into the cache."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .thunder_build import collisions, thunder_trees

LINES = {"R5": ("R5",), "R4.4": ("R4.4",), "all": ("R5", "R4.4")}


def _build_command(args: argparse.Namespace) -> int:
    trees = thunder_trees(LINES[args.api], mirror=args.mirror, rebuild=args.rebuild)
    for tree in trees.values():
        manifest = tree.manifest
        print(
            f"{tree.line} {manifest['version']} {manifest['files']} files "
            f"{manifest['size_bytes'] / 2**20:.1f} MiB {tree.root}"
        )
    if len(trees) == 2:
        clashes = collisions(trees["R5"].root, trees["R4.4"].root)
        print(f"paths both trees hold differently: {clashes or 'none'}", file=sys.stderr)
    return 0


def add_arguments(subparsers: Any) -> None:
    """`thunder build [--api R5|R4.4|all] [--mirror DIR] [--rebuild]`."""
    build = subparsers.add_parser(
        "build",
        help="cross-build real Thunder for arm64 (or find it in the cache); prints each tree",
        description="Build real Thunder, OCDM with ClearKey and the Containers plugin for arm64 "
        "from images/thunder/recipe.toml, taking the sources from a mirror directory "
        "(--mirror, $THUNDER_MIRROR or ../shared/mirror/thunder). Progress goes to stderr; "
        "stdout has one line per API line: version, files, size, runtime tree.",
    )
    build.add_argument("--api", choices=sorted(LINES), default="all", help="which line (all)")
    build.add_argument("--mirror", metavar="DIR", help="folder holding the source archives")
    build.add_argument("--rebuild", action="store_true", help="build even if the cache has it")
    build.set_defaults(func=_build_command)
