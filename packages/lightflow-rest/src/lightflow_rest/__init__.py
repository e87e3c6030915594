"""Lightflow extension: a REST API, an event stream and a live dashboard over HTTP."""

from .version import __version__

__all__ = ["__version__"]
