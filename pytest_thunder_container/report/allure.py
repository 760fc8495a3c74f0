"""What allure reads besides the test results: categories.json and environment.properties."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_thunder_container.errors import CommandFailed, ConsoleError, ImageError, TargetError
from pytest_thunder_container.thunder.transport import HttpStatusError, ThunderUnreachable


@dataclass(frozen=True)
class FailureCategory:
    """An allure category; the same patterns sort the failed tests of thunder-report.json."""

    name: str
    kind: str  # infrastructure, product, defect
    statuses: tuple[str, ...]
    message_regex: str


def _names(*classes: type) -> str:
    return "|".join(cls.__name__ for cls in classes)


# What allure calls "failed" (the rest is "broken"): an assertion or pytest.fail in the test.
_PRODUCT_FAILURE = r"(?s)(\S*\.)?(AssertionError|Failed)\b.*"
# Allure takes the first category whose regex matches the whole message; so does categorise().
CATEGORIES = (
    FailureCategory(
        "Infrastructure: target, console or image",
        "infrastructure",
        ("broken", "failed"),
        rf"(?s).*\b({_names(TargetError, ConsoleError, CommandFailed, ImageError)})"
        r"\b.*",
    ),
    FailureCategory(
        "Infrastructure: Thunder unreachable",
        "infrastructure",
        ("broken", "failed"),
        rf"(?s).*\b({_names(ThunderUnreachable, HttpStatusError)})\b.*",
    ),
    FailureCategory(
        "Infrastructure: timeout or QEMU exit",
        "infrastructure",
        ("broken", "failed"),
        r"(?s).*(did not finish within|QEMU exited).*",
    ),
    FailureCategory("Product: requirement not met", "product", ("failed",), _PRODUCT_FAILURE),
    FailureCategory("Harness or test defect", "defect", ("broken",), r"(?s).*"),
)


def allure_categories() -> list[dict[str, Any]]:
    """The content of allure's categories.json."""
    return [
        {
            "name": category.name,
            "matchedStatuses": list(category.statuses),
            "messageRegex": category.message_regex,
        }
        for category in CATEGORIES
    ]


def categorise(outcome: str, message: str) -> str | None:
    """infrastructure, product or defect for a failed or errored test; None otherwise."""
    if outcome not in ("failed", "error"):
        return None
    status = "failed" if re.fullmatch(_PRODUCT_FAILURE, message) else "broken"
    for category in CATEGORIES:
        if status in category.statuses and re.fullmatch(category.message_regex, message):
            return category.kind
    return "defect"


def environment_properties(
    harness_version: str, facts_by_target: Mapping[str, Mapping[str, str]]
) -> str:
    """allure's environment.properties: one target's facts plain, several prefixed by target."""
    pairs = [("harness.version", harness_version)]
    for target, facts in sorted(facts_by_target.items()):
        prefix = f"{target}." if len(facts_by_target) > 1 else ""
        pairs += [(prefix + key, value) for key, value in sorted(facts.items())]
    return "".join(
        f"{_java_escape(key, True)}={_java_escape(value, False)}\n" for key, value in pairs
    )


def _java_escape(text: str, is_key: bool) -> str:
    """java.util.Properties escaping, so allure reads back exactly the value written."""
    out = []
    for index, char in enumerate(text):
        if char in "\\=:#!" or (char == " " and (is_key or index == 0)):
            out.append("\\" + char)
        elif char in "\n\r\t\f":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}[char])
        elif not " " <= char <= "~":
            out.append("".join(f"\\u{unit:04x}" for unit in _utf16_units(char)))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
