"""Fixtures of the packaging suite: the wheels, built once, and one venv per install.

Each venv is what a beamline gets from ``pip install`` of the core wheel alone
(``core_install``) or of the core wheel and one extension's (``filesystem_install``,
``epics_install``, ``rest_install``): never two extensions, so one that only works
thanks to another's dependencies fails here.
"""

from __future__ import annotations

import pytest

from .wheels import Install, Wheel, build_wheels, install


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wheel]:
    """The wheel of every distribution of the repository, by distribution name."""
    return build_wheels(tmp_path_factory.mktemp("wheels"))


def beamline_install(
    tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Wheel], extension: str | None
) -> Install:
    """A new venv with the core wheel and, if given, the ``extension``'s wheel."""
    chosen = [wheels["lightflow"]] + ([wheels[extension]] if extension else [])
    return install(tmp_path_factory.mktemp(extension or "lightflow"), chosen)


@pytest.fixture(scope="session")
def core_install(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Wheel]) -> Install:
    return beamline_install(tmp_path_factory, wheels, None)


@pytest.fixture(scope="session")
def filesystem_install(
    tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Wheel]
) -> Install:
    return beamline_install(tmp_path_factory, wheels, "lightflow-filesystem")


@pytest.fixture(scope="session")
def epics_install(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Wheel]) -> Install:
    return beamline_install(tmp_path_factory, wheels, "lightflow-epics")


@pytest.fixture(scope="session")
def rest_install(tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Wheel]) -> Install:
    return beamline_install(tmp_path_factory, wheels, "lightflow-rest")
