"""Extensions as separate distributions: installed with pip, seen by the real CLI.

``fixture_plugin`` (lightflow-fixture-plugin 0.3.1) adds ``lightflow fixture hello``,
a ``HelloTask`` task type and config defaults; ``broken_plugin`` declares an entry
point to a module that does not exist. Each is pip-installed into its own temporary
folder, which the ``lightflow`` subprocess gets on its PYTHONPATH.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml
from lightflow.plugins import hookimpl
from lightflow.plugins import manager as plugin_manager

from ..cli import clean_environment, run_lightflow

HERE = Path(__file__).resolve().parent


def pip_install(project: Path, target: Path) -> Path:
    """Install ``project`` into ``target`` offline, without touching the environment."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "--root-user-action=ignore", "-q",
         "--target", str(target), str(project)],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    return target


@pytest.fixture(scope="module")
def fixture_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install(HERE / "fixture_plugin", tmp_path_factory.mktemp("fixture_plugin"))


@pytest.fixture(scope="module")
def broken_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install(HERE / "broken_plugin", tmp_path_factory.mktemp("broken_plugin"))


def lightflow(
    tmp_path: Path, *args: str, path: list[Path], **env: str
) -> subprocess.CompletedProcess[str]:
    environment = clean_environment(tmp_path, PYTHONPATH=":".join(map(str, path)), **env)
    return run_lightflow(list(args), cwd=tmp_path, env=environment)


def test_the_extension_group_appears_and_runs(tmp_path: Path, fixture_plugin: Path) -> None:
    help_text = lightflow(tmp_path, "--help", path=[fixture_plugin])
    assert help_text.returncode == 0, help_text.stderr
    extension_part = help_text.stdout.split("Extension commands:", 1)[1]
    assert re.search(r"^  fixture\s+Commands of the fixture extension\.", extension_part, re.M)
    assert help_text.stderr == ""

    hello = lightflow(tmp_path, "fixture", "hello", "beamline", path=[fixture_plugin])
    assert hello.returncode == 0, hello.stderr
    assert hello.stdout == "Hello, beamline! (from the fixture extension)\n"


def test_without_the_extension_its_group_is_unknown(tmp_path: Path) -> None:
    process = lightflow(tmp_path, "fixture", "hello", path=[])
    assert process.returncode == 2
    assert "No such command 'fixture'" in process.stderr


def test_the_extension_contributes_config_defaults(tmp_path: Path, fixture_plugin: Path) -> None:
    listed = lightflow(tmp_path, "config", "list", path=[fixture_plugin])
    assert yaml.safe_load(listed.stdout)["extensions"]["fixture"] == {"greeting": "Hello"}
    written = lightflow(tmp_path, "config", "default", str(tmp_path), path=[fixture_plugin])
    assert written.returncode == 0, written.stderr
    config_file = yaml.safe_load((tmp_path / "lightflow.cfg").read_text())
    assert config_file["extensions"]["fixture"] == {"greeting": "Hello"}

    (tmp_path / "lightflow.cfg").write_text("extensions:\n  fixture:\n    greeting: Hi\n")
    hello = lightflow(tmp_path, "fixture", "hello", path=[fixture_plugin])
    assert hello.stdout.startswith("Hi, world!")
    overridden = lightflow(
        tmp_path,
        "fixture",
        "hello",
        path=[fixture_plugin],
        LIGHTFLOW_EXTENSIONS__FIXTURE__GREETING="Good morning",
    )
    assert overridden.stdout.startswith("Good morning, world!")


def test_the_task_type_is_listed_with_its_docs(tmp_path: Path, fixture_plugin: Path) -> None:
    process = lightflow(tmp_path, "tasks", path=[fixture_plugin])
    assert process.returncode == 0, process.stderr
    assert re.search(
        r"^HelloTask\s+lightflow_fixture_plugin\.tasks\s+Put a greeting into the task data",
        process.stdout,
        re.M,
    )
    assert re.search(r"^PythonTask\s+lightflow\.tasks\.python_task", process.stdout, re.M)


