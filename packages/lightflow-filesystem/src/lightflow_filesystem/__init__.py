"""Lightflow extension: file tasks, folder triggers and a folder watcher that starts workflows."""

from .version import __version__

__all__ = ["__version__"]
