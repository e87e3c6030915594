"""The 1.x examples of lightflow-filesystem do what their docstrings say, on both engines.

The embedded engine runs them as users do (``lightflow run`` subprocesses, stopped
with Ctrl-C for the triggers); the cluster runs them on real workers (Redis, the
MongoDB wire server), stopped with ``workflow stop``. Each example is given its own
folder through its ``folder`` (or ``path``) parameter.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lightflow import api

from tests.cluster import Cluster

from .conftest import EXAMPLES, lightflow, user_environment, wait_for, write_file

EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES.glob("*.py"))


def example(name: str) -> str:
    return str(EXAMPLES / f"{name}.py")


def test_every_example_has_a_test_on_both_engines() -> None:
    tests = {name for name in globals() if name.startswith("test_")}
    for name in EXAMPLE_NAMES:
        assert f"test_{name}_embedded" in tests and f"test_{name}_cluster" in tests, name


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def scan_tree(root: Path) -> Path:
    """Files ``*.file`` at two depths, others that are not, and a link."""
    (root / "scan" / "deep").mkdir(parents=True)
    for relative in ("a.file", "scan/b.file", "scan/deep/c.file", "notes.txt"):
        write_file(root / relative, "x" * 10)
    (root / "link.file").symlink_to(root / "notes.txt")
    return root


class Background:
    """A ``lightflow run`` in the background, its output in a file, stopped by Ctrl-C."""

    def __init__(self, output: Path, *args: str) -> None:
        self.output = output
        self._file = open(output, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lightflow.cli", "run", *args],
            stdout=self._file,
            stderr=subprocess.STDOUT,
            env=user_environment(),
        )

    @property
    def text(self) -> str:
        return self.output.read_text()

    def interrupt(self) -> tuple[int, float]:
        """Ctrl-C; return the exit code and how long the run took to end."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(30)
        took = time.monotonic() - began
        self._file.close()
        return code, took

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._file.close()


def run_on_cluster(cluster: Cluster, name: str, arguments: dict[str, str]) -> tuple[dict, str]:
    """Run an example on the cluster to its end; return its record and its printed text."""
    record, _ = cluster.run(example(name), arguments, timeout=120)
    return record, "\n".join(api.run_logs(record["id"], config=cluster.config))


# -- list_files ----------------------------------------------------------------------------
EXPECTED_FILES = ["a.file", "link.file", "scan/b.file", "scan/deep/c.file"]


def test_list_files_embedded(tmp_path: Path) -> None:
    root = scan_tree(tmp_path)
    result = lightflow("run", example("list_files"), f"folder={root}")
    assert result.returncode == 0, result.stderr
    printed = [line for line in result.stdout.splitlines() if line.startswith(str(root))]
    assert printed == [str(root / relative) for relative in EXPECTED_FILES]


def test_list_files_cluster(tmp_path: Path, redis_cluster: Cluster) -> None:
    root = scan_tree(tmp_path)
    record, printed = run_on_cluster(redis_cluster, "list_files", {"folder": str(root)})
    assert record["state"] == "succeeded"
    for relative in EXPECTED_FILES:
        assert str(root / relative) in printed
    assert "notes.txt" not in printed


# -- remove_dir ----------------------------------------------------------------------------
def test_remove_dir_embedded(tmp_path: Path) -> None:
    result = lightflow("run", example("remove_dir"), f"folder={tmp_path}")
    assert result.returncode == 0, result.stderr
    for name in "abc":
        assert str(tmp_path / "delete_me" / name) in result.stdout
    assert not (tmp_path / "delete_me").exists()


def test_remove_dir_cluster(tmp_path: Path, redis_cluster: Cluster) -> None:
    record, printed = run_on_cluster(redis_cluster, "remove_dir", {"folder": str(tmp_path)})
    assert record["state"] == "succeeded"
    assert str(tmp_path / "delete_me" / "c") in printed
    assert not (tmp_path / "delete_me").exists()


def test_remove_dir_fails_naming_what_it_could_not_remove(tmp_path: Path) -> None:
    (tmp_path / "delete_me").write_text("a file where the folder should be")
    result = lightflow("run", example("remove_dir"), f"folder={tmp_path}")
    assert result.returncode == 1
    assert f"cannot create folder {tmp_path / 'delete_me'}: File exists" in result.stderr


# -- walk_dir ------------------------------------------------------------------------------
def test_walk_dir_embedded(tmp_path: Path) -> None:
    root = scan_tree(tmp_path)
    result = lightflow("run", example("walk_dir"), f"path={root}")
    assert result.returncode == 0, result.stderr
    # Four regular files of 10 bytes; the link is not counted.
    assert f"Statistics for folder: {root}" in result.stdout
    assert "Number files: 4" in result.stdout and "Total size (bytes): 40" in result.stdout


def test_walk_dir_cluster(tmp_path: Path, redis_cluster: Cluster) -> None:
    root = scan_tree(tmp_path)
    record, printed = run_on_cluster(redis_cluster, "walk_dir", {"path": str(root)})
    assert record["state"] == "succeeded"
    assert "Number files: 4" in printed and "Total size (bytes): 40" in printed


