"""Lightflow: a lightweight, distributed workflow system for scientific facilities.

Importing ``lightflow`` is cheap on purpose (the CLI answers ``--help`` fast): the
workflow API lives in :mod:`lightflow.models` and :mod:`lightflow.tasks`, the
functions the CLI and REST layers call in :mod:`lightflow.api`.
"""

from .version import __version__

__all__ = ["__version__"]
