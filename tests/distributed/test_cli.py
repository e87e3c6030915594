"""The distributed CLI end to end: real `lightflow` subprocesses against the cluster."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml
from lightflow import api

from .conftest import WORKFLOWS, Cluster

pytestmark = pytest.mark.slow


def lightflow(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lightflow.cli", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_workflow_start_prints_only_the_run_id(cluster: Cluster) -> None:
    result = lightflow(cluster.config_path, "workflow", "start", str(WORKFLOWS / "tiny.py"))
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    assert len(run_id) == 32 and run_id.isalnum()
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda e: None, timeout=30
    )
    assert record["state"] == "succeeded"


def test_workflow_start_wait_exits_zero_on_success_with_progress(cluster: Cluster) -> None:
    result = lightflow(cluster.config_path, "workflow", "start", "--wait", "branch_seed")
    assert result.returncode == 0, result.stderr
    assert "main/lane1" in result.stdout and "main/lane2" in result.stdout
    assert "succeeded" in result.stdout


def test_workflow_start_wait_exits_one_naming_the_failed_task(cluster: Cluster) -> None:
    result = lightflow(cluster.config_path, "workflow", "start", "--wait", "failing")
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1
    assert "broken" in error_lines[0] and "calibration file missing" in error_lines[0]
    assert "failing.py" in result.stderr  # the task's own traceback follows


def test_status_and_logs_of_a_finished_run(cluster: Cluster) -> None:
    record, _ = cluster.run("tiny", {"n": "42"})
    listing = lightflow(cluster.config_path, "workflow", "status")
    assert listing.returncode == 0 and record["id"][:8] in listing.stdout
    details = lightflow(cluster.config_path, "workflow", "status", "-d", record["id"][:10])
    assert details.returncode == 0, details.stderr
    assert "hello" in details.stdout and "succeeded" in details.stdout
    logs = lightflow(cluster.config_path, "workflow", "logs", record["id"])
    assert logs.returncode == 0 and "hello from run 42" in logs.stdout


def test_task_print_lands_in_the_worker_log_tagged_with_run_dag_and_task(
    cluster: Cluster,
) -> None:
    record, _ = cluster.run("tiny", {"n": "77"})
    tag = f"[{record['id'][:8]}/main/hello]"
    deadline = time.monotonic() + 10
    while (
        time.monotonic() < deadline and f"{tag} hello from run 77" not in cluster.workers[0].log()
    ):
        time.sleep(0.2)
    assert f"{tag} hello from run 77" in cluster.workers[0].log()


def test_monitor_of_one_run_replays_its_events_and_ends_with_it(cluster: Cluster) -> None:
    record, _ = cluster.run("branch_seed")
    result = lightflow(cluster.config_path, "monitor", record["id"], timeout=30)
    assert result.returncode == 0, result.stderr
    assert "lane2" in result.stdout and "skipped" in result.stdout
    assert result.stdout.strip().splitlines()[-1].find("succeeded") >= 0


def test_worker_status_lists_live_workers_and_stop_ends_one(cluster: Cluster) -> None:
    extra = cluster.worker("status", queues="status-only", concurrency=1)
    status = lightflow(cluster.config_path, "worker", "status")
    assert status.returncode == 0, status.stderr
    assert extra.node in status.stdout and "status-only" in status.stdout
    stopped = lightflow(cluster.config_path, "worker", "stop", extra.node)
    assert stopped.returncode == 0, stopped.stderr
    assert extra.node in stopped.stdout
    assert extra.process is not None
    extra.process.wait(30)


def test_a_1x_lightflow_cfg_with_host_and_port_keys_runs_workflows(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The 1.x layout: signal/store as host, port, database; a graph section (ignored)."""
    state_host, state_port = cluster.config.signal["url"].split("//")[1].split("/")[0].split(":")
    state_db = int(cluster.config.signal["url"].rsplit("/", 1)[1])
    store_host, store_port = cluster.config.store["uri"].split("//")[1].strip("/").split(":")
    config = tmp_path / "lightflow.cfg"
    config.write_text(
        yaml.safe_dump(
            {
                "workflows": [str(WORKFLOWS)],
                "libraries": [],
                "celery": {"broker_url": cluster.config.celery["broker_url"]},
                "signal": {
                    "host": state_host,
                    "port": int(state_port),
                    "password": None,
                    "database": state_db,
                    "polling_time": 0.5,
                },
                "store": {
                    "host": store_host,
                    "port": int(store_port),
                    "database": cluster.config.store["database"],
                    "username": None,
                    "password": None,
                    "auth_source": "admin",
                    "auth_mechanism": None,
                },
                "graph": {"workflow_polling_time": 0.5, "dag_polling_time": 0.5},
                "cli": {"time_format": "%Y-%m-%d %H:%M:%S"},
            }
        )
    )
    result = lightflow(config, "workflow", "start", "--wait", "tiny", "n=5")
    assert result.returncode == 0, result.stderr
    assert "Note:" in result.stderr and "graph" in result.stderr  # deprecation, one line


