"""watch_in_task: the 1.x trigger tasks' loop, inside a real ``lightflow run``.

The workflow ``workflows/watch.py`` watches a ``lines`` socket from its one task and
appends each batch to a file; the test sends items, signals the run and looks at the
file, the run's output and the socket file (which the source removes when stopped).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import WORKFLOWS, Lightflow, items_written, lightflow, send, wait_until

WATCH = str(WORKFLOWS / "watch.py")


@contextlib.contextmanager
def watching(
    tmp_path: Path, plugin: Path, *arguments: str
) -> Iterator[tuple[Lightflow, Path, Path]]:
    """``lightflow run watch.py`` once its task listens (closed after the block)."""
    sock, out = tmp_path / "watch.sock", tmp_path / "batches.txt"
    command = ["run", WATCH, f"socket={sock}", f"out={out}", *arguments]
    with lightflow(command, folder=tmp_path, plugin=plugin) as process:
        wait_until(sock.exists, what="the task listens on its socket")
        yield process, sock, out


def test_batches_in_order_then_sigint_stops_within_a_second(
    tmp_path: Path, plugin_path: Path
) -> None:
    backlog = tmp_path / "backlog"
    backlog.write_text("x\ny\nz\n")
    with watching(tmp_path, plugin_path, f"backlog={backlog}") as (process, sock, out):
        # what was there comes first, its partial batch flushed at once
        wait_until(lambda: items_written(out) == [["x", "y"], ["z"]], what="the backlog")
        send(sock, "a", "b", "c", "d", "e")
        wait_until(lambda: len(items_written(out)) == 4, what="two batches")
        time.sleep(0.3)  # "e" reaches the open batch
        started = time.monotonic()
        process.signal(signal.SIGINT)
        assert process.wait(10) == 130
        elapsed = time.monotonic() - started
        assert items_written(out) == [["x", "y"], ["z"], ["a", "b"], ["c", "d"]]
        assert elapsed < 2.0, f"the run took {elapsed:.2f} s to stop"
        left = [line for line in process.stderr.splitlines() if "not handed" in line]
        assert left == [
            f"lines on {sock}: 1 item(s) not handed to the callback when the task stopped: e"
        ]
        assert "Traceback" not in process.stderr
        assert not sock.exists()  # the source was stopped
        with pytest.raises(OSError):
            send(sock, "f")


def test_a_task_that_stops_its_workflow_ends_within_a_second(
    tmp_path: Path, plugin_path: Path
) -> None:
    with watching(tmp_path, plugin_path, "aggregate=1") as (process, sock, out):
        send(sock, "one")
        wait_until(lambda: items_written(out) == [["one"]], what="the first batch")
        started = time.monotonic()
        send(sock, "stop")
        assert process.wait(10) == 1  # the run ends stopped
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"the run took {elapsed:.2f} s to end"
        assert items_written(out) == [["one"], ["stop"]]
        assert "stopped" in process.stdout
        assert not sock.exists()


def test_a_task_given_up_by_its_run_has_its_source_stopped(
    tmp_path: Path, plugin_path: Path
) -> None:
    with watching(tmp_path, plugin_path, "aggregate=1") as (process, sock, out):
        send(sock, "block")  # the callback sleeps and never looks at the stop flag
        wait_until(lambda: items_written(out) == [["block"]], what="the blocking batch")
        process.signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.process.poll() is None  # the task cannot stop: the run waits
        assert sock.exists()
        started = time.monotonic()
        process.signal(signal.SIGINT)  # gives the task up
        assert process.wait(10) == 130
        assert time.monotonic() - started < 2.0
        # only the release protocol can have stopped the source: its loop never ended
        assert not sock.exists()
        assert "not handed" not in process.stderr