def test_walk_dir_needs_its_path(tmp_path: Path) -> None:
    result = lightflow("run", example("walk_dir"))
    assert result.returncode == 1 and "path" in result.stderr


# -- watch_dir -----------------------------------------------------------------------------
def write_twelve(folder: Path) -> None:
    """Twelve files written and closed in ``folder/input``: two batches and two left."""
    assert wait_for((folder / "input").is_dir, 30)
    time.sleep(1.0)  # the trigger task starts right after the folders are made
    for i in range(12):
        write_file(folder / "input" / f"f{i:02d}.h5", f"frame {i}\n")


def assert_watched(folder: Path) -> None:
    """Ten files backed up read-only and published private; the last two still waiting."""
    names = [f"f{i:02d}.h5" for i in range(10)]
    assert wait_for(
        lambda: (
            sorted(os.listdir(folder / "output")) == names
            and all(mode(folder / "output" / n) == 0o700 for n in names)
            and all(mode(folder / "backup" / n) == 0o400 for n in names)
        ),
        60,
        0.1,
    ), (os.listdir(folder / "output"), os.listdir(folder / "backup"))
    assert (folder / "backup" / "f03.h5").read_text() == "frame 3\n"
    assert sorted(os.listdir(folder / "input")) == ["f10.h5", "f11.h5"]


def test_watch_dir_embedded(tmp_path: Path) -> None:
    run = Background(tmp_path / "output.txt", example("watch_dir"), f"folder={tmp_path}")
    try:
        write_twelve(tmp_path)
        assert_watched(tmp_path)
        code, took = run.interrupt()
    finally:
        run.kill()
    assert code == 130 and took < 5.0, run.text  # Ctrl-C ends the trigger within 1 s
    assert "2 file(s) not handed to the callback when the task stopped" in run.text, run.text
    assert f"{tmp_path}/input/f10.h5" in run.text and f"{tmp_path}/input/f11.h5" in run.text
    assert "files_dag:2/chmod_output_task" in run.text


def test_watch_dir_cluster(tmp_path: Path, redis_cluster: Cluster) -> None:
    config = redis_cluster.config
    run_id = api.start_workflow(example("watch_dir"), {"folder": str(tmp_path)}, config=config)
    try:
        write_twelve(tmp_path)
        assert_watched(tmp_path)
    finally:
        stopped_at = time.monotonic()
        api.stop_workflows([run_id], config=config)
    record = api.follow_events(config=config, run_id=run_id, on_event=lambda e: None, timeout=60)
    assert record is not None and record["state"] == "stopped"
    assert time.monotonic() - stopped_at < 15.0
    logs = "\n".join(api.run_logs(run_id, config=config))
    assert "f10.h5" in logs and "f11.h5" in logs and "not handed to the callback" in logs


# -- list_lines ----------------------------------------------------------------------------
def append_lines(folder: Path, lines: list[str]) -> None:
    path = folder / "watch_lines.txt"
    assert wait_for(path.exists, 30)
    time.sleep(1.0)  # the trigger task starts right after the file is made
    for line in lines:
        with open(path, "a") as file:
            file.write(line + "\n")
        time.sleep(0.05)


def test_list_lines_embedded(tmp_path: Path) -> None:
    run = Background(tmp_path / "output.txt", example("list_lines"), f"folder={tmp_path}")
    try:
        append_lines(tmp_path, ["first line", "second line"])
        assert wait_for(lambda: "second line" in run.text, 30), run.text
        code, took = run.interrupt()
    finally:
        run.kill()
    assert code == 130 and took < 5.0
    printed = [line for line in run.text.splitlines() if line.endswith(" line")]
    assert printed == ["first line", "second line"]


def test_list_lines_cluster(tmp_path: Path, redis_cluster: Cluster) -> None:
    config = redis_cluster.config
    run_id = api.start_workflow(example("list_lines"), {"folder": str(tmp_path)}, config=config)
    try:
        append_lines(tmp_path, ["first line", "second line"])
        assert wait_for(lambda: len(printed_lines(run_id, config)) == 2, 60, 0.2)
    finally:
        api.stop_workflows([run_id], config=config)
    record = api.follow_events(config=config, run_id=run_id, on_event=lambda e: None, timeout=60)
    assert record is not None and record["state"] == "stopped"
    assert printed_lines(run_id, config) == ["first line", "second line"]


def printed_lines(run_id: str, config: Any) -> list[str]:
    """What the run's print tasks printed (its log lines read 'time INFO dag/task: text')."""
    logs = api.run_logs(run_id, config=config)
    return [line.split("print_task: ", 1)[1] for line in logs if "print_task: " in line]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_examples_say_what_they_do(name: str) -> None:
    workflow = api.load(example(name))
    assert workflow.docstring and len(workflow.docstring.splitlines()) > 3
