"""Fixtures of the packaging suite: the wheels, built once, and one venv per install.

Each venv is what a beamline gets from ``pip install`` of the core alone
(``core_install``, from its source folder as the README's quick start does) or of the
core wheel and one extension's (``filesystem_install``,
``epics_install``, ``rest_install``): never two extensions, so one that only works
thanks to another's dependencies fails here.
"""

from __future__ import annotations

import pytest

from .wheels import DISTRIBUTIONS, Install, Wheel, build_wheels, install


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wheel]:
    """The wheel of every distribution of the repository, by distribution name."""
    return build_wheels(tmp_path_factory.mktemp("wheels"))


def beamline_install(
    tmp_path_factory: pytest.TempPathFactory, wheels: dict[str, Wheel], extension: str
) -> Install:
    """A new venv with the core wheel and the ``extension``'s wheel."""
    return install(tmp_path_factory.mktemp(extension), [wheels["lightflow"], wheels[extension]])


@pytest.fixture(scope="session")
def core_install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    """The core installed by the README's own command, from its source folder."""
    return install(tmp_path_factory.mktemp("lightflow"), [DISTRIBUTIONS["lightflow"]])


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
