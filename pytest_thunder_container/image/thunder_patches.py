"""Declared edits to an upstream source tree, each with its reason, applied before a step builds.

The reference image runs on an emulated Pi 3, where some upstream constants (a runc call's time
limit) do not hold. A patch names the file, the exact text, its replacement and why; it must
match exactly once, so an upstream change that moves the text stops the build instead of being
silently skipped. Every patch applied is listed in the tree's manifest and the report's facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ImageError


@dataclass(frozen=True)
class Patch:
    path: str
    old: str
    new: str
    why: str

    def describe(self) -> dict[str, str]:
        return {"path": self.path, "old": self.old, "new": self.new, "why": self.why}


def parse_patches(table: dict[str, Any], where: str) -> tuple[Patch, ...]:
    """The `patches` list of a step: tables with path, old, new and why (all non-empty)."""
    patches = table.get("patches", [])
    if not isinstance(patches, list):
        raise ImageError(f"{where}: patches must be a list of tables")
    parsed = []
    for index, patch in enumerate(patches, 1):
        keys = ("path", "old", "new", "why")
        if not isinstance(patch, dict) or not all(
            isinstance(patch.get(key), str) and patch[key] for key in keys
        ):
            raise ImageError(f"{where}: patch {index} needs path, old, new and why (strings)")
        parsed.append(Patch(*(patch[key] for key in keys)))
    return tuple(parsed)


def apply_patches(src: Path, patches: tuple[Patch, ...], label: str) -> None:
    """Apply each patch to the unpacked tree `src`; stop when one doesn't match exactly once."""
    for patch in patches:
        target = src / patch.path
        if not target.is_file():
            raise ImageError(f"{label}: patch target {patch.path} is not in the sources")
        text = target.read_text()
        count = text.count(patch.old)
        if count != 1:
            raise ImageError(
                f"{label}: patch of {patch.path} expects {patch.old!r} once, found it {count} "
                "times; the sources changed: update the patch in images/thunder/recipe.toml"
            )
        target.write_text(text.replace(patch.old, patch.new))
