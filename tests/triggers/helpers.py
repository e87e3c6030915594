"""Helpers of the trigger tests: ``lightflow`` subprocesses, configs, what runs wrote.

The fixture extension (``tests/plugins/fixture_plugin``) provides the ``lines`` source:
subprocesses get it pip-installed on their ``PYTHONPATH`` (the ``plugin_path``
fixture); this process imports it from its source folder (``LineSource``, ``send``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from ..cli import clean_environment, lightflow_command
from ..plugins.test_plugins import HERE as PLUGINS

sys.path.insert(0, str(PLUGINS / "fixture_plugin"))

from lightflow_fixture_plugin.sources import LineSource, send

__all__ = ["WORKFLOWS", "Lightflow", "LineSource", "items_written", "send", "send_lenient"]

WORKFLOWS = Path(__file__).resolve().parent / "workflows"


class Lightflow:
    """A ``lightflow`` subprocess the test signals, its output in files.

    It leads a process group of its own (its runs' processes are in it), so the
    test's signals reach it alone and :meth:`close` clears the group.
    """

    def __init__(self, args: list[str], *, folder: Path, plugin: Path, **env: str) -> None:
        self.folder = folder
        self._stdout = open(folder / f"stdout-{time.monotonic_ns()}.txt", "w+b")
        self._stderr = open(folder / f"stderr-{time.monotonic_ns()}.txt", "w+b")
        environment = clean_environment(folder, PYTHONPATH=str(plugin), PYTHONUNBUFFERED="1", **env)
        self.process = subprocess.Popen(
            [*lightflow_command(), *args],
            cwd=folder,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    @property
    def stdout(self) -> str:
        self._stdout.seek(0)
        return self._stdout.read().decode(errors="replace")

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 30.0) -> list[str]:
        """The stderr lines matching ``pattern`` once there are ``count`` of them.

        Raises:
            AssertionError: Not within ``timeout`` seconds, or the process ended first.
        """
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.stderr.splitlines() if re.search(pattern, line)]
            if len(lines) >= count:
                return lines
            ended = self.process.poll() is not None
            if ended or time.monotonic() > deadline:
                state = f"exited {self.process.returncode}" if ended else "timed out"
                raise AssertionError(
                    f"{state} waiting for {count} x {pattern!r}; stderr:\n{self.stderr[-4000:]}"
                )
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout)

    def close(self) -> None:
        """End the process and whatever is left of its group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._stdout.close()
        self._stderr.close()


@contextlib.contextmanager
def lightflow(args: list[str], *, folder: Path, plugin: Path, **env: str) -> Iterator[Lightflow]:
    """:class:`Lightflow` for the block, closed after it."""
    process = Lightflow(args, folder=folder, plugin=plugin, **env)
    try:
        yield process
    finally:
        process.close()


def write_config(path: Path, triggers: dict[str, Any], **sections: Any) -> Path:
    """A ``lightflow.cfg`` for the embedded engine with these triggers."""
    path.write_text(
        yaml.safe_dump({"workflows": [str(WORKFLOWS)], "triggers": triggers, **sections})
    )
    return path


def items_written(path: Path) -> list[list[str]]:
    """What the runs of ``collect`` wrote: the items of each run, one list per run."""
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines()]


def wait_until(condition: Any, *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``condition()`` until it returns something true; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s (last: {value!r})")
        time.sleep(0.05)


def send_lenient(path: Path, text: str) -> bool:
    """Send one item; False (not raised) when nothing listens on ``path``."""
    try:
        send(path, text)
    except OSError:
        return False
    return True
