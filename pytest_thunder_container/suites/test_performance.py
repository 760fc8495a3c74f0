"""PERF: container start latency, measured on the target's own clock and recorded with the target.

The figures (raw samples, statistics, phases, floors and the harness's self-check) go to
<results>/thunder-latency.json and thunder-latency.svg; nothing fails on an absolute time unless
--thunder-max-start-ms is given.
"""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify

# With `-n N --dist loadgroup` these tests stay on one worker: the benchmark runs once per worker.
pytestmark = pytest.mark.xdist_group("thunder-performance")


@pytest.mark.requirement("TC-PERF-001")
def test_median_container_start_is_within_the_limit(thunder_latency_check: Verify) -> None:
    thunder_latency_check("TC-PERF-001")


@pytest.mark.requirement("TC-PERF-002")
def test_start_latency_is_measured_and_recorded_with_its_target(
    thunder_latency_check: Verify,
) -> None:
    thunder_latency_check("TC-PERF-002")
