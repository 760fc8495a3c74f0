"""The exceptions the harness raises: each carries a message a user can act on."""

from __future__ import annotations


class ThunderContainerError(Exception):
    """Base of every error the harness reports to the user (never shown as a traceback)."""


class ImageError(ThunderContainerError):
    """An image can't be built, found or verified."""


class TargetError(ThunderContainerError):
    """A target can't be started, reached or stopped."""


class ConsoleError(TargetError):
    """The shell session on a target misbehaved (timeout, lost stream, no prompt)."""


class CommandFailed(ConsoleError):
    """A command run on the target returned a non-zero exit code where zero was required."""


class DeployError(ThunderContainerError):
    """A bundle can't be placed or a plugin can't be switched to the wanted mode."""

    def __init__(self, message: str, *, leaked: bool = False) -> None:
        super().__init__(message)
        self.leaked = leaked  # a failed activation left its container behind (runc lists it)


class TargetCrashed(ConsoleError):
    """The target's kernel panicked (or the target otherwise died) while the console waited."""
