"""Lightflow extension: EPICS PV tasks, PV triggers and a PV watcher that starts workflows."""

from .version import __version__

__all__ = ["__version__"]
