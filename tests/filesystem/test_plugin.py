"""lightflow-filesystem as an extension: found through its entry point, nothing else.

``lightflow ext list`` shows it with its version, ``lightflow tasks`` lists its task
types, ``lightflow config default`` writes its defaults (which ``fs watch`` uses),
the ``folder`` kind is known to the trigger runtime, and ``lightflow fs`` is a
command group; all through the hooks of ``lightflow.plugins``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import yaml
from lightflow import api
from lightflow_filesystem import __version__

from .conftest import WORKFLOWS, lightflow, wait_for, write_file
from .test_watch import Watcher, records


def test_ext_list_shows_the_extension_and_its_version() -> None:
    result = lightflow("ext", "list")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("filesystem"))
    assert line.split() == ["filesystem", "lightflow-filesystem", __version__]


def test_tasks_lists_every_task_type_with_its_summary() -> None:
    result = lightflow("tasks")
    assert result.returncode == 0, result.stderr
    for task in ("MakeDirTask", "CopyTask", "MoveTask", "RemoveTask", "ChownTask", "ChmodTask"):
        assert task in result.stdout
    for task in ("GlobTask", "WalkTask", "NotifyTriggerTask", "NewLineTriggerTask"):
        assert task in result.stdout
    assert "lightflow_filesystem.notify_trigger_task" in result.stdout
    assert "Watches a folder and calls" in result.stdout


def test_the_folder_kind_and_the_fs_group() -> None:
    assert "folder" in api.trigger_kinds()
    result = lightflow("fs", "--help")
    assert result.returncode == 0 and "watch" in result.stdout


def test_config_default_writes_the_watch_defaults(tmp_path: Path) -> None:
    result = lightflow("config", "default", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((tmp_path / "lightflow.cfg").read_text())
    assert written["extensions"]["filesystem"] == {"poll": False, "poll_interval": 1.0}


def test_watch_takes_its_defaults_from_the_extensions_section(tmp_path: Path) -> None:
    folder = tmp_path / "nfs"
    folder.mkdir()
    config = tmp_path / "lightflow.cfg"
    config.write_text(
        yaml.safe_dump(
            {
                "workflows": [str(WORKFLOWS)],
                "extensions": {"filesystem": {"poll": True, "poll_interval": 0.3}},
            }
        )
    )
    record = tmp_path / "record.jsonl"
    watcher = Watcher(
        tmp_path / "log", config, "fs", "watch", str(folder), "--workflow", "record_files",
        "--arg", f"record={record}", "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    write_file(folder / "a.h5")
    assert "polling every 0.3 s" in watcher.log
    assert wait_for(lambda: len(records(record)) == 1, 60), watcher.log
    watcher.stop(signal.SIGINT)
