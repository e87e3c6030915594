"""``lightflow workflow``: list the configured workflows, draw one's DAGs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from .main import CliState


@click.group("workflow")
def workflow_group() -> None:
    """List workflows and draw their DAGs."""


@workflow_group.command("list")
@click.pass_obj
def workflow_list(state: CliState) -> None:
    """List the workflows in the configured workflow folders.

    A file that cannot be loaded is listed with the reason.
    """
    from ..workflows import list_workflows

    config = state.config
    if not config.workflows:
        click.echo(
            "No workflow folders are configured: add them to 'workflows' in "
            "lightflow.cfg or set LIGHTFLOW_WORKFLOWS."
        )
        return
    listings = list_workflows(config.workflows)
    if not listings:
        folders = ", ".join(str(p) for p in config.workflows)
        click.echo(f"No workflows found in {folders}.")
        return
    width = max(len(listing.name) for listing in listings)
    for listing in listings:
        if listing.error is not None:
            click.echo(f"{listing.name:<{width}}  [broken] {listing.error}")
        else:
            click.echo(f"{listing.name:<{width}}  {listing.summary}".rstrip())


@workflow_group.command("graph")
@click.argument("workflow")
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(["dot", "mermaid"]),
    default="dot",
    show_default=True,
    help="Graphviz DOT or Mermaid flowchart text.",
)
@click.pass_obj
def workflow_graph(state: CliState, workflow: str, fmt: str) -> None:
    """Print the DAGs of WORKFLOW (a file or a name) as a graph.

    Every DAG is a subgraph; edges show slot labels, nodes their queue when it is
    not the default. Render with e.g. `lightflow workflow graph FILE | dot -Tpng -o g.png`.
    """
    from .. import api
    from ..graph import render

    click.echo(render(api.load(workflow, state.config), fmt), nl=False)
