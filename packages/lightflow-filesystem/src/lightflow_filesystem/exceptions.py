"""The errors of lightflow-filesystem, under their 1.x names.

Every one is a :class:`lightflow.exceptions.LightflowError` (so the engine records it
as one line naming the task, the path and the reason, and the CLI prints that line)
and, as in 1.x, a :class:`RuntimeError`, so an ``except RuntimeError`` written for 1.x
still catches it. Each operation has its own class; 1.x built some of them and dropped
them, here they are always raised.
"""

from __future__ import annotations

from lightflow.exceptions import LightflowError


class LightflowFilesystemError(LightflowError, RuntimeError):
    """Base of the errors of the file tasks and folder triggers."""


class LightflowFilesystemConfigError(LightflowFilesystemError):
    """A task argument has the wrong type or value (e.g. ChownTask with no user or group)."""


class LightflowFilesystemPathError(LightflowFilesystemError):
    """A path is not absolute, does not exist, or is not what the task needs."""


class LightflowFilesystemPermissionError(LightflowFilesystemError):
    """ChmodTask's ``permission`` is not a POSIX mode written in octal (``'755'``)."""


class LightflowFilesystemCopyError(LightflowFilesystemError):
    """Copying a file or folder failed."""


class LightflowFilesystemMoveError(LightflowFilesystemError):
    """Moving a file or folder failed."""


class LightflowFilesystemMkdirError(LightflowFilesystemError):
    """Creating a folder failed."""


class LightflowFilesystemRemoveError(LightflowFilesystemError):
    """Removing a file or folder failed."""


class LightflowFilesystemChownError(LightflowFilesystemError):
    """Changing the owner or group of a path failed."""


class LightflowFilesystemChmodError(LightflowFilesystemError):
    """Changing the permissions of a path failed."""
