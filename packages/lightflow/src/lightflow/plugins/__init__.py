"""Extensions: the hooks they implement and how they are found.

An extension is an ordinary distribution that declares an entry point in the group
``lightflow``, pointing at a module (or object) with functions marked
:data:`hookimpl`::

    # pyproject.toml
    [project.entry-points.lightflow]
    fs = "lightflow_filesystem.plugin"

    # lightflow_filesystem/plugin.py
    from lightflow.plugins import hookimpl

    @hookimpl
    def lightflow_cli_commands():
        from .cli import fs
        return [fs]

The hooks are listed, with when they are called and what they return, in
:mod:`lightflow.plugins.hookspecs`; :mod:`lightflow.plugins.manager` loads them. The
core never imports an extension by name.
"""

import importlib
from collections.abc import Callable, Mapping
from typing import Any

import pluggy

PROJECT_NAME = "lightflow"

#: Marks a function of an extension as the implementation of a hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl", "lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a package whose names load on first use.

    ``lightflow --help`` imports every extension's plugin module, and with it the
    extension's package: a package that imported its task classes (and so the core's
    models) at import time would make every command pay for them. Its
    ``__init__.py`` instead maps each public name to the module it lives in::

        __getattr__, __dir__ = lazy_exports(__name__, {"CopyTask": "copy_task"}, globals())

    and ``from lightflow_filesystem import CopyTask`` works as before.

    Args:
        package: The package's ``__name__``.
        homes: Public name -> the submodule (relative to ``package``) defining it.
        namespace: The package's ``globals()``: a name loaded once is kept there.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        namespace[name] = value  # later lookups find it without this function
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *homes})

    return __getattr__, __dir__
