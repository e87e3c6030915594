"""The config's ``logging`` section on a real worker: user handlers get the worker's and
the tasks' records, tagged ``[run/dag/task]`` once, beside Celery's console or instead
of it.

Each test starts its own worker on the 'logcfg' queue with the cluster's settings plus
a logging section; the workflow's other jobs run on the cluster's main worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightflow import api

from .conftest import Cluster, Worker

pytestmark = pytest.mark.slow

FORMAT = "LOGCFG %(levelname)s %(name)s | %(message)s"


@pytest.fixture
def logged_worker(cluster: Cluster, tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Worker]]:
    """Start a worker on queue 'logcfg' whose config has the given logging section."""
    started: list[Worker] = []

    def start(section: dict[str, Any]) -> Worker:
        settings = yaml.safe_load(cluster.config_path.read_text())
        settings["logging"] = section
        path = tmp_path / f"worker-{len(started)}.cfg"
        path.write_text(yaml.safe_dump(settings))
        worker = Worker(path, f"logcfg-{uuid.uuid4().hex[:6]}", queues="logcfg", concurrency=1)
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


def wait_for(read: Callable[[], str], text: str, timeout: float = 10.0) -> str:
    """``read()`` once it contains ``text`` (lines reach files a little after the run ends)."""
    deadline = time.monotonic() + timeout
    while text not in (content := read()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return content


def test_file_handler_on_lightflow_gets_tagged_task_lines_beside_celerys_console(
    cluster: Cluster, logged_worker: Callable[[dict[str, Any]], Worker], tmp_path: Path
) -> None:
    log_file = tmp_path / "lightflow.log"
    worker = logged_worker({
        "version": 1,
        "formatters": {"mine": {"format": FORMAT}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "level": "INFO",
                "formatter": "mine",
            }
        },
        "loggers": {"lightflow": {"handlers": ["file"], "level": "INFO"}},
    })  # fmt: skip
    record, _ = cluster.run("logs_lines")
    assert record["state"] == "succeeded", record
    tag = f"[{record['id'][:8]}/main/expose]"
    line = f"LOGCFG INFO lightflow.beamline | {tag} exposure of scan_0042 done"
    content = wait_for(log_file.read_text, line)
    # only what is logged under `lightflow` reaches the file, tagged once
    assert [text for text in content.splitlines() if tag in text] == [line]
    # Celery still owns the console (the root logger had no handler): the same lines,
    # print included, each once, in Celery's format
    console = wait_for(worker.log, f"{tag} shutter closed")
    for message in ("exposure of scan_0042 done", "detector cooled", "shutter closed"):
        assert console.count(f"{tag} {message}") == 1, console
    assert f"] {tag} exposure of scan_0042 done" in console  # after Celery's own prefix
    # the run's log keeps every line once, whichever handler tagged it
    kept = [text.split(" ", 1)[1] for text in api.run_logs(record["id"], config=cluster.config)]
    assert sorted(kept) == [
        "INFO main/expose: detector cooled",
        "INFO main/expose: exposure of scan_0042 done",
        "INFO main/expose: shutter closed",
    ]


def test_root_handlers_replace_celerys_console_and_get_the_worker_records(
    cluster: Cluster, logged_worker: Callable[[dict[str, Any]], Worker], tmp_path: Path
) -> None:
    log_file = tmp_path / "worker.log"
    worker = logged_worker({
        "version": 1,
        "formatters": {"mine": {"format": FORMAT}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "mine"},
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "mine",
            },
        },
        "root": {"handlers": ["console", "file"], "level": "INFO"},
    })  # fmt: skip
    # the worker's own records: Celery's start-up line, through the section's handlers
    started = wait_for(log_file.read_text, "ready.")
    assert f"LOGCFG INFO celery.apps.worker | {worker.node} ready." in started.splitlines()
    record, _ = cluster.run("logs_lines")
    assert record["state"] == "succeeded", record
    tag = f"[{record['id'][:8]}/main/expose]"
    expected = [
        f"LOGCFG INFO lightflow.beamline | {tag} exposure of scan_0042 done",
        f"LOGCFG INFO beamline | {tag} detector cooled",
        f"LOGCFG INFO celery.redirected | {tag} shutter closed",
    ]
    content = wait_for(log_file.read_text, expected[-1])
    assert [text for text in content.splitlines() if tag in text] == expected
    # the section's console handler is the only one: the same lines, nothing twice
    console = wait_for(worker.log, expected[-1])
    assert [text for text in console.splitlines() if tag in text] == expected
