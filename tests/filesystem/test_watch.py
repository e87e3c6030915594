"""``lightflow fs watch`` and ``folder`` triggers end to end, on both engines.

Real watcher processes watch real folders; the runs they start append what they
received to a record file (``workflows/record_files.py``), from a process of their
own (embedded engine) or a real worker (the cluster: Redis and the MongoDB wire
server). The exactly-once tests kill the watcher with SIGKILL in the middle of a
burst of files and start it again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster import Cluster

from .conftest import WORKFLOWS, lightflow, one_error_line, user_environment, wait_for, write_file

STARTED = re.compile(r"started run (\w+) for (\d+) file\(s\)")


class Watcher:
    """A ``lightflow`` trigger command in the background (its log in a file)."""

    def __init__(self, log: Path, config: Path, *args: str) -> None:
        self.log_path = log
        self._log = open(log, "a")  # appended: a restarted watcher keeps one log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lightflow.cli", "-c", str(config), *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=user_environment(),
        )
        assert wait_for(lambda: "watching folder" in self.log or not self.alive, 60), self.log
        assert self.alive, self.log

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def started_runs(self) -> list[tuple[str, int]]:
        return [(run, int(count)) for run, count in STARTED.findall(self.log)]

    def stop(self, signum: int = signal.SIGTERM) -> float:
        """Send ``signum``; return how long the watcher took to exit."""
        began = time.monotonic()
        self.process.send_signal(signum)
        self.process.wait(30)
        self._log.close()
        return time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL the watcher alone (the runs it started go on, as they would)."""
        self.process.kill()
        self.process.wait(30)
        self._log.close()


