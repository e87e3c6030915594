"""The ``lightflow`` command line.

Commands are thin: they parse input, call :mod:`lightflow.api` (or the config and
plugin modules), and render. Every :class:`~lightflow.exceptions.LightflowError` is
rendered once, by the root group, as ``Error: <one line>``. Extensions add their own
command groups through the ``lightflow_cli_commands`` hook; a command of theirs gets
the loaded configuration with :func:`get_config`.
"""

from .main import CliState, cli, get_config, main

__all__ = ["CliState", "cli", "get_config", "main"]
