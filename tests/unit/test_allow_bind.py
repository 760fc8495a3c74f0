"""--thunder-allow-bind: the paths reach Settings normalised, a relative one is refused, and the
report lists them."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]


pytestmark = pytest.mark.usefixtures("outside_xdist")


def test_the_allowed_paths_reach_the_settings_and_the_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("TC-MNT-007")
        def test_allowed(thunder_settings):
            assert thunder_settings.allowed_binds == ("/var/cache/ocdm", "/data")
        """
    )
    result = pytester.runpytest(
        "--thunder-allow-bind=/var/cache//ocdm/",
        "--thunder-allow-bind=/data",
        "--thunder-results=out",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "out" / "thunder-report.json").read_text())
    assert report["allowed_binds"] == ["/var/cache/ocdm", "/data"]


def test_a_relative_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--thunder-allow-bind=var/cache")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--thunder-allow-bind=var/cache: not an absolute host path*"])