def records(path: Path) -> list[dict[str, Any]]:
    """The runs' records: one dict per run that reached its task."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def handed_files(path: Path) -> list[str]:
    return [file for record in records(path) for file in record["files"]]


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    """A watched folder, a record file, a state folder and an embedded-engine config."""
    folder = tmp_path / "detector"
    folder.mkdir()
    config = tmp_path / "lightflow.cfg"
    config.write_text(yaml.safe_dump({"workflows": [str(WORKFLOWS)]}))
    return {
        "folder": folder,
        "record": tmp_path / "record.jsonl",
        "state": tmp_path / "state",
        "config": config,
        "log": tmp_path / "watch.log",
    }


def watch(setup: dict[str, Path], *options: str, config: Path | None = None) -> Watcher:
    return Watcher(
        setup["log"],
        config or setup["config"],
        "fs",
        "watch",
        str(setup["folder"]),
        "--workflow",
        "record_files",
        "--arg",
        f"record={setup['record']}",
        "--state-dir",
        str(setup["state"]),
        *options,
    )


# -- the watch on the embedded engine ---------------------------------------------------------
def test_one_run_per_batch_in_order_and_a_restart_catches_up(setup: dict[str, Path]) -> None:
    folder, record = setup["folder"], setup["record"]
    write_file(folder / "f00.h5")  # there before the watch: handed off when it starts
    os.utime(folder / "f00.h5", (time.time() - 60, time.time() - 60))
    watcher = watch(setup, "--aggregate", "3", "--pattern", "*.h5")
    for i in range(1, 8):
        write_file(folder / f"f{i:02d}.h5")
    write_file(folder / "notes.txt")
    assert wait_for(lambda: len(records(record)) == 2, 60), watcher.log
    assert [[os.path.basename(f) for f in r["files"]] for r in records(record)] == [
        ["f00.h5", "f01.h5", "f02.h5"],
        ["f03.h5", "f04.h5", "f05.h5"],
    ]
    started = watcher.started_runs()
    assert [count for _, count in started] == [3, 3]  # one line per started run
    assert [run for run, _ in started] == [r["run"] for r in records(record)]
    took = watcher.stop(signal.SIGTERM)
    assert took < 2.0  # measured ~0.1 s; the margin is for a loaded 2-core machine
    assert watcher.process.returncode == 0
    assert "stopped with 2 file(s) not handed off" in watcher.log
    assert f"{folder}/f06.h5, {folder}/f07.h5" in watcher.log

    write_file(folder / "f08.h5")  # while nothing watches
    restarted = watch(setup, "--aggregate", "3", "--pattern", "*.h5")
    assert wait_for(lambda: len(records(record)) == 3, 60), restarted.log
    assert [os.path.basename(f) for f in records(record)[2]["files"]] == [
        "f06.h5",
        "f07.h5",
        "f08.h5",
    ]
    restarted.stop(signal.SIGINT)
    assert sorted(handed_files(record)) == sorted(str(folder / f"f{i:02d}.h5") for i in range(9))


def test_recursive_patterns_and_excludes(setup: dict[str, Path]) -> None:
    folder, record = setup["folder"], setup["record"]
    (folder / "scan_1").mkdir()
    watcher = watch(setup, "-r", "-p", "*.h5", "-x", "skip_*")
    for relative in ("scan_1/a.h5", "scan_1/skip_b.h5", "c.cbf", "d.h5"):
        write_file(folder / relative)
    assert wait_for(lambda: len(records(record)) == 2, 60), watcher.log
    time.sleep(0.5)
    watcher.stop()
    assert handed_files(record) == [str(folder / "scan_1" / "a.h5"), str(folder / "d.h5")]


def test_polling_watch_for_network_folders(setup: dict[str, Path]) -> None:
    watcher = watch(setup, "--poll", "--poll-interval", "0.2")
    write_file(setup["folder"] / "from-another-host.h5")
    assert wait_for(lambda: len(records(setup["record"])) == 1, 60), watcher.log
    watcher.stop()
    assert "polling every 0.2 s" in watcher.log


def test_a_file_that_vanishes_before_it_settles_is_not_handed_off(setup: dict[str, Path]) -> None:
    folder, record = setup["folder"], setup["record"]
    watcher = watch(setup, "--settle", "1.0")
    write_file(folder / "fleeting.h5")
    (folder / "fleeting.h5").unlink()
    write_file(folder / "kept.h5")
    assert wait_for(lambda: len(records(record)) == 1, 60), watcher.log
    time.sleep(1.5)
    watcher.stop()
    assert handed_files(record) == [str(folder / "kept.h5")]


def test_a_file_that_vanishes_after_the_hand_off_fails_that_run_only(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    folder, backup = setup["folder"], tmp_path / "backup"
    backup.mkdir()
    watcher = Watcher(
        setup["log"],
        setup["config"],
        "fs",
        "watch",
        str(folder),
        "--workflow",
        "copy_files",
        "--arg",
        f"destination={backup}",
        "--aggregate",
        "2",
        "--state-dir",
        str(setup["state"]),
    )
    write_file(folder / "gone.h5")
    (folder / "gone.h5").unlink()  # after its close was seen: it is in the open batch
    write_file(folder / "a.h5")
    write_file(folder / "b.h5")
    write_file(folder / "c.h5")
    assert wait_for(lambda: (backup / "c.h5").exists(), 60), watcher.log
    watcher.stop()
    assert f"cannot copy {folder / 'gone.h5'}: No such file or directory" in watcher.log
    assert sorted(os.listdir(backup)) == ["b.h5", "c.h5"]  # the next batch went on


# -- on the cluster ---------------------------------------------------------------------------
def test_watch_starts_runs_on_the_cluster(
    setup: dict[str, Path], redis_cluster: Cluster, tmp_path: Path
) -> None:
    config = tmp_path / "cluster.cfg"
    redis_cluster.write_config(config, workflows=[WORKFLOWS])
    watcher = watch(setup, "--aggregate", "2", "--name", f"cluster-{tmp_path.name}", config=config)
    for i in range(4):
        write_file(setup["folder"] / f"f{i}.h5")
    assert wait_for(lambda: len(records(setup["record"])) == 2, 60), watcher.log
    watcher.stop()
    assert "on the cluster engine" in watcher.log
    # The two runs go side by side on the workers and may end in either order; in the
    # order they were started, their batches are the files in the order they landed.
    files = {record["run"]: record["files"] for record in records(setup["record"])}
    started = [run for run, _ in watcher.started_runs()]
    assert sorted(started) == sorted(files)
    in_start_order = [file for run in started for file in files[run]]
    assert in_start_order == [str(setup["folder"] / f"f{i}.h5") for i in range(4)]


# -- exactly once, across SIGKILL --------------------------------------------------------------
def burst(folder: Path, count: int, pause: float) -> threading.Thread:
    """Write ``count`` files in a background thread, ``pause`` seconds apart."""

    def write() -> None:
        for i in range(count):
            write_file(folder / f"burst_{i:04d}.h5")
            time.sleep(pause)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("engine", ["embedded", "cluster"])
def test_killed_in_a_burst_of_1000_files_each_is_handed_off_exactly_once(
    setup: dict[str, Path], redis_cluster: Cluster, tmp_path: Path, engine: str
) -> None:
    config = setup["config"]
    if engine == "cluster":
        config = tmp_path / "cluster.cfg"
        redis_cluster.write_config(config, workflows=[WORKFLOWS])
    options = ("--aggregate", "10", "--name", f"burst-{engine}-{tmp_path.name}")
    folder, record = setup["folder"], setup["record"]
    watcher = watch(setup, *options, config=config)
    writer = burst(folder, 1000, 0.002)
    assert wait_for(lambda: len(handed_files(record)) >= 100, 60), watcher.log
    watcher.kill()  # SIGKILL, with the burst going on
    killed_at = len(handed_files(record))
    writer.join(60)
    restarted = watch(setup, *options, config=config)
    assert wait_for(lambda: len(handed_files(record)) >= 1000, 180, 0.2), restarted.log
    time.sleep(2.0)  # anything handed off twice would show by now
    restarted.stop()
    files = handed_files(record)
    assert killed_at < 1000, "the watcher was not killed during the burst"
    assert len(files) == 1000 and len(set(files)) == 1000
    assert set(files) == {str(folder / f"burst_{i:04d}.h5") for i in range(1000)}


# -- triggers declared in lightflow.cfg -------------------------------------------------------
def two_detectors(tmp_path: Path) -> tuple[Path, dict[str, Path], Path]:
    """A config declaring a folder trigger for each of two detectors: (config, folders, record)."""
    folders = {name: tmp_path / name for name in ("eiger", "pilatus")}
    for folder in folders.values():
        folder.mkdir()
    record = tmp_path / "record.jsonl"
    config = tmp_path / "lightflow.cfg"
    triggers = {
        name: {
            "source": "folder",
            "path": str(folder),
            "patterns": ["*.h5"],
            "workflow": "record_files",
            "arguments": {"record": str(record), "label": name},
        }
        for name, folder in folders.items()
    }
    config.write_text(yaml.safe_dump({"workflows": [str(WORKFLOWS)], "triggers": triggers}))
    return config, folders, record


@pytest.mark.parametrize("command", [("triggers", "run"), ("fs", "watch")])
def test_triggers_section_serves_several_folders(tmp_path: Path, command: tuple[str, str]) -> None:
    config, folders, record = two_detectors(tmp_path)
    state = tmp_path / "state"
    listed = lightflow("triggers", "list", "--state-dir", str(state), config=config)
    assert listed.returncode == 0 and "eiger" in listed.stdout and "folder" in listed.stdout
    watcher = Watcher(tmp_path / "log", config, *command, "--state-dir", str(state))
    write_file(folders["eiger"] / "e.h5")
    write_file(folders["pilatus"] / "p.h5")
    write_file(folders["pilatus"] / "p.txt")
    assert wait_for(lambda: len(records(record)) == 2, 60), watcher.log
    watcher.stop()
    labelled = {r["label"]: [os.path.basename(f) for f in r["files"]] for r in records(record)}
    assert labelled == {"eiger": ["e.h5"], "pilatus": ["p.h5"]}


# -- bad input: one line, exit 1 --------------------------------------------------------------
def test_bad_input_is_one_error_line(setup: dict[str, Path], tmp_path: Path) -> None:
    base = ["--state-dir", str(setup["state"])]
    config = setup["config"]
    missing = lightflow(
        "fs", "watch", str(tmp_path / "nowhere"), "--workflow", "record_files",
        "--arg", "record=/tmp/r", *base, config=config,
    )  # fmt: skip
    assert f"cannot watch folder {tmp_path / 'nowhere'}" in one_error_line(missing)

    no_files = lightflow(
        "fs", "watch", str(setup["folder"]), "--workflow", "remove_path", *base, config=config
    )  # fmt: skip
    assert "declares none of the parameters a folder trigger passes (files)" in (
        one_error_line(no_files)
    )

    polling = lightflow(
        "fs", "watch", str(setup["folder"]), "--workflow", "record_files", "--poll",
        "--settle", "0", *base, config=config,
    )  # fmt: skip
    assert "polling cannot see a file being closed" in one_error_line(polling)

    bad = tmp_path / "bad.cfg"
    bad.write_text(
        yaml.safe_dump(
            {
                "workflows": [str(WORKFLOWS)],
                "triggers": {
                    "t": {
                        "source": "folder",
                        "workflow": "record_files",
                        "path": "/d",
                        "recursve": 1,
                    }
                },
            }
        )
    )
    typo = lightflow("triggers", "run", *base, config=bad)
    line = one_error_line(typo)
    assert "triggers.t: folder trigger: unknown setting 'recursve'" in line
    assert "did you mean 'recursive'" in line


def test_watch_without_a_folder_needs_folder_triggers_and_no_folder_options(
    tmp_path: Path, setup: dict[str, Path]
) -> None:
    none_declared = lightflow("fs", "watch", config=setup["config"])
    assert "no folder triggers in the 'triggers' section" in one_error_line(none_declared)
    config, _, _ = two_detectors(tmp_path)
    misplaced = lightflow("fs", "watch", "--pattern", "*.cbf", config=config)
    assert misplaced.returncode == 2
    assert "--pattern describes a FOLDER given on the command line" in misplaced.stderr
    no_workflow = lightflow("fs", "watch", str(setup["folder"]), config=config)
    assert no_workflow.returncode == 2 and "Missing option '--workflow'" in no_workflow.stderr