def test_ext_list_shows_the_extension_with_its_version(
    tmp_path: Path, fixture_plugin: Path
) -> None:
    process = lightflow(tmp_path, "ext", "list", path=[fixture_plugin])
    assert process.returncode == 0, process.stderr
    assert re.search(r"^fixture\s+lightflow-fixture-plugin\s+0\.3\.1$", process.stdout, re.M)


def test_a_broken_extension_is_reported_by_name_and_the_rest_works(
    tmp_path: Path, fixture_plugin: Path, broken_plugin: Path
) -> None:
    path = [broken_plugin, fixture_plugin]
    process = lightflow(tmp_path, "--help", path=path)
    assert process.returncode == 0
    assert "Traceback" not in process.stderr
    warnings = process.stderr.strip().splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith("Warning: extension 'broken' (lightflow-broken-plugin 0.0.7)")
    assert "lightflow_broken_plugin.missing_module" in warnings[0]
    assert re.search(r"^  fixture\s", process.stdout, re.M)

    listed = lightflow(tmp_path, "ext", "list", path=path)
    assert listed.returncode == 0
    assert re.search(r"^fixture\s+lightflow-fixture-plugin\s+0\.3\.1$", listed.stdout, re.M)
    assert re.search(r"^broken\s+lightflow-broken-plugin\s+0\.0\.7\s+BROKEN: ", listed.stdout, re.M)

    hello = lightflow(tmp_path, "fixture", "hello", path=path)
    assert hello.returncode == 0 and hello.stdout.startswith("Hello, world!")


# -- in-process: a plugin whose hooks misbehave --------------------------------------------
@click.command("good-cmd")
def _good_command() -> None:
    """A command from a well-behaved plugin."""


class _FailingPlugin:
    @hookimpl
    def lightflow_task_types(self):
        raise RuntimeError("cannot import the detector library")

    @hookimpl
    def lightflow_cli_commands(self):
        return ["not a command"]


class _GoodPlugin:
    @hookimpl
    def lightflow_cli_commands(self):
        return [_good_command]


@pytest.fixture
def registered_plugins():
    manager = plugin_manager.get_plugin_manager()
    plugins = {"failing": _FailingPlugin(), "good": _GoodPlugin()}
    for name, plugin in plugins.items():
        manager.register(plugin, name=name)
    yield plugins
    for plugin in plugins.values():
        manager.unregister(plugin)


@pytest.mark.usefixtures("registered_plugins")
def test_a_hook_that_raises_is_reported_with_its_plugin_and_the_others_answer() -> None:
    task_names = [cls.__name__ for _, cls in plugin_manager.task_types()]
    assert task_names[:2] == ["PythonTask", "BashTask"]
    commands = plugin_manager.cli_commands()
    assert ("good", _good_command) in commands
    reports = [str(p) for p in plugin_manager.problems() if p.plugin == "failing"]
    assert any("lightflow_task_types() failed: RuntimeError: cannot import" in r for r in reports)
    assert any("'not a command'" in r and "not a click command" in r for r in reports)
    # Asking again does not report the same failure twice.
    plugin_manager.task_types()
    assert len([p for p in plugin_manager.problems() if p.plugin == "failing"]) == len(reports)


def test_lazy_exports_load_a_name_on_first_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "lazy_pkg"
    package.mkdir()
    (package / "heavy.py").write_text("LOADED = True\nclass Thing:\n    pass\n")
    (package / "__init__.py").write_text(
        "from lightflow.plugins import lazy_exports\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'Thing': 'heavy'}, globals())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    lazy = importlib.import_module("lazy_pkg")
    assert "lazy_pkg.heavy" not in sys.modules  # nothing loaded with the package
    assert "Thing" in dir(lazy)
    assert lazy.Thing.__module__ == "lazy_pkg.heavy"
    assert "Thing" in vars(lazy)  # kept: the next lookup needs no __getattr__
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        lazy.Nothing  # noqa: B018
