"""FolderSource and LineSource on real folders with real inotify (and polling).

What a source reports, in which order, when a file counts as complete, what it
reports as already there, and that it stops within 1 s and costs nothing while idle.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from lightflow.exceptions import ConfigError, LightflowError
from lightflow.triggers import TriggerEvent
from lightflow_filesystem import FolderSource, LineSource

from .conftest import wait_for, write_file


class Collector:
    """An ``emit`` that records events with the time they arrived."""

    def __init__(self) -> None:
        self.events: list[TriggerEvent] = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, event: TriggerEvent) -> None:
        with self._lock:
            self.events.append(event)
            self.times.append(time.monotonic())

    @property
    def paths(self) -> list[str]:
        return [event.values["path"] for event in self.events]

    def kinds(self) -> list[tuple[str, str]]:
        return [(event.values["event"], os.path.basename(event.key or "")) for event in self.events]

    def wait(self, count: int, timeout: float = 10.0) -> bool:
        return wait_for(lambda: len(self.events) >= count, timeout)


@pytest.fixture
def watch(tmp_path: Path) -> Any:
    """``watch(**options)``: a started FolderSource on ``tmp_path/in`` and its collector."""
    started: list[FolderSource] = []
    folder = tmp_path / "in"
    folder.mkdir()

    def start(path: Path = folder, **options: Any) -> tuple[FolderSource, Collector]:
        source = FolderSource(str(path), **options)
        collector = Collector()
        source.start(collector)
        started.append(source)
        return source, collector

    yield start
    for source in started:
        source.stop()


# -- when a file counts as landed ------------------------------------------------------------
def test_files_are_reported_when_closed_in_the_order_they_were_written(
    watch: Any, tmp_path: Path
) -> None:
    source, seen = watch()
    names = [f"scan_{i:03d}.h5" for i in range(30)]
    for name in names:
        write_file(tmp_path / "in" / name)
    assert seen.wait(30)
    assert seen.paths == [str(tmp_path / "in" / name) for name in names]
    assert [event.key for event in seen.events] == seen.paths
    assert {event.values["event"] for event in seen.events} == {"closed"}
    assert source.arguments(seen.events[:2]) == {"files": seen.paths[:2]}


def test_a_file_still_open_is_not_reported_until_closed(watch: Any, tmp_path: Path) -> None:
    _, seen = watch()
    with open(tmp_path / "in" / "big.h5", "w") as file:
        file.write("frame 1\n")
        file.flush()
        time.sleep(0.3)
        assert seen.events == []
        file.write("frame 2\n")
    assert seen.wait(1)
    assert seen.kinds() == [("closed", "big.h5")]


def test_close_reaches_the_source_well_under_100_ms(watch: Any, tmp_path: Path) -> None:
    _, seen = watch()
    latencies = []
    for i in range(20):
        write_file(tmp_path / "in" / f"f{i}")
        closed = time.monotonic()
        assert seen.wait(i + 1, 5)
        latencies.append(seen.times[i] - closed)
    # Measured ~0.5 ms; the margin is for a loaded 2-core machine.
    assert statistics.median(latencies) < 0.05, latencies


def test_patterns_and_excludes(watch: Any, tmp_path: Path) -> None:
    (tmp_path / "in" / "raw").mkdir()
    _, seen = watch(
        patterns=["*.h5", "raw/*.cbf"], exclude=["skip_*"], exclude_regex="tmp$", recursive=True
    )
    for relative in ("a.h5", "b.txt", "skip_c.h5", "raw/d.cbf", "e.cbf", "raw/f.h5.tmp", "g.h5"):
        write_file(tmp_path / "in" / relative)
    assert seen.wait(3)
    time.sleep(0.3)
    assert [os.path.relpath(p, tmp_path / "in") for p in seen.paths] == [
        "a.h5",
        "raw/d.cbf",
        "g.h5",
    ]


def test_a_file_moved_in_is_complete_at_once(watch: Any, tmp_path: Path) -> None:
    _, seen = watch(patterns=["*.h5"])
    write_file(tmp_path / "in" / ".scan.h5.tmp")  # the writer's temporary name
    os.rename(tmp_path / "in" / ".scan.h5.tmp", tmp_path / "in" / "scan.h5")
    write_file(tmp_path / "elsewhere.h5")
    os.rename(tmp_path / "elsewhere.h5", tmp_path / "in" / "from-outside.h5")
    assert seen.wait(2)
    assert seen.kinds() == [("moved_in", "scan.h5"), ("moved_in", "from-outside.h5")]


def test_recursive_watch_sees_new_subfolders_and_folders_moved_in(
    watch: Any, tmp_path: Path
) -> None:
    _, seen = watch(recursive=True)
    (tmp_path / "in" / "scan_1").mkdir()
    time.sleep(0.2)  # (a file closed within microseconds of its folder is the known gap)
    write_file(tmp_path / "in" / "scan_1" / "a.h5")
    staged = tmp_path / "staged"
    (staged / "deep").mkdir(parents=True)
    write_file(staged / "b.h5")
    write_file(staged / "deep" / "c.h5")
    os.rename(staged, tmp_path / "in" / "scan_2")
    assert seen.wait(3)
    assert seen.kinds() == [("closed", "a.h5"), ("moved_in", "b.h5"), ("moved_in", "c.h5")]


def test_a_flat_watch_ignores_subfolders(watch: Any, tmp_path: Path) -> None:
    (tmp_path / "in" / "sub").mkdir()
    _, seen = watch()
    write_file(tmp_path / "in" / "sub" / "hidden.h5")
    write_file(tmp_path / "in" / "top.h5")
    assert seen.wait(1)
    time.sleep(0.3)
    assert seen.kinds() == [("closed", "top.h5")]


def test_settle_waits_until_a_reopened_file_stops_changing(watch: Any, tmp_path: Path) -> None:
    _, seen = watch(settle=0.6)
    path = tmp_path / "in" / "growing.h5"
    written = time.monotonic()
    for chunk in range(4):  # the writer closes and reopens the file
        with open(path, "a") as file:
            file.write(f"chunk {chunk}\n")
        time.sleep(0.2)
    last_write = time.monotonic() - 0.2
    assert seen.wait(1, timeout=5)
    time.sleep(0.8)
    assert seen.kinds() == [("closed", "growing.h5")]  # once, not once per close
    assert seen.times[0] - last_write >= 0.55 and seen.times[0] - written >= 1.1


def test_polling_finds_files_and_drops_those_deleted_before_they_settle(
    watch: Any, tmp_path: Path
) -> None:
    source, seen = watch(poll=True, poll_interval=0.2, settle=0.5)
    assert source.status()["mode"] == "polling every 0.2 s"
    write_file(tmp_path / "in" / "kept.h5")
    write_file(tmp_path / "in" / "fleeting.h5")
    assert wait_for(lambda: source.status()["settling"] == 2, 3)
    (tmp_path / "in" / "fleeting.h5").unlink()
    assert seen.wait(1, timeout=5)
    time.sleep(0.8)
    assert seen.kinds() == [("closed", "kept.h5")]


def test_polling_without_settle_is_refused() -> None:
    with pytest.raises(ConfigError, match="polling cannot see a file being closed"):
        FolderSource("/data", poll=True, settle=0)
    assert FolderSource("/data", poll=True, poll_interval=3).settle == 3


# -- what is already there --------------------------------------------------------------------
def test_existing_files_oldest_first_and_recent_ones_once_complete(
    watch: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "lightflow.filesystem")
    folder = tmp_path / "in"
    for name, age in (("new.h5", 100), ("old.h5", 300), ("middle.h5", 200)):
        write_file(folder / name)
        os.utime(folder / name, (time.time() - age, time.time() - age))
    writer = open(folder / "being-written.h5", "w")
    writer.write("first frames\n")
    writer.flush()
    write_file(folder / "just-closed.h5")
    write_file(folder / "vanishing.h5")
    source, seen = watch()
    existing = source.existing()
    assert [os.path.basename(e.key or "") for e in existing] == ["old.h5", "middle.h5", "new.h5"]
    assert {e.values["event"] for e in existing} == {"existing"}
    assert source.status()["settling"] == 3  # the recent ones wait
    (folder / "vanishing.h5").unlink()
    writer.write("last frames\n")
    writer.close()
    assert seen.wait(1)
    assert seen.kinds() == [("closed", "being-written.h5")]  # at its close
    assert seen.wait(2, timeout=6)  # the other after its quiet period (2 s)
    assert seen.kinds()[1] == ("settled", "just-closed.h5")
    time.sleep(0.3)
    assert len(seen.events) == 2
    assert "vanishing.h5 disappeared before it was complete" in caplog.text


def test_forgotten_are_the_handed_off_files_that_are_gone(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_file(folder / "there.h5")
    source = FolderSource(str(folder))
    keys = [str(folder / "there.h5"), str(folder / "gone.h5")]
    assert source.forgotten(keys) == [str(folder / "gone.h5")]
    shutil.rmtree(folder)  # an unmounted share is not an empty folder
    assert source.forgotten(keys) == []


# -- stopping, idling, failing --------------------------------------------------------------
def test_stop_within_a_second_and_nothing_emitted_after(watch: Any, tmp_path: Path) -> None:
    for options in ({}, {"poll": True, "poll_interval": 5.0}, {"settle": 30.0}):
        source, seen = watch(**options)
        write_file(tmp_path / "in" / f"pending-{len(options)}.h5")  # settling, for settle
        time.sleep(0.2)
        began = time.monotonic()
        source.stop()
        assert time.monotonic() - began < 1.0, options
        count = len(seen.events)
        write_file(tmp_path / "in" / f"after-{len(options)}.h5")
        time.sleep(0.3)
        assert len(seen.events) == count
        assert source.status()["state"] == "stopped"


def test_an_idle_watch_costs_no_cpu(watch: Any) -> None:
    watch(recursive=True)
    watch(settle=1.0)
    before = time.process_time()
    time.sleep(2.0)
    # Two idle sources, and whatever else this process does: well under 1 % of a core.
    assert time.process_time() - before < 0.05


def test_a_missing_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    source = FolderSource(str(tmp_path / "missing"))
    with pytest.raises(LightflowError) as error:
        source.start(Collector())
    assert str(error.value) == (
        f"cannot watch folder {tmp_path / 'missing'}: No such file or directory; "
        "create it or fix the path"
    )


def test_a_deleted_folder_shows_in_the_status(
    watch: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, _ = watch()
    shutil.rmtree(tmp_path / "in")
    assert wait_for(lambda: source.status()["state"] == "folder gone", 10)
    assert "the folder was deleted or unmounted" in caplog.text


# -- settings ---------------------------------------------------------------------------------
def test_from_settings_builds_the_source_and_describes_it() -> None:
    source = FolderSource.from_settings(
        {
            "path": "/data/in",
            "patterns": "*.h5",
            "recursive": True,
            "poll": True,
            "poll_interval": 5,
            "settle": 10,
        }
    )
    assert source.describe() == "folder /data/in (*.h5; recursive; polling every 5 s; settle 10 s)"
    assert source.kind == "folder" and source.parameters == ("files",) and source.noun == "file"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"path": "/d", "pattern": "*.h5"}, "unknown setting 'pattern' (did you mean 'patterns'?)"),
        ({"patterns": ["*"]}, "'path' is missing"),
        ({"path": "relative"}, "must be an absolute path"),
        ({"path": "/d", "recursive": "yes"}, "recursive must be true or false"),
        ({"path": "/d", "settle": -1}, "settle must be a number of seconds >= 0"),
        ({"path": "/d", "poll_interval": 0}, "poll_interval must be a number of seconds > 0"),
        ({"path": "/d", "patterns": [1]}, "patterns must be a glob or a list of globs"),
    ],
)
def test_bad_settings_are_one_config_error_line(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        FolderSource.from_settings(settings)
    assert message in str(error.value) and "\n" not in str(error.value)


# -- LineSource -----------------------------------------------------------------------------
def append(path: Path, text: str) -> None:
    with open(path, "a") as file:
        file.write(text)


@pytest.mark.parametrize("poll", [False, True])
def test_lines_are_reported_once_complete(tmp_path: Path, poll: bool) -> None:
    log = write_file(tmp_path / "scan.log", "old 1\nold 2\nhalf")
    source = LineSource(str(log), poll=poll, poll_interval=0.1)
    seen = Collector()
    source.start(seen)
    try:
        assert [e.values["line"] for e in source.existing()] == ["old 1\n", "old 2\n"]
        append(log, " done\nnew 1\npartial")
        assert seen.wait(2, 3)
        time.sleep(0.3)
        assert [e.values["line"] for e in seen.events] == ["half done\n", "new 1\n"]
        append(log, " line\n")
        assert seen.wait(3, 3)
        assert seen.events[2].values["line"] == "partial line\n"
        assert source.arguments(seen.events[:1]) == {"lines": ["half done\n"]}
    finally:
        source.stop()


def test_a_truncated_or_replaced_file_is_read_from_its_start(tmp_path: Path) -> None:
    log = write_file(tmp_path / "scan.log", "a long first line\n")
    source = LineSource(str(log))
    seen = Collector()
    source.start(seen)
    try:
        write_file(log, "short\n")  # truncated and rewritten
        assert seen.wait(1, 3)
        write_file(tmp_path / "rotated", "fresh\n")
        os.replace(tmp_path / "rotated", log)  # replaced under the same name
        assert seen.wait(2, 3)
        assert [e.values["line"] for e in seen.events] == ["short\n", "fresh\n"]
    finally:
        source.stop()


def test_lines_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(LightflowError, match=r"cannot watch the lines of .*No such file"):
        LineSource(str(tmp_path / "missing.log")).start(Collector())
    with pytest.raises(ConfigError, match="unknown setting"):
        LineSource.from_settings({"path": "/x", "aggregate": 3})
