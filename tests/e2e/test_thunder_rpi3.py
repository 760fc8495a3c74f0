"""End to end: the reference Thunder in the rpi3 image, OCDM in Local and in Container mode."""

from __future__ import annotations

import pytest

from pytest_thunder_container.thunder.client import ThunderClient

pytestmark = pytest.mark.e2e


def test_thunder_answers_and_its_dialect_is_detected(thunder_jsonrpc: ThunderClient) -> None:
    assert thunder_jsonrpc.dialect in ("R5", "R4.4")
    # The worker's session-wide deployment may have left OCDM deactivated (the e2e tests share
    # one target per worker), and Thunder answers before its start-up activations are done.
    if thunder_jsonrpc.state("OCDM") == "Deactivated":
        thunder_jsonrpc.activate("OCDM", timeout=60)
    thunder_jsonrpc.wait_for_state("OCDM", "Activated", timeout=60)
    drms = thunder_jsonrpc.call("OCDM.1.drms")
    assert drms[0]["name"] == "PlayReady"
