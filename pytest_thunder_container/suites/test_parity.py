"""PAR: the plugin behaves the same in its container as out of process (mode Local).

One scenario (the package's for OCDM, or --thunder-scenario=FILE) runs once in each mode; each
test reads the comparison of its part, with the side-by-side diff and both transcripts attached.
"""

from __future__ import annotations

import pytest

from pytest_thunder_container import Verify

# With `-n N --dist loadgroup` these tests stay on one worker: the scenario runs once per worker.
pytestmark = pytest.mark.xdist_group("thunder-parity")


@pytest.mark.requirement("TC-PAR-001")
def test_methods_answer_the_same_in_both_modes(thunder_parity_check: Verify) -> None:
    thunder_parity_check("TC-PAR-001")


@pytest.mark.requirement("TC-PAR-002")
def test_controller_sees_the_plugin_the_same_in_both_modes(thunder_parity_check: Verify) -> None:
    thunder_parity_check("TC-PAR-002")


@pytest.mark.requirement("TC-PAR-003")
def test_activate_deactivate_cycles_behave_the_same_and_leave_nothing(
    thunder_parity_check: Verify,
) -> None:
    thunder_parity_check("TC-PAR-003")
