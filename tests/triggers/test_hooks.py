"""The plugin calls the trigger runtime relies on (lightflow.plugins.manager).

``call_each`` calls each plugin through pluggy on its own, so arguments reach each
implementation by name and a plugin may take any subset of them; ``trigger_sources``
collects the source kinds and reports a kind claimed twice. Both run here on a fresh
plugin manager standing in for the process's, with the problem list of its own.
"""

from __future__ import annotations

from typing import Any

import pluggy
import pytest
from lightflow.plugins import PROJECT_NAME, hookimpl, hookspecs
from lightflow.plugins import manager as plugin_manager

from .helpers import LineSource


class _ProbeSpecs:
    """A hook with arguments (the core's own hooks take none yet)."""

    @pluggy.HookspecMarker(PROJECT_NAME)
    def lightflow_probe(self, config: Any, name: str) -> Any:
        """Answer a probe."""


class _TakesAll:
    @hookimpl
    def lightflow_probe(self, config: Any, name: str) -> Any:
        return ("all", config["beamline"], name)


class _TakesName:
    @hookimpl
    def lightflow_probe(self, name: str) -> Any:
        return ("name", name)


class _TakesNothing:
    @hookimpl
    def lightflow_probe(self) -> Any:
        return None  # left out


class _Raises:
    @hookimpl
    def lightflow_probe(self, config: Any) -> Any:
        raise KeyError("detector")


class _Lines:
    @hookimpl
    def lightflow_trigger_sources(self) -> list[type]:
        return [LineSource]


class _SameKind:
    class OtherLines(LineSource):
        """Another source claiming the kind ``lines``."""

    @hookimpl
    def lightflow_trigger_sources(self) -> list[type]:
        return [self.OtherLines]


class _NotASource:
    @hookimpl
    def lightflow_trigger_sources(self) -> list[Any]:
        return [dict]


@pytest.fixture
def fresh_manager(monkeypatch: pytest.MonkeyPatch) -> pluggy.PluginManager:
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.add_hookspecs(_ProbeSpecs)
    monkeypatch.setattr(plugin_manager, "get_plugin_manager", lambda: manager)
    monkeypatch.setattr(plugin_manager, "_problems", [])
    monkeypatch.setattr(plugin_manager, "_reported_hook_problems", set())
    monkeypatch.setattr(plugin_manager, "_extensions", [])
    return manager


def problems() -> list[str]:
    return [str(problem) for problem in plugin_manager.problems()]


def test_call_each_passes_arguments_by_name_to_each_plugin(
    fresh_manager: pluggy.PluginManager,
) -> None:
    for name, plugin in (
        ("all", _TakesAll()),
        ("subset", _TakesName()),
        ("nothing", _TakesNothing()),
        ("raises", _Raises()),
    ):
        fresh_manager.register(plugin, name=name)
    answers = plugin_manager.call_each("lightflow_probe", config={"beamline": "p11"}, name="x")
    assert answers == [("all", ("all", "p11", "x")), ("subset", ("name", "x"))]
    assert problems() == ["extension 'raises': lightflow_probe() failed: KeyError: 'detector'"]


def test_a_kind_claimed_twice_is_reported_and_the_first_kept(
    fresh_manager: pluggy.PluginManager,
) -> None:
    fresh_manager.register(_Lines(), name="fixture")
    fresh_manager.register(_SameKind(), name="copycat")
    fresh_manager.register(_NotASource(), name="confused")
    assert plugin_manager.trigger_sources() == {"lines": ("fixture", LineSource)}
    assert sorted(problems()) == [
        "extension 'confused': lightflow_trigger_sources() returned <class 'dict'>, which "
        "is not a TriggerSource subclass with a kind; ignored",
        "extension 'copycat': trigger source kind 'lines' is already provided by "
        "extension 'fixture'; ignored",
    ]
    plugin_manager.trigger_sources()  # asked again: reported once
    assert len(problems()) == 2
