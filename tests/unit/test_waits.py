"""The timeout factor is applied once: by the step that waits, never again by the loop around it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from thunder_payloads import R5, ReplayThunder

from pytest_thunder_container.thunder.client import ThunderClient, ThunderStateTimeout
from pytest_thunder_container.thunder.transport import HttpTransport
from pytest_thunder_container.waits import Deadline


class RecordingTransport:
    """The real HTTP transport, with the nominal timeout of every request written down."""

    def __init__(self, inner: HttpTransport) -> None:
        self.inner = inner
        self.timeouts: list[float] = []

    @property
    def endpoint(self) -> str:
        return self.inner.endpoint

    def post(self, body: bytes, timeout: float) -> bytes:
        self.timeouts.append(timeout)
        return self.inner.post(body, timeout)


@pytest.fixture
def thunder() -> Iterator[ReplayThunder]:
    replay = ReplayThunder(R5)
    yield replay
    replay.close()


def test_a_deadline_counts_real_time_and_hands_out_nominal_seconds() -> None:
    deadline = Deadline(0.2, 3)
    assert 0.19 < deadline.left() <= 0.2 and deadline.real == pytest.approx(0.6)
    time.sleep(0.3)
    assert not deadline.expired() and 0.0 < deadline.left() < 0.11
    time.sleep(0.35)
    assert deadline.expired() and deadline.left() == 0.0
    assert deadline.describe() == "0.6 s (timeout 0.2 s x factor 3)"


def test_waiting_for_a_state_applies_the_factor_once(thunder: ReplayThunder) -> None:
    transport = RecordingTransport(HttpTransport(thunder.url, timeout_factor=3))
    client = ThunderClient(transport, timeout=0.2, timeout_factor=3)
    started = time.monotonic()
    with pytest.raises(ThunderStateTimeout) as caught:
        client.wait_for_state("OCDM", "Activated", timeout=0.3)
    waited = time.monotonic() - started
    # 0.3 s x 3, not 0.3 s (no factor) and not 2.7 s (the factor twice).
    assert 0.9 <= waited < 1.8
    assert "within 0.9 s (timeout 0.3 s x factor 3)" in str(caught.value)
    # Each request gets nominal seconds (the transport applies the factor): never more than the
    # client's own 0.2 s, however long the loop still had in real time.
    assert len(transport.timeouts) > 1 and max(transport.timeouts) <= 0.2
