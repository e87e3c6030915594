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

import pluggy

PROJECT_NAME = "lightflow"

#: Marks a function of an extension as the implementation of a hook.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["PROJECT_NAME", "hookimpl"]
