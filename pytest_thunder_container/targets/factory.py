"""Turn the settings into the target this pytest process (or xdist worker) will use."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_thunder_container.image.model import Image, cache_dir, load_image_dir
from pytest_thunder_container.image.sdcard import SdCardImage, load_sdcard
from pytest_thunder_container.settings import Settings, TargetSpec, worker_id
from pytest_thunder_container.shell.console import Login
from pytest_thunder_container.targets.base import Target
from pytest_thunder_container.targets.qemu import QemuTarget
from pytest_thunder_container.targets.serial import SerialTarget
from pytest_thunder_container.targets.snapshots import SnapshotStore

Progress = Callable[[str], None]


def resolve_image(settings: Settings, progress: Progress) -> Image | SdCardImage:
    """The user's --thunder-image (an SD card image file or a kernel+initrd directory), or the
    reference image (built on first use)."""
    if settings.image is not None and settings.image.is_file():
        return load_sdcard(settings.image, cache_dir(), progress)
    if settings.image is not None:
        return load_image_dir(settings.image)
    from pytest_thunder_container.image.build import reference_image

    return reference_image("rpi3", progress=progress)


def login_for(settings: Settings, image: Image | None) -> Login:
    """Credentials from the options, else from the image's manifest, else root without password."""
    if settings.login_user is not None or settings.password is not None:
        return Login(settings.login_user or "root", settings.password)
    if image is not None and image.login is not None:
        user, password = image.login
        return Login(user, password)
    return Login("root", None)


def make_target(
    settings: Settings,
    spec: TargetSpec,
    *,
    results: Path,
    label: str,
    progress: Progress,
    host_address: str | None = None,
) -> Target:
    """The target for `spec`; `host_address` is where a board reaches this host (for files)."""
    if spec.kind == "qemu":
        image = resolve_image(settings, progress)
        extra = f"thunder.api={settings.reference_api}" if settings.reference_api else ""
        return QemuTarget(
            spec.address,
            image,
            results=results,
            snapshots=SnapshotStore(cache_dir() / "snapshots"),
            login=login_for(settings, image),
            timeout_factor=settings.timeout_factor,
            cold_boot=settings.cold_boot,
            extra_append=extra,
            guest_port=settings.guest_port,
            label=label,
        )
    board = {
        "results": results,
        "login": login_for(settings, None),
        "baudrate": settings.baudrate,
        "timeout_factor": settings.timeout_factor,
        "power_cycle": settings.power_cycle,
        "jsonrpc_url": settings.jsonrpc_url,
        "host_address": host_address,
        "label": label,
    }
    if spec.kind == "labgrid":
        return make_labgrid_target(settings, spec.address, progress, board)
    return SerialTarget(spec.address, **board)


def make_labgrid_target(
    settings: Settings, selector: str, progress: Progress, board: dict[str, Any]
) -> Target:
    """A place of labgrid's coordinator (`board`: the options of any serial board); xdist
    workers start from different matching places."""
    from pytest_thunder_container.targets.labgrid_place import (
        Coordinator,
        coordinator_address,
        holder_name,
    )
    from pytest_thunder_container.targets.labgrid_target import LabgridTarget
    from pytest_thunder_container.targets.pool import worker_index

    worker = worker_id()
    holder_host, holder_user = holder_name(worker)
    coordinator = Coordinator(
        coordinator_address(settings.labgrid_coordinator), holder_host, holder_user
    )
    return LabgridTarget(
        selector,
        coordinator,
        wait=settings.pool_wait,
        start_index=worker_index(worker),
        progress=progress,
        **board,
    )
