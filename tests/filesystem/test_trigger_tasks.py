"""NotifyTriggerTask and NewLineTriggerTask: the 1.x trigger tasks on real inotify.

Each task runs in a thread through ``BaseTask._run``, as an engine runs it, with a
stop flag the test sets (what ``workflow stop`` and Ctrl-C set). The examples'
tests run the same tasks inside whole workflows on both engines.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightflow.exceptions import LightflowError
from lightflow_filesystem import (
    LightflowFilesystemConfigError,
    LightflowFilesystemPathError,
    NewLineTriggerTask,
    NotifyTriggerTask,
)

from tests.tasks.helpers import make_args

from .conftest import wait_for, write_file


class Running:
    """A trigger task running in its own thread, with what its callback received."""

    def __init__(self, task_class: type, *args: Any, values: Any = None, **kwargs: Any) -> None:
        self.batches: list[list[str]] = []
        self.threads: set[int] = set()
        self.task = task_class(*args, callback=self._callback, **kwargs)
        self.data, self.store, self.signal, self.context = make_args(values, task_name="trigger")
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _callback(
        self, values: list[str], data: Any, store: Any, signal: Any, context: Any
    ) -> None:
        self.batches.append(list(values))
        self.threads.add(threading.get_ident())

    def _run(self) -> None:
        try:
            self.task._run(self.data, self.store, self.signal, self.context)
        except BaseException as error:
            self.error = error

    def wait(self, batches: int, timeout: float = 10.0) -> bool:
        return wait_for(lambda: len(self.batches) >= batches, timeout)

    def stop(self) -> float:
        """Set the stop flag; return how long the task took to end."""
        began = time.monotonic()
        self.signal.stopped = True
        self.thread.join(5)
        assert not self.thread.is_alive()
        return time.monotonic() - began


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "in"
    path.mkdir()
    yield path


def names(batches: list[list[str]]) -> list[list[str]]:
    return [[os.path.basename(path) for path in batch] for batch in batches]


def settle_in(task: Running) -> None:
    """Give the task's watch time to be in place (it starts in the task's thread)."""
    time.sleep(0.3)


# -- NotifyTriggerTask -----------------------------------------------------------------------
def test_batches_of_closed_files_in_order_and_the_partial_one_logged_at_stop(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "lightflow.triggers")
    running = Running(NotifyTriggerTask, "notify", str(folder), aggregate=5)
    settle_in(running)
    for i in range(12):
        write_file(folder / f"f{i:02d}.h5")
    assert running.wait(2)
    time.sleep(0.3)
    assert names(running.batches) == [
        [f"f{i:02d}.h5" for i in range(5)],
        [f"f{i:02d}.h5" for i in range(5, 10)],
    ]
    assert running.threads == {running.thread.ident}  # the callback runs in the task
    assert running.stop() < 1.0  # 1.x: about 3 s, or never while no event came
    assert running.error is None
    assert f"2 file(s) not handed to the callback when the task stopped: '{folder}/f10.h5'" in (
        caplog.text
    )


def test_an_idle_trigger_stops_within_a_second(folder: Path) -> None:
    running = Running(NotifyTriggerTask, "notify", str(folder))
    settle_in(running)
    before = time.process_time()
    time.sleep(1.0)
    assert time.process_time() - before < 0.05  # waiting costs nothing
    assert running.stop() < 1.0


def test_skip_duplicate_leaves_out_a_file_already_in_the_open_batch(folder: Path) -> None:
    running = Running(NotifyTriggerTask, "notify", str(folder), aggregate=3, skip_duplicate=True)
    settle_in(running)
    for name in ("a", "b", "a", "a", "c"):
        write_file(folder / name)
    assert running.wait(1)
    running.stop()
    assert names(running.batches) == [["a", "b", "c"]]


def test_existing_files_flushed_at_once_or_counted_into_batches(folder: Path) -> None:
    for name in ("old1", "old2", "old3"):
        write_file(folder / name)
        os.utime(folder / name, (time.time() - 60, time.time() - 60))
    # Batches of the existing files, the partial one at once (not waiting to be filled).
    flushed = Running(NotifyTriggerTask, "notify", str(folder), aggregate=2, use_existing=True)
    assert flushed.wait(2)
    flushed.stop()
    assert sorted(name for batch in names(flushed.batches) for name in batch) == [
        "old1",
        "old2",
        "old3",
    ]
    assert [len(batch) for batch in flushed.batches] == [2, 1]

    counted = Running(
        NotifyTriggerTask,
        "notify",
        str(folder),
        aggregate=2,
        use_existing=True,
        flush_existing=False,
    )
    settle_in(counted)
    write_file(folder / "new")
    assert counted.wait(2)
    counted.stop()
    assert [len(batch) for batch in counted.batches] == [2, 2]
    assert names(counted.batches)[1][1] == "new"


def test_exclude_mask_and_the_other_events(folder: Path) -> None:
    running = Running(
        NotifyTriggerTask,
        "notify",
        str(folder),
        recursive=False,
        exclude_mask=r"\.tmp$",
        on_file_create=True,
        on_file_close=False,
        on_file_delete=True,
        on_file_move=True,
    )
    settle_in(running)
    write_file(folder / "scan.tmp")
    os.rename(folder / "scan.tmp", folder / "scan.h5")
    os.rename(folder / "scan.h5", folder.parent / "scan.h5")
    write_file(folder / "x.h5")
    (folder / "x.h5").unlink()
    assert running.wait(4)
    running.stop()
    # scan.tmp's creation is excluded; moved in as scan.h5, then out; x created, deleted.
    assert names(running.batches) == [["scan.h5"], ["scan.h5"], ["x.h5"], ["x.h5"]]


def test_arguments_evaluated_when_the_task_runs(folder: Path) -> None:
    running = Running(
        NotifyTriggerTask,
        "notify",
        lambda data, store: data["folder"],
        aggregate=lambda data, store: 2,
        values={"folder": str(folder)},
    )
    settle_in(running)
    write_file(folder / "a")
    write_file(folder / "b")
    assert running.wait(1)
    running.stop()
    assert names(running.batches) == [["a", "b"]]


def test_polling_trigger_for_a_network_folder(folder: Path) -> None:
    running = Running(NotifyTriggerTask, "notify", str(folder), poll=True, poll_interval=0.2)
    settle_in(running)
    write_file(folder / "from-another-host.h5")
    assert running.wait(1, timeout=5)
    assert running.stop() < 1.0
    assert names(running.batches) == [["from-another-host.h5"]]


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"path": "relative"}, LightflowFilesystemPathError, "not an absolute path"),
        ({"path": "{missing}"}, LightflowFilesystemPathError, "No such file or directory"),
        ({"aggregate": 0}, LightflowFilesystemConfigError, "aggregate must be a whole number"),
        ({"aggregate": 2.5}, LightflowFilesystemConfigError, "aggregate must be a whole number"),
        ({"exclude_mask": "("}, LightflowFilesystemConfigError, "exclude regex '(' is invalid"),
        ({"on_file_close": False}, LightflowFilesystemConfigError, "no event selected"),
        ({"event_trigger_time": "1s"}, LightflowFilesystemConfigError, "event_trigger_time"),
        ({"poll": True, "settle": 0}, LightflowFilesystemConfigError, "polling cannot see"),
    ],
)
def test_bad_arguments_fail_the_task_with_one_line(
    folder: Path, arguments: dict[str, Any], error: type, message: str
) -> None:
    arguments = {"path": str(folder), **arguments}
    if arguments["path"] == "{missing}":
        arguments["path"] = str(folder / "missing")
    running = Running(NotifyTriggerTask, "notify", **arguments)
    running.thread.join(5)
    assert isinstance(running.error, error), running.error
    assert message in str(running.error) and "task 'notify'" in str(running.error)
    assert "\n" not in str(running.error)


def test_a_failing_callback_fails_the_task_and_stops_the_watch(folder: Path) -> None:
    def explode(files: list[str], *args: Any) -> None:
        raise LightflowError(f"cannot catalogue {files[0]}")

    task = NotifyTriggerTask("notify", str(folder), callback=explode)
    args = make_args(task_name="notify")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            task._run(*args)
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.3)
    write_file(folder / "bad.h5")
    thread.join(5)
    assert not thread.is_alive()
    assert str(outcome[0]) == f"cannot catalogue {folder}/bad.h5"


# -- NewLineTriggerTask ----------------------------------------------------------------------
def append(path: Path, text: str) -> None:
    with open(path, "a") as file:
        file.write(text)


@pytest.mark.parametrize("poll", [False, True])
def test_lines_in_batches_with_the_existing_ones_first(tmp_path: Path, poll: bool) -> None:
    log = write_file(tmp_path / "scan.log", "old 1\nold 2\nold 3\n")
    running = Running(
        NewLineTriggerTask,
        "lines",
        str(log),
        aggregate=2,
        use_existing=True,
        event_trigger_time=0.1,
        poll=poll,
    )
    assert running.wait(2)
    settle_in(running)
    append(log, "new 1\nnew 2\nnew 3\n")
    assert running.wait(3)
    assert running.stop() < 1.0
    assert running.batches == [["old 1\n", "old 2\n"], ["old 3\n"], ["new 1\n", "new 2\n"]]


def test_lines_of_a_missing_file_fail_the_task(tmp_path: Path) -> None:
    running = Running(NewLineTriggerTask, "lines", str(tmp_path / "missing.log"))
    running.thread.join(5)
    assert isinstance(running.error, LightflowError)
    assert "cannot watch the lines of" in str(running.error)
