"""A test extension: ``lightflow fixture hello``, ``HelloTask``, defaults, a trigger source.

It uses only the public extension API: the hooks of ``lightflow.plugins.hookspecs``
marked with ``lightflow.plugins.hookimpl``, and ``lightflow.cli.get_config``.
"""

import click
from lightflow.plugins import hookimpl


@click.group("fixture")
def fixture() -> None:
    """Commands of the fixture extension."""


@fixture.command("hello")
@click.argument("name", default="world")
def hello(name: str) -> None:
    """Greet NAME with the configured greeting."""
    from lightflow.cli import get_config

    greeting = get_config().extensions["fixture"]["greeting"]
    click.echo(f"{greeting}, {name}! (from the fixture extension)")


@hookimpl
def lightflow_cli_commands():
    return [fixture]


@hookimpl
def lightflow_task_types():
    # The task module imports lightflow.models; loading it here, not at import time,
    # keeps `lightflow --help` light.
    from .tasks import HelloTask

    return [HelloTask]


@hookimpl
def lightflow_config_defaults():
    return {"extensions": {"fixture": {"greeting": "Hello"}}}


@hookimpl
def lightflow_trigger_sources():
    from .sources import LineSource

    return [LineSource]
