"""Tests of the ``lightflow`` command line and its configuration.

Helpers shared with ``tests/plugins``: the real ``lightflow`` script and a clean
environment for running it in a subprocess.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def lightflow_command() -> list[str]:
    """The installed ``lightflow`` script beside this interpreter (not a pyenv shim)."""
    script = Path(sys.executable).with_name("lightflow")
    if script.is_file():
        return [str(script)]
    found = shutil.which("lightflow")
    return [found] if found else [sys.executable, "-m", "lightflow.cli"]


def clean_environment(home: Path, **extra: str) -> dict[str, str]:
    """``os.environ`` without LIGHTFLOW_* settings, with HOME set to ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTFLOW_")}
    env.pop("PYTHONPATH", None)
    env.pop("XDG_CONFIG_HOME", None)
    env["HOME"] = str(home)
    env.update(extra)
    return env


def run_lightflow(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real ``lightflow`` script and capture its output as text."""
    return subprocess.run(
        [*lightflow_command(), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