def test_workflow_stop_accepts_a_run_id_prefix(cluster: Cluster) -> None:
    run_id = api.start_workflow(str(WORKFLOWS / "stoppable.py"), {}, config=cluster.config)
    result = lightflow(cluster.config_path, "workflow", "stop", run_id[:8])
    assert result.returncode == 0, result.stderr
    assert run_id in result.stdout
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda e: None, timeout=30
    )
    assert record["state"] == "stopped"


def test_workflow_stop_needs_neither_the_workflow_nor_its_libraries(
    cluster: Cluster, tmp_path: Path
) -> None:
    # Started by a client that has the library; stopped from one that has not, while a
    # task waits in a join: the stop runs no code of the workflow's (1.x and the first
    # versions here unpickled it and failed).
    run_id = api.start_workflow(str(WORKFLOWS / "library_join.py"), {}, config=cluster.config)
    deadline = time.monotonic() + 30
    while "sleeper" not in api.run_status(run_id, config=cluster.config)["dags"]:
        assert time.monotonic() < deadline, "the sub-DAG never started"
        time.sleep(0.1)
    settings = cluster.settings()
    del settings["libraries"]
    client = tmp_path / "client.cfg"
    client.write_text(yaml.safe_dump(settings))
    stop = lightflow(client, "workflow", "stop", run_id)
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout == f"{run_id}\n" and stop.stderr == ""
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda e: None, timeout=30
    )
    assert record["state"] == "stopped"


def test_workflow_stop_of_a_workflow_with_nothing_running_is_not_an_error(
    cluster: Cluster, tmp_path: Path
) -> None:
    run_id = api.start_workflow(str(WORKFLOWS / "stoppable.py"), {}, config=cluster.config)
    first = lightflow(cluster.config_path, "workflow", "stop", "stoppable")
    assert first.returncode == 0 and run_id in first.stdout, first.stderr
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda e: None, timeout=30
    )
    assert record["state"] == "stopped"
    again = lightflow(cluster.config_path, "workflow", "stop", "stoppable")
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert again.stderr == "No queued or running runs of stoppable: nothing to stop.\n"
    # A workflow known only from a recorded run (its file is in no workflow folder).
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_text((WORKFLOWS / "tiny.py").read_text())
    finished = api.start_workflow(str(elsewhere), {}, config=cluster.config)
    api.follow_events(config=cluster.config, run_id=finished, on_event=lambda e: None, timeout=30)
    known = lightflow(cluster.config_path, "workflow", "stop", "elsewhere")
    assert known.returncode == 0 and "nothing to stop" in known.stderr, known.stderr
    # Neither a run id nor a workflow: still an error, one line.
    unknown = lightflow(cluster.config_path, "workflow", "stop", "no_such_workflow")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and unknown.stderr.startswith("Error: ")
    assert "no workflow named 'no_such_workflow'" in unknown.stderr
    empty = lightflow(cluster.config_path, "workflow", "stop", " ")  # not a prefix of all runs
    assert empty.returncode == 1 and "empty run id" in empty.stderr


