"""pytest-thunder-container: conformance of Thunder plugins running in runc containers.

What a test author needs is importable from here; the folders hold the stages of the flow.
"""

__version__ = "0.1.0"

# Imported after __version__: the modules below read it from this package.
from pytest_thunder_container.conformance.failed_activation import (
    delete_leaked_container,
    diagnose_failed_activation,
)
from pytest_thunder_container.conformance.leftovers import (
    leftovers,
    plant_leftover_container,
    read_kill_times,
    wait_for_no_leftovers,
)
from pytest_thunder_container.conformance.runc_log import target_now
from pytest_thunder_container.errors import DeployError, ThunderContainerError
from pytest_thunder_container.plugin.markers import requirement_cases
from pytest_thunder_container.plugin.suite_fixtures import Verify
from pytest_thunder_container.settings import Settings
from pytest_thunder_container.shell.protocol import Shell
from pytest_thunder_container.thunder.client import ThunderClient, connect
from pytest_thunder_container.thunder.deploy import (
    RUNC,
    BundleSpec,
    ContainerDeployment,
)
from pytest_thunder_container.thunder.health import restart_thunder, thunder_down
from pytest_thunder_container.thunder.transport import (
    ThunderError,
    ThunderUnreachable,
)

__all__ = [
    "RUNC",
    "BundleSpec",
    "ContainerDeployment",
    "DeployError",
    "Settings",
    "Shell",
    "ThunderClient",
    "ThunderContainerError",
    "ThunderError",
    "ThunderUnreachable",
    "Verify",
    "__version__",
    "connect",
    "delete_leaked_container",
    "diagnose_failed_activation",
    "leftovers",
    "plant_leftover_container",
    "read_kill_times",
    "requirement_cases",
    "restart_thunder",
    "target_now",
    "thunder_down",
    "wait_for_no_leftovers",
]
