"""Lightflow extension: a REST API, an event stream and a live dashboard over HTTP.

``create_app(config)`` builds the Flask app (:mod:`lightflow_rest.app`);
``lightflow rest serve`` serves it. The package imports nothing heavy until
``create_app`` is asked for: ``lightflow --help`` imports the plugin module, and so
this one.
"""

from typing import Any

from .version import __version__

__all__ = ["__version__", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
