"""End to end: real Thunder in the reference rpi3 image answers, with OCDM and ClearKey."""

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
    clearkey = next(drm for drm in drms if drm["name"] == "ClearKey")
    assert "org.w3.clearkey" in clearkey["keysystems"]
    # Real Thunder's own version, not a stand-in's: 5.3.x on R5, 4.4.x on R4.4.
    version = thunder_jsonrpc.version()
    assert version and version.split(".")[:2] in (["5", "3"], ["4", "4"]), version
