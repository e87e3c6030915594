"""The distributions as a beamline installs them: wheels, a fresh venv, that venv's CLI.

The other suites run in the hatch test environment, which installs every package
editable next to test tools, so a dependency missing from a ``pyproject.toml`` (or an
entry point, or a data file left out of a wheel) goes unnoticed there. Here
:func:`build_wheels` builds the wheels of the four distributions once, and
:func:`install` puts some of them into a new virtual environment (no system site
packages) with ``pip install``, their dependencies coming from the package registry
configured on this machine. Tests then run only that environment's ``lightflow``
script (:class:`Install`), in an environment stripped of this session's settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli import clean_environment

ROOT = Path(__file__).resolve().parents[2]
#: The distributions of the repository, by name, with their source folders.
DISTRIBUTIONS = {
    name: ROOT / "packages" / name
    for name in ("lightflow", "lightflow-filesystem", "lightflow-epics", "lightflow-rest")
}
#: pip may fetch every dependency on a fresh machine: minutes, not seconds.
PIP_TIMEOUT = 600.0


@dataclass(frozen=True)
class Wheel:
    """A built wheel: ``lightflow_epics-2.0.0.dev0-py3-none-any.whl``."""

    path: Path

    @property
    def distribution(self) -> str:
        """The distribution's name as pip spells it (``lightflow-epics``)."""
        return self.path.name.split("-")[0].replace("_", "-")

    @property
    def version(self) -> str:
        return self.path.name.split("-")[1]


def build_wheels(folder: Path) -> dict[str, Wheel]:
    """Build the wheel of every distribution into ``folder``; return them by name.

    One ``pip wheel`` for all four, without build isolation: the build backend
    (hatchling) is the test environment's, so nothing is fetched to build.
    """
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(folder), *(str(source) for source in DISTRIBUTIONS.values())],
        capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.fail(
            f"pip wheel exited {build.returncode}:\n{(build.stdout + build.stderr)[-4000:]}"
        )
    wheels = {wheel.distribution: wheel for wheel in map(Wheel, folder.glob("*.whl"))}
    assert sorted(wheels) == sorted(DISTRIBUTIONS), wheels
    return wheels


@dataclass
class Install:
    """A virtual environment holding a plain ``pip install`` of some wheels."""

    venv: Path
    env: dict[str, str]  # what a user's shell in the activated venv would pass on
    folder: Path  # the default working directory: nothing in it shadows a module

    @property
    def lightflow(self) -> str:
        """The venv's own ``lightflow`` script (its shebang is the venv's interpreter)."""
        return str(self.venv / "bin" / "lightflow")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``lightflow ARGS`` from the venv (``env`` added to its environment)."""
        return subprocess.run(
            [self.lightflow, *args],
            cwd=cwd or self.folder,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def module_file(self, module: str) -> Path:
        """Where the venv's interpreter imports ``module`` from."""
        where = subprocess.run(
            [self.python, "-c", f"import {module}; print({module}.__file__)"],
            env=self.env, cwd=self.folder, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert where.returncode == 0, where.stderr
        return Path(where.stdout.strip())


def install(folder: Path, wheels: Sequence[Wheel | Path]) -> Install:
    """Create a venv in ``folder`` and ``pip install`` the wheels into it.

    A :class:`~pathlib.Path` is a distribution's source folder, installed as the
    README's quick start does (``pip install ./packages/lightflow``: built in an
    isolated environment with the build backend fetched from the registry).
    """
    venv = folder / "venv"
    # From a venv (hatch's) `-m venv` builds on the base interpreter, so nothing of the
    # test environment's site-packages is visible in the new one.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # pip keeps the real HOME: this machine's registry settings live in the user's pip
    # configuration. PYTHONPATH could put the repository's sources on the path.
    pip_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input",
         *(str(wheel if isinstance(wheel, Path) else wheel.path) for wheel in wheels)],
        env=pip_env, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False,
    )  # fmt: skip
    if pip.returncode != 0:
        output = (pip.stdout + pip.stderr)[-4000:]
        pytest.fail(
            f"pip install {[_name(wheel) for wheel in wheels]} exited {pip.returncode}:\n{output}"
        )
    home = folder / "home"  # no ~/.config/lightflow/lightflow.cfg of the user's
    home.mkdir()
    env = clean_environment(
        home,
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
    )
    result = Install(venv, env, folder)
    # Guard the premise: the tests must exercise the installed copies, not the sources.
    for wheel in wheels:
        module = _name(wheel).replace("-", "_")
        assert result.module_file(module).is_relative_to(venv), module
    return result


def _name(wheel: Wheel | Path) -> str:
    """The distribution of a wheel, or of a source folder (named like it)."""
    return wheel.name if isinstance(wheel, Path) else wheel.distribution


def assert_extensions(install: Install, expected: Sequence[Wheel]) -> None:
    """``lightflow ext list`` names exactly the ``expected`` extensions, at their versions."""
    listed = install.run("ext", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    if not expected:
        assert listed.stdout.strip() == "No extensions installed.", listed.stdout
        return
    rows = sorted(tuple(line.split()) for line in listed.stdout.splitlines())
    wanted = sorted(
        (wheel.distribution.removeprefix("lightflow-"), wheel.distribution, wheel.version)
        for wheel in expected
    )
    assert rows == wanted, listed.stdout + listed.stderr
