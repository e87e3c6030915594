"""Finding extensions and calling their hooks.

:func:`get_plugin_manager` builds one :class:`pluggy.PluginManager` per process: the
core registers its own task types through the same hooks an extension uses, then every
entry point of the group ``lightflow`` is loaded and registered under the entry
point's name. An extension that fails (its module does not import, a hook raises or
returns the wrong thing) is recorded as a :class:`PluginProblem` naming it and left
out; :func:`problems` returns them so the CLI can print one warning line each and
the REST service can log them. Nothing here prints.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pluggy

from . import PROJECT_NAME, hookimpl, hookspecs

ENTRY_POINT_GROUP = "lightflow"
CORE_PLUGIN_NAME = "core"


class Extension(NamedTuple):
    """An installed extension that loaded: entry-point name, distribution, version."""

    name: str
    distribution: str
    version: str


@dataclass(frozen=True)
class PluginProblem:
    """An extension, or one of its hooks, that failed; ``str()`` is a one-line report."""

    plugin: str
    message: str
    distribution: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        origin = f" ({self.distribution} {self.version})" if self.distribution else ""
        return f"extension '{self.plugin}'{origin}: {self.message}"


class _CorePlugin:
    """The core's own contributions, registered like any extension's."""

    @hookimpl
    def lightflow_task_types(self) -> list[type]:
        # Imported here: the task modules pull in the models, which --help must not.
        from ..tasks import BashTask, PythonTask

        return [PythonTask, BashTask]


_lock = threading.Lock()
_extensions: list[Extension] = []
_problems: list[PluginProblem] = []
_reported_hook_problems: set[tuple[str, str]] = set()


@functools.cache
def get_plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, with the core and every loadable extension."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(_CorePlugin(), name=CORE_PLUGIN_NAME)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _load(manager, entry_point)
    return manager


def _load(manager: pluggy.PluginManager, entry_point: importlib.metadata.EntryPoint) -> None:
    dist = entry_point.dist
    distribution = dist.name if dist is not None else "?"
    version = dist.version if dist is not None else "?"
    if manager.is_blocked(entry_point.name):
        return
    if manager.get_plugin(entry_point.name) is not None:
        _problem(
            entry_point.name,
            "another extension already uses this name; not loaded",
            distribution,
            version,
        )
        return
    try:
        plugin = entry_point.load()
        manager.register(plugin, name=entry_point.name)
    except Exception as error:  # a broken extension must not stop the CLI
        _problem(
            entry_point.name,
            f"failed to load {entry_point.value}: {_one_line(error)}",
            distribution,
            version,
        )
        return
    with _lock:
        _extensions.append(Extension(entry_point.name, distribution, version))


def installed_extensions() -> list[Extension]:
    """The extensions that loaded, in load order (``lightflow ext list``)."""
    get_plugin_manager()
    with _lock:
        return list(_extensions)


@functools.cache
def extension_folders() -> tuple[Path, ...]:
    """The package folders of the installed extensions, found without importing them.

    What a task of an extension runs around the user's callback (``GlobTask`` calling
    ``callback(files, ...)``) is Lightflow's code to the user, whether the extension
    was installed from a wheel or from a checkout: tracebacks leave its frames out as
    they leave out the core's (:func:`lightflow.execution.user_traceback`).
    """
    folders: list[Path] = []
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = importlib.util.find_spec(entry_point.module.partition(".")[0])
        except (ImportError, ValueError):
            continue  # reported by get_plugin_manager when it loads the extension
        for location in (spec.submodule_search_locations or []) if spec else []:
            folders.append(Path(location).resolve())
    return tuple(folders)


def problems() -> list[PluginProblem]:
    """Every failure of an extension so far (loading, or a hook that raised)."""
    get_plugin_manager()
    with _lock:
        return list(_problems)


def call_each(hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call one hook on every plugin separately: ``[(plugin name, result), ...]``.

    Each plugin is called through pluggy (a subset caller holding that plugin alone),
    so arguments reach each implementation by name as pluggy defines, an
    implementation may take any subset of the hook's arguments, and pluggy's checks
    apply. Unlike one ``manager.hook.<name>(...)`` call, a plugin whose hook raises is
    recorded as a problem under its own name while the others still answer. Plugins
    that return ``None`` are left out. The core comes first, then extensions in load
    order.
    """
    manager = get_plugin_manager()
    plugins = [impl.plugin for impl in getattr(manager.hook, hook_name).get_hookimpls()]
    results: list[tuple[str, Any]] = []
    for plugin in plugins:
        name = manager.get_name(plugin) or "?"
        others = [other for other in plugins if other is not plugin]
        caller = manager.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            answers = caller(**kwargs)
        except Exception as error:  # reported with the plugin's name
            _hook_problem(manager, name, f"{hook_name}() failed: {_one_line(error)}")
            continue
        results.extend((name, answer) for answer in answers if answer is not None)
    return results


