"""The user's files checked before anything boots: image, container config, rootfs tarball."""

from __future__ import annotations

import tarfile
from pathlib import Path

from pytest_thunder_container.errors import ThunderContainerError
from pytest_thunder_container.settings import Settings, SettingsError

CALLSIGN_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def check_inputs(settings: Settings) -> None:
    """SettingsError naming the option, the file and what is wrong with it."""
    _check_callsign(settings.callsign)
    if settings.image is not None:
        _check_image(settings)
    if settings.container_config is not None:
        _check_container_config(settings.container_config)
    if settings.rootfs is not None:
        _check_rootfs(settings.rootfs)
    for spec in settings.targets:
        if spec.kind == "labgrid":
            _check_labgrid_place(settings, spec.address)


def _check_callsign(callsign: str) -> None:
    if not callsign or not set(callsign) <= CALLSIGN_CHARACTERS:
        raise SettingsError(
            f"--thunder-callsign={callsign!r}: a Thunder callsign is letters, digits, '_', '.' "
            "and '-' (it names the plugin's config file and its container)"
        )


def _check_image(settings: Settings) -> None:
    image = settings.image
    assert image is not None
    if not image.exists():
        raise SettingsError(f"--thunder-image={image}: no such file or directory")
    try:
        if image.is_file():
            from pytest_thunder_container.image.sdcard import check_sdcard_file

            check_sdcard_file(image)
            return
        from pytest_thunder_container.image.model import load_image_dir

        loaded = load_image_dir(image)
    except ThunderContainerError as error:
        raise SettingsError(f"--thunder-image={image}: {error}") from None
    needs_dtb = [s.address for s in settings.targets if s.kind == "qemu" and s.address == "rpi3"]
    if needs_dtb and loaded.dtb is None:
        raise SettingsError(
            f"--thunder-image={image}: no device tree (.dtb) in it, and the rpi3 machine needs "
            "one (fix: add the Pi 3 dtb, e.g. bcm2837-rpi-3-b.dtb, or use --thunder-target=virt)"
        )


def _check_container_config(path: Path) -> None:
    from pytest_thunder_container.oci.config import load_config

    try:
        config = load_config(path)
    except ThunderContainerError as error:
        raise SettingsError(f"--thunder-container-config: {error}") from None
    missing = [key for key in ("ociVersion", "process", "root") if key not in config]
    if missing:
        raise SettingsError(
            f"--thunder-container-config={path}: not an OCI runtime config (no "
            f"{', '.join(missing)}); give the bundle's config.json, e.g. from `runc spec`"
        )


def _check_rootfs(path: Path) -> None:
    if not path.is_file():
        raise SettingsError(f"--thunder-rootfs={path}: no such file")
    try:
        with tarfile.open(path) as archive:
            first = archive.next()
    except (tarfile.TarError, OSError) as error:
        raise SettingsError(
            f"--thunder-rootfs={path}: not a tar archive ({error}); give the rootfs.tar your "
            "build produces (buildroot: output/images/rootfs.tar)"
        ) from None
    if first is None:
        raise SettingsError(f"--thunder-rootfs={path}: the tar archive is empty")


def _check_labgrid_place(settings: Settings, selector: str) -> None:
    """The place (or a place with the tags) exists on the coordinator and has a serial port."""
    from pytest_thunder_container.targets.labgrid_place import (
        Coordinator,
        coordinator_address,
        power_missing,
        select_places,
    )

    coordinator = Coordinator(coordinator_address(settings.labgrid_coordinator), "", "")
    try:
        places = coordinator.places()
    except ThunderContainerError as error:
        raise SettingsError(f"--thunder-target=labgrid:{selector}: {error}") from None
    chosen = select_places(selector, places)
    if settings.power_cycle == "labgrid" and not any(p.power for p in chosen):
        raise SettingsError(power_missing([p.name for p in chosen]))
