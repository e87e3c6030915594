"""The hooks lightflow-rest implements (entry point ``lightflow``, name ``rest``).

Kept light: ``lightflow --help`` calls :func:`lightflow_cli_commands`, so only the
click group is imported here; Flask and gunicorn load when a command runs.
"""

from __future__ import annotations

from typing import Any

from lightflow.plugins import hookimpl


@hookimpl
def lightflow_cli_commands() -> list[Any]:
    """``lightflow rest ...``."""
    from .cli import rest_group

    return [rest_group]


@hookimpl
def lightflow_config_defaults() -> dict[str, Any]:
    """The ``extensions.rest`` section (see :data:`lightflow_rest.settings.DEFAULTS`)."""
    from .settings import DEFAULTS

    return {
        "extensions": {
            "rest": {key: list(v) if isinstance(v, list) else v for key, v in DEFAULTS.items()}
        }
    }
