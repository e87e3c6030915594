"""How a ``lightflow triggers run`` ends: stopped within 1 s, or killed and shown ``gone``.

The listing reads what the runtime published: ``running`` while it runs,
``stopped`` after a stop, ``gone`` once its process was killed without a word.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightflow import api
from lightflow.config import Config
from lightflow.triggers.runtime import TriggerRuntime, run_triggers
from lightflow.triggers.settings import TriggerSpec
from lightflow.triggers.status import STALE_AFTER, describe

from ..cli import clean_environment, run_lightflow
from .helpers import (
    WORKFLOWS,
    Lightflow,
    LineSource,
    items_written,
    lightflow,
    send,
    wait_until,
    write_config,
)


def config_file(folder: Path) -> Path:
    triggers = {
        "quick": {
            "source": "lines",
            "workflow": "collect",
            "aggregate": 2,
            "path": str(folder / "quick.sock"),
            "arguments": {"out": str(folder / "quick.txt")},
        },
        "long": {
            "source": "lines",
            "workflow": "sleepy",
            "path": str(folder / "long.sock"),
            "arguments": {"out": str(folder / "long.txt")},
        },
    }
    return write_config(folder / "lightflow.cfg", triggers)


@contextlib.contextmanager
def running(folder: Path, plugin: Path) -> Iterator[Lightflow]:
    """``lightflow triggers run`` of both triggers, once both watch."""
    config = config_file(folder)
    arguments = ["triggers", "run", "--embedded", "--state-dir", str(folder / "state")]
    with lightflow(["-c", str(config), *arguments], folder=folder, plugin=plugin) as process:
        process.wait_for("trigger .*: watching", count=2)
        yield process


def states(folder: Path) -> dict[str, str]:
    config = Config.load(str(folder / "lightflow.cfg"))
    listed = api.list_triggers(config=config, state_dir=folder / "state")
    return {entry["name"]: entry["state"] for entry in listed}


def listing(folder: Path, plugin: Path) -> list[str]:
    arguments = ["triggers", "list", "--state-dir", str(folder / "state")]
    shown = run_lightflow(
        ["-c", str(folder / "lightflow.cfg"), *arguments],
        cwd=folder,
        env=clean_environment(folder, PYTHONPATH=str(plugin)),
    )
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.splitlines()


def test_sigterm_stops_every_trigger_within_a_second(tmp_path: Path, plugin_path: Path) -> None:
    with running(tmp_path, plugin_path) as process:
        send(tmp_path / "quick.sock", "a", "b", "c")  # "c" waits for a partner
        send(tmp_path / "long.sock", "l1")  # a run that lasts until it is stopped
        wait_until(lambda: items_written(tmp_path / "quick.txt") == [["a", "b"]], what="a run")
        wait_until(lambda: (tmp_path / "long.txt").exists(), what="the long run")
        time.sleep(0.3)
        started = time.monotonic()
        process.signal(signal.SIGTERM)
        assert process.wait(10) == 0
        elapsed = time.monotonic() - started
        assert elapsed < 1.5, f"stopping took {elapsed:.2f} s"
        (left,) = [line for line in process.stderr.splitlines() if "not handed off" in line]
        assert left.endswith(
            "trigger quick stopped with 1 item(s) not handed off (the next start hands them off): c"
        )
        assert "Traceback" not in process.stderr
        assert not (tmp_path / "quick.sock").exists()  # the sources were stopped
        assert not (tmp_path / "long.sock").exists()
        # the run that was going was asked to stop as `workflow stop` would
        wait_until(
            lambda: (tmp_path / "long.txt").read_text() == "running\nstopped\n",
            what="the long run stopped",
        )
        assert states(tmp_path) == {"quick": "stopped", "long": "stopped"}
        lines = listing(tmp_path, plugin_path)
        assert any(line.startswith("quick  stopped  lines on ") for line in lines), lines
        assert any("runs: 1  last: " in line for line in lines if line.startswith("quick"))


def test_a_killed_runtime_is_gone_at_once(tmp_path: Path, plugin_path: Path) -> None:
    with running(tmp_path, plugin_path) as process:
        wait_until(lambda: states(tmp_path) == {"quick": "running", "long": "running"})
        process.signal(signal.SIGKILL)
        process.wait(10)
        assert states(tmp_path) == {"quick": "gone", "long": "gone"}
        lines = listing(tmp_path, plugin_path)
        shown = sorted(line.split("  ")[:2] for line in lines[:2])
        assert shown == [["long", "gone"], ["quick", "gone"]]
    # started again, it runs again (the lock of the killed process went with it)
    with running(tmp_path, plugin_path):
        assert states(tmp_path) == {"quick": "running", "long": "running"}


def test_a_state_that_stopped_being_published_is_gone() -> None:
    now = time.time()
    elsewhere = {"state": "running", "host": "beamline-pc-2", "pid": 1, "updated": now}
    assert describe(elsewhere, now + STALE_AFTER - 1)["state"] == "running"
    assert describe(elsewhere, now + STALE_AFTER + 1)["state"] == "gone"
    stopped = {**elsewhere, "state": "stopped"}
    assert describe(stopped, now + 3600)["state"] == "stopped"
    here = {**elsewhere, "host": socket.gethostname(), "pid": 1}  # pid 1 is alive
    assert describe(here, now)["state"] == "running"


@pytest.mark.timeout(15)
def test_a_signal_while_the_main_thread_holds_the_stop_flags_lock_still_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler runs between any two bytecodes of the main thread: it must take no lock.

    Setting the runtime's stop flag (an Event) in the handler deadlocked a trigger
    process whose main thread held that Event's lock when SIGTERM came.
    """
    real_start = TriggerRuntime.start

    def start_then_signal_inside_the_lock(runtime: TriggerRuntime) -> None:
        real_start(runtime)
        with runtime.stopping._cond:  # what Event.wait() and Event.set() hold for a while
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(TriggerRuntime, "start", start_then_signal_inside_the_lock)
    config = Config.load(str(write_config(tmp_path / "lightflow.cfg", {})))
    spec = TriggerSpec(
        "t",
        LineSource(str(tmp_path / "t.sock")),
        str(WORKFLOWS / "collect.py"),
        arguments={"out": str(tmp_path / "out.txt")},
    )
    began = time.monotonic()
    run_triggers([spec], config=config, engine="embedded", state_dir=tmp_path / "state")
    assert time.monotonic() - began < 10
    assert not (tmp_path / "t.sock").exists()  # stopped
