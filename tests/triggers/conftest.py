"""Fixtures of the trigger tests: the fixture extension installed for subprocesses."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..plugins.test_plugins import HERE as PLUGINS
from ..plugins.test_plugins import pip_install


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture extension installed with pip (for subprocesses' PYTHONPATH)."""
    return pip_install(PLUGINS / "fixture_plugin", tmp_path_factory.mktemp("trigger_plugin"))