def cli_commands() -> list[tuple[str, Any]]:
    """``[(plugin name, click command), ...]`` from ``lightflow_cli_commands``."""
    import click

    return _items(
        "lightflow_cli_commands", lambda item: isinstance(item, click.Command), "a click command"
    )


def task_types() -> list[tuple[str, type]]:
    """``[(plugin name, task class), ...]`` from ``lightflow_task_types``."""
    return _items("lightflow_task_types", lambda item: isinstance(item, type), "a class")


def trigger_sources() -> dict[str, tuple[str, type]]:
    """``{kind: (plugin name, source class)}`` from ``lightflow_trigger_sources``.

    A kind claimed by an earlier plugin is reported and the later class ignored.
    """
    from ..triggers.source import TriggerSource

    manager = get_plugin_manager()
    kinds: dict[str, tuple[str, type]] = {}
    for plugin, source in _items(
        "lightflow_trigger_sources",
        lambda item: isinstance(item, type) and issubclass(item, TriggerSource) and bool(item.kind),
        "a TriggerSource subclass with a kind",
    ):
        if source.kind in kinds:
            _hook_problem(
                manager,
                plugin,
                f"trigger source kind '{source.kind}' is already provided by extension "
                f"'{kinds[source.kind][0]}'; ignored",
            )
            continue
        kinds[source.kind] = (plugin, source)
    return kinds


def config_defaults() -> dict[str, Any]:
    """The config sections contributed by ``lightflow_config_defaults``, merged."""
    merged: dict[str, Any] = {}
    manager = get_plugin_manager()
    for plugin, result in call_each("lightflow_config_defaults"):
        if not isinstance(result, dict):
            _hook_problem(
                manager,
                plugin,
                f"lightflow_config_defaults() must return a dict, got {type(result).__name__}",
            )
            continue
        _merge_into(merged, result)
    return merged


def _items(hook_name: str, valid: Callable[[Any], bool], expected: str) -> list[tuple[str, Any]]:
    manager = get_plugin_manager()
    items = []
    for plugin, result in call_each(hook_name):
        if not isinstance(result, (list, tuple)):
            result = [result]
        for item in result:
            if valid(item):
                items.append((plugin, item))
            else:
                _hook_problem(
                    manager,
                    plugin,
                    f"{hook_name}() returned {item!r}, which is not {expected}; ignored",
                )
    return items


def _merge_into(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        else:
            target[key] = value


def _problem(
    plugin: str, message: str, distribution: str | None = None, version: str | None = None
) -> None:
    with _lock:
        _problems.append(PluginProblem(plugin, message, distribution, version))


def _hook_problem(manager: pluggy.PluginManager, plugin: str, message: str) -> None:
    # Hooks may be called many times per process; report each failure once.
    with _lock:
        if (plugin, message) in _reported_hook_problems:
            return
        _reported_hook_problems.add((plugin, message))
    distribution = version = None
    for extension in installed_extensions():
        if extension.name == plugin:
            distribution, version = extension.distribution, extension.version
    _problem(plugin, message, distribution, version)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
