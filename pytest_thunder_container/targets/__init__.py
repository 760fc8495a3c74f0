"""Targets: a device booted by the harness (QEMU) or attached to (a board on a serial line)."""
