"""``lightflow config``: write the default file, show the effective config, get examples."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..exceptions import ConfigError, LightflowError

if TYPE_CHECKING:
    from .main import CliState


@click.group("config")
def config_group() -> None:
    """Write, show and find the configuration (lightflow.cfg)."""


@config_group.command("default")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing lightflow.cfg.")
def config_default(directory: Path, force: bool) -> None:
    """Write a commented default lightflow.cfg into DIRECTORY."""
    from ..config import CONFIG_NAME, Config

    target = directory / CONFIG_NAME
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists; use --force to overwrite it")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        target.write_text(Config.defaults_yaml(), encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write {target}: {error.strerror or error}") from None
    click.echo(f"Wrote {target}")


@config_group.command("list")
@click.option("--show-secrets", is_flag=True, help="Show passwords instead of masking them.")
@click.pass_obj
def config_list(state: CliState, show_secrets: bool) -> None:
    """Print the effective configuration (file, defaults and LIGHTFLOW_* overrides)."""
    import yaml

    config = state.config
    data = config.to_dict() if show_secrets else config.redacted()
    if config.source is not None:
        click.echo(f"# read from {config.source}")
    else:
        click.echo("# no lightflow.cfg found: built-in defaults")
    click.echo(yaml.safe_dump(data, default_flow_style=False, sort_keys=False), nl=False)


@config_group.command("examples")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", "-f", is_flag=True, help="Overwrite files that already exist.")
def config_examples(directory: Path, force: bool) -> None:
    """Copy the example workflows into DIRECTORY (created if needed)."""
    import shutil

    source = examples_folder()
    files = [
        path
        for path in sorted(source.rglob("*"))
        if path.is_file()
        and not any(
            part.startswith((".", "__pycache__")) for part in path.relative_to(source).parts
        )
        and path.suffix != ".pyc"
    ]
    if not files:
        raise LightflowError(f"no example workflows found in {source}")
    targets = [directory / path.relative_to(source) for path in files]
    existing = [str(target) for target in targets if target.exists()]
    if existing and not force:
        shown = ", ".join(existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise LightflowError(
            f"{len(existing)} example file(s) already exist ({shown}); "
            "use --force to overwrite them"
        )
    try:
        for path, target in zip(files, targets, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    except OSError as error:
        raise LightflowError(
            f"cannot copy the examples to {directory}: {error.strerror or error}"
        ) from None
    click.echo(f"Copied {len(files)} example files to {directory}")
    first = next((t for t in targets if t.suffix == ".py" and t.parent == directory), None)
    if first is not None:
        click.echo(f"Run one with: lightflow run {first}")


def examples_folder() -> Path:
    """Where the example workflows are: in the package (wheel) or the repository.

    Wheels carry the repository's ``examples/`` as ``lightflow/examples`` (see
    ``force-include`` in the package's pyproject.toml); an editable install has no
    such folder and uses the repository's own.

    Raises:
        LightflowError: Neither exists.
    """
    package = Path(__file__).resolve().parent.parent
    packaged = package / "examples"
    if packaged.is_dir():
        return packaged
    repository = package.parents[3]  # <repo>/packages/lightflow/src/lightflow
    if (repository / "examples").is_dir() and (repository / "packages").is_dir():
        return repository / "examples"
    raise LightflowError(
        "the example workflows are not installed with this copy of "
        "Lightflow; reinstall it from a wheel"
    )
