"""Errors a user can cause. Each message names the file (or folder) and the fix, on one line.

The entry points catch `PaulowError`, print `error: <message>` and exit non-zero, without a traceback.
"""

from __future__ import annotations


class PaulowError(Exception):
    """Base class for every error a user can cause and fix."""

    exit_code = 2


class EmptyFolderError(PaulowError):
    """An input folder holds no supported image."""


class UnreadableImageError(PaulowError):
    """A file could not be decoded (corrupt, truncated, unsupported)."""


class PairingError(PaulowError):
    """Images without masks or masks without images."""


class ShapeMismatchError(PaulowError):
    """Image and mask sizes, page counts or channel counts disagree."""


class ModelError(PaulowError):
    """A model file is missing, unreadable or does not fit the input."""


class UsageError(PaulowError):
    """A bad answer or option: a name that exists, an unknown option value, no answer on stdin."""


class InterruptedRun(PaulowError):
    """The user pressed Ctrl-C; nothing was deleted."""

    exit_code = 130


class Cancelled(PaulowError):
    """The user cancelled a prediction or a training run (a front end's cancel button); nothing was
    written."""
