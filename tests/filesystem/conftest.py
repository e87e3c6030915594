"""Helpers of the filesystem suite: run ``lightflow`` as users do, wait for what files show.

Every test works on real folders (pytest's ``tmp_path``) with real inotify. Commands
run as subprocesses of ``python -m lightflow.cli``; :data:`UNPRIVILEGED` runs one
without root's power over file permissions (the suite runs as root, whom the kernel
never refuses a chmod or an unlink), so permission errors are real ones.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.cli import clean_environment

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "packages" / "lightflow-filesystem" / "examples"
WORKFLOWS = Path(__file__).resolve().parent / "workflows"

#: Runs a command as root without the capabilities that let root ignore permissions.
UNPRIVILEGED = (
    "setpriv",
    "--bounding-set",
    "-dac_override,-dac_read_search,-fowner,-chown,-fsetid",
    "--",
)


@functools.cache
def user_environment() -> dict[str, str]:
    """The environment of ``lightflow`` subprocesses: a user's, without their settings.

    No ``LIGHTFLOW_*`` variables and an empty HOME of this test process, so no
    configuration file is read but the one a test gives.
    """
    home = Path(tempfile.mkdtemp(prefix="lightflow-fs-home-"))
    return clean_environment(home, PYTHONUNBUFFERED="1")


def lightflow(
    *args: str,
    config: Path | None = None,
    prefix: Sequence[str] = (),
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``lightflow [-c config] args...`` to its end; return its output."""
    options = ["-c", str(config)] if config else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "lightflow.cli", *options, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=user_environment(),
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed (exit 1) with exactly one ``Error:`` line; return it."""
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def write_file(path: Path, text: str = "data\n") -> Path:
    """Create ``path`` (open, write, close: one IN_CLOSE_WRITE)."""
    with open(path, "w") as file:
        file.write(text)
    return path


@pytest.fixture(scope="session")
def unprivileged() -> tuple[str, ...]:
    """The command prefix that runs a command without power over others' files.

    As root, :data:`UNPRIVILEGED` (skipped where ``setpriv`` is missing); otherwise
    nothing: the suite is unprivileged already.
    """
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission errors cannot happen")
    return UNPRIVILEGED
