"""``pip install lightflow lightflow-filesystem`` from two wheels is the whole install.

Both wheels are built from the repository, installed into a fresh virtual environment
(dependencies from the package registry configured on this machine), and only that
environment's ``lightflow`` script runs: the extension is found through its entry
point, its tasks run a 1.x example, its watch command is there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import clean_environment

from .conftest import EXAMPLES, ROOT, write_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_two_wheels_are_the_whole_install(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(ROOT / "packages" / "lightflow"),
         str(ROOT / "packages" / "lightflow-filesystem")],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    built = sorted(path.name for path in wheels.glob("*.whl"))
    assert len(built) == 2 and built[1].startswith("lightflow_filesystem-"), built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-input",
         *(str(wheel) for wheel in wheels.glob("*.whl"))],
        env=pip_env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, (install.stdout + install.stderr)[-4000:]
    home = tmp_path / "home"
    home.mkdir()
    env = clean_environment(home, PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}")

    def lightflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "lightflow"), *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    extensions = lightflow("ext", "list")
    assert extensions.returncode == 0, extensions.stderr
    assert "lightflow-filesystem" in extensions.stdout
    assert "NotifyTriggerTask" in lightflow("tasks").stdout
    assert lightflow("fs", "watch", "--help").returncode == 0
    data = tmp_path / "data"
    data.mkdir()
    write_file(data / "scan.file")
    listed = lightflow("run", str(EXAMPLES / "list_files.py"), f"folder={data}")
    assert listed.returncode == 0, listed.stderr
    assert str(data / "scan.file") in listed.stdout
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import lightflow_filesystem as m; print(m.__file__)"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(venv)
