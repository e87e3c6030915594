"""The embedded launcher on its own: real run processes, their start markers and reports.

Driven in this process (no runtime around it), so a test can hand it batches, look at
the markers and the ``started`` calls, and make a ``started`` callback fail.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightflow import api
from lightflow.config import Config
from lightflow.triggers.launcher import EmbeddedLauncher
from lightflow.triggers.ledger import Batch

from .helpers import WORKFLOWS, items_written, wait_until, write_config


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[EmbeddedLauncher]:
    config = Config.load(str(write_config(tmp_path / "lightflow.cfg", {})))
    launcher = EmbeddedLauncher(config, markers=tmp_path / "started", workers=2, name="unit")
    launcher.open(api.load(str(WORKFLOWS / "collect.py")))
    yield launcher
    launcher.close(time.monotonic() + 1.0)


def batch(out: Path, *items: str) -> Batch:
    return Batch(uuid.uuid4().hex, list(items), {"items": list(items), "out": str(out)})


def test_a_batch_is_started_once_its_process_created_the_marker(
    launcher: EmbeddedLauncher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "lightflow.triggers")
    out, started = tmp_path / "out.txt", []
    first = batch(out, "a", "b")

    def record(batch_id: str) -> None:
        assert (tmp_path / "started" / batch_id).exists()  # the marker comes first
        started.append(batch_id)

    launcher.launch(first, record)
    wait_until(lambda: items_written(out) == [["a", "b"]], what="the run")
    assert started == [first.id]
    wait_until(lambda: f"trigger unit: run {first.id} succeeded" in caplog.text)

    # started again after a crash: the marker says it ran; nothing runs twice
    launcher.launch(first, record)
    wait_until(lambda: len(started) == 2, what="the second start")
    time.sleep(0.5)
    assert items_written(out) == [["a", "b"]]
    assert caplog.text.count(f"run {first.id} succeeded") == 1


def test_prune_keeps_only_the_markers_of_unfinished_batches(
    launcher: EmbeddedLauncher, tmp_path: Path
) -> None:
    markers = tmp_path / "started"
    for name in ("done1", "done2", "pending"):
        (markers / name).touch()
    launcher.prune(["pending", "never-started"])
    assert sorted(path.name for path in markers.iterdir()) == ["pending"]


def test_a_failing_started_callback_does_not_stop_later_runs(
    launcher: EmbeddedLauncher, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.txt"

    def full_disk(batch_id: str) -> None:
        raise OSError(28, "No space left on device")

    launcher.launch(batch(out, "x"), full_disk)
    wait_until(lambda: "starting runs failed" in caplog.text, what="the failure logged")
    assert "No space left on device" in caplog.text
    started: list[str] = []
    second = batch(out, "y")
    launcher.launch(second, started.append)
    wait_until(lambda: started == [second.id], timeout=10, what="the next batch")
    wait_until(lambda: ["y"] in items_written(out), what="its run")


def test_close_asks_running_runs_to_stop_by_its_deadline(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = Config.load(str(write_config(tmp_path / "lightflow.cfg", {})))
    launcher = EmbeddedLauncher(config, markers=tmp_path / "started", workers=1, name="unit")
    launcher.open(api.load(str(WORKFLOWS / "sleepy.py")))
    out, started = tmp_path / "out.txt", []
    launcher.launch(batch(out, "z"), started.append)
    wait_until(lambda: out.exists() and launcher.running == 1, what="the run going")
    began = time.monotonic()
    launcher.close(began + 0.5)
    assert time.monotonic() - began < 0.8
    wait_until(lambda: out.read_text() == "running\nstopped\n", what="the run stopped")


def child_pids() -> set[int]:
    """This process's child processes, from /proc (any of its threads may have started them)."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids.update(int(pid) for pid in (task / "children").read_text().split())
    return pids


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a killed child that was not reaped yet is a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_a_ctrl_c_while_a_run_process_starts_neither_kills_it_nor_prints_a_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Ctrl-C reaches the whole process group, the ready process too while Python starts.

    Before Python installs its handler the signal would kill the process; after, it
    would raise KeyboardInterrupt in its imports: either way the run would wait.
    """
    caplog.set_level(logging.INFO, "lightflow.triggers")
    config = Config.load(str(write_config(tmp_path / "lightflow.cfg", {})))
    earlier = child_pids()  # of the launchers of other tests
    launcher = EmbeddedLauncher(config, markers=tmp_path / "started", workers=1, name="unit")
    launcher.open(api.load(str(WORKFLOWS / "collect.py")))
    try:
        interrupted: set[int] = set()
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            for pid in child_pids() - earlier:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
                    interrupted.add(pid)
            time.sleep(0.002)
        assert interrupted, "no process was started to run the first batch"
        assert [pid for pid in interrupted if not alive(pid)] == []
        out, started = tmp_path / "out.txt", []
        launcher.launch(batch(out, "a"), started.append)
        wait_until(lambda: items_written(out) == [["a"]], what="the run")
    finally:
        launcher.close(time.monotonic() + 1.0)
    assert "ended before its run" not in caplog.text, caplog.text
    assert "KeyboardInterrupt" not in capfd.readouterr().err