def test_status_details_show_the_traceback_of_a_failed_task(cluster: Cluster) -> None:
    run_id = lightflow(cluster.config_path, "workflow", "start", "failing").stdout.strip()
    api.follow_events(config=cluster.config, run_id=run_id, on_event=lambda e: None, timeout=30)
    plain = lightflow(cluster.config_path, "workflow", "status", run_id)
    assert plain.returncode == 0 and "Traceback" not in plain.stdout
    details = lightflow(cluster.config_path, "workflow", "status", "-d", run_id)
    assert details.returncode == 0, details.stderr
    lines = details.stdout.splitlines()
    header = lines.index(
        "Task main/broken failed: ValueError: calibration file missing for value 1"
    )
    block = lines[header + 1 : lines.index("", header)]
    assert block[0] == "  Traceback (most recent call last):"
    assert f'    File "{WORKFLOWS / "failing.py"}", line 12, in broken' in block
    assert block[-1] == "  ValueError: calibration file missing for value 1"
    assert all(line.startswith("  ") for line in block)
    assert "lightflow/execution.py" not in details.stdout


def test_a_callback_returning_a_non_action_is_reported_without_lightflow_frames(
    cluster: Cluster,
) -> None:
    result = lightflow(cluster.config_path, "workflow", "start", "--wait", "returns_non_action")
    assert result.returncode == 1
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert error_lines == [
        "Error: task main/answer failed: TaskDefinitionError: task 'answer' returned int; "
        "return an Action or None"
    ]
    source = WORKFLOWS / "returns_non_action.py"
    assert f'File "{source}", line 7, in answer' in result.stderr  # the callback
    run_id = result.stdout.splitlines()[0]
    details = lightflow(cluster.config_path, "workflow", "status", "-d", run_id)
    assert f'File "{source}", line 7, in answer' in details.stdout
    for output in (result.stderr, details.stdout):
        assert "lightflow/execution.py" not in output and "models/task.py" not in output
        assert "Traceback" not in output


def test_workflow_start_rejects_an_empty_queue_and_queues_nothing(cluster: Cluster) -> None:
    before = {r["id"] for r in api.list_runs(config=cluster.config)}
    for queue in ("", "  "):
        result = lightflow(cluster.config_path, "workflow", "start", "tiny", "-q", queue)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "queue name" in result.stderr
    assert {r["id"] for r in api.list_runs(config=cluster.config)} == before


def test_waiting_on_a_queue_no_worker_consumes_says_so_once_and_goes_on(
    cluster: Cluster, tmp_path: Path
) -> None:
    queue = f"nosuchqueue-{uuid.uuid4().hex[:6]}"
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "lightflow.cli", "-c", str(cluster.config_path),
             "workflow", "start", "tiny", "-q", queue, "--wait"],
            stdout=stdout, stderr=stderr, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while "Note:" not in err.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, err.read_text()
                time.sleep(0.2)
            time.sleep(1.0)
            assert process.poll() is None  # still waiting after the note
            run_id = out.read_text().strip()
            assert api.run_status(run_id, config=cluster.config)["state"] == "queued"
            assert api.stop_workflows([run_id], config=cluster.config) == [run_id]
            assert process.wait(30) == 1  # it ended with the (stopped) run
        finally:
            if process.poll() is None:
                process.kill()
    notes = [line for line in err.read_text().splitlines() if line.startswith("Note:")]
    assert len(notes) == 1, err.read_text()
    assert f"still queued on queue '{queue}'" in notes[0]
    assert f"`lightflow worker start -q {queue}`" in notes[0]
