"""End-to-end: workflows on real workers, a real broker, Redis state and SecantusDB.

Every test runs against the session's private cluster (see conftest.py), once with a
Redis broker and once with RabbitMQ when it is available.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from lightflow import api
from lightflow.exceptions import LightflowError, ParameterError, WorkflowImportError
from lightflow.models import DataStoreDocumentSection

from .conftest import WORKFLOWS, Cluster

pytestmark = pytest.mark.slow


def states(events: list, kind_prefix: str = "task_") -> dict[tuple[str, str], str]:
    """(dag, task) -> last task event kind, without the prefix."""
    result = {}
    for event in events:
        if event.task and event.kind.value.startswith(kind_prefix):
            result[(event.dag, event.task)] = event.kind.value.removeprefix(kind_prefix)
    return result


def test_seed_workflow_runs_on_workers(cluster: Cluster) -> None:
    record, events = cluster.run("branch_seed")
    assert record["state"] == "succeeded"
    got = states(events)
    assert got[("main", "branch")] == "succeeded"
    assert got[("main", "lane1")] == "succeeded"
    assert got[("main", "lane2")] == "skipped"
    assert got[("main", "join")] == "succeeded"
    # every task that ran names the worker that ran it
    assert all(e.worker for e in events if e.kind.value == "task_succeeded")


def test_numpy_array_travels_between_worker_processes(cluster: Cluster) -> None:
    record, _ = cluster.run("numpy_chain", keep_data=True)
    assert record["state"] == "succeeded", record
    document = api.run_store(record["id"][:12], config=cluster.config)
    assert document.get("total") == 3 * 1024 * 1024
    frame = document.get("frame")
    assert isinstance(frame, np.ndarray) and frame.shape == (1024, 1024) and frame[0, 0] == 3
    assert len(document.get("hosts")) == 3
    cluster.store().remove(record["id"])


def test_run_data_is_removed_unless_kept(cluster: Cluster) -> None:
    record, _ = cluster.run("tiny", {"n": "1"})
    assert record["state"] == "succeeded"
    assert not cluster.store().exists(record["id"])


def test_a_chain_runs_on_in_the_process_of_its_first_task(cluster: Cluster) -> None:
    """A ready successor on the same queue is handed off, not sent through the broker."""
    from lightflow.queue import state
    from lightflow.queue.driver import Cluster as Handles

    record, events = cluster.run("chain6", keep_data=True)
    assert record["state"] == "succeeded", record
    document = cluster.store().get(record["id"])
    assert document.get("seen") == [1, 2, 3, 4, 5, 6]  # each task got its predecessor's data
    workers = {e.worker for e in events if e.kind.value == "task_started"}
    assert len(workers) == 1, workers  # the workers run two processes each
    # Handed-off jobs left the outbox with their begin: the sweeper has nothing to resend.
    outbox = Handles(cluster.config).redis.zrange(state.OUTBOX, 0, -1)
    assert not [entry for entry in outbox if record["id"].encode() in entry]
    cluster.store().remove(record["id"])


def test_task_routed_to_a_named_queue_runs_on_its_dedicated_worker(cluster: Cluster) -> None:
    special = cluster.worker("special", queues="special", concurrency=1)
    record, events = cluster.run("routed", keep_data=True)
    assert record["state"] == "succeeded", record
    workers = {e.task: e.worker for e in events if e.kind.value == "task_started"}
    special_pid = special.process.pid
    # the dedicated worker's pool children are its children: compare parent pids
    pid = int(workers["special"].rsplit("/", 1)[1])
    assert _parent_pid(pid) == special_pid or pid == special_pid
    pid_any = int(workers["anywhere"].rsplit("/", 1)[1])
    assert _parent_pid(pid_any) != special_pid
    cluster.store().remove(record["id"])


def _parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_sub_dags_started_and_joined_from_one_task(cluster: Cluster) -> None:
    record, events = cluster.run("sub_dags", keep_data=True)
    assert record["state"] == "succeeded", record
    document = cluster.store().get(record["id"])
    names = document.get("names")
    assert names == ["part", "part:2", "part:3", "part:4", "part:5"]
    assert document.get("joined") is True
    assert sorted(document.get("chunks")) == [0, 10, 20, 30, 40]
    finished = [e.dag for e in events if e.kind.value == "dag_finished"]
    assert set(names) <= set(finished)
    cluster.store().remove(record["id"])


def test_failing_task_fails_the_run_with_its_name_and_error(cluster: Cluster) -> None:
    record, events = cluster.run("failing")
    assert record["state"] == "failed"
    assert record["failed_task"] == "broken"
    assert "ValueError: calibration file missing for value 1" in record["error"]
    failed = [e for e in events if e.kind.value == "task_failed"]
    assert len(failed) == 1 and "failing.py" in failed[0].traceback
    assert "lightflow/queue" not in failed[0].traceback
    status = api.run_status(record["id"], config=cluster.config)
    assert status["dags"]["main"]["tasks"]["broken"]["state"] == "failed"


def test_abort_ends_the_run_aborted(cluster: Cluster) -> None:
    record, events = cluster.run("abort_run")
    assert record["state"] == "aborted"
    assert record["failed_task"] == "check"
    assert states(events)[("main", "never")] == "cancelled"


def test_workflow_stop_kills_the_bash_process_and_records_stopped(cluster: Cluster) -> None:
    run_id = api.start_workflow(
        str(WORKFLOWS / "stoppable.py"), {}, config=cluster.config, keep_data=True
    )
    document = cluster.store()
    deadline = time.monotonic() + 30
    pid = None
    while pid is None and time.monotonic() < deadline:
        if document.exists(run_id):
            pid = document.get(run_id).get("pid")
        time.sleep(0.1)
    assert pid is not None, "the bash task never started"
    assert api.stop_workflows([run_id], config=cluster.config) == [run_id]
    events: list = []
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=events.append, timeout=30
    )
    assert record["state"] == "stopped"
    got = states(events)
    assert got[("main", "sleeper")] == "stopped"
    assert got[("main", "after")] == "cancelled"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    document.remove(run_id)


def test_task_output_is_kept_per_run(cluster: Cluster) -> None:
    record, _ = cluster.run("tiny", {"n": "7"})
    logs = api.run_logs(record["id"], config=cluster.config)
    assert any("hello from run 7" in line and "main/hello" in line for line in logs)
    assert any("detector temperature high" in line for line in logs)


def test_hundred_workflows_started_at_once_all_finish(cluster: Cluster) -> None:
    ids = [
        api.start_workflow(str(WORKFLOWS / "tiny.py"), {"n": str(i)}, config=cluster.config)
        for i in range(100)
    ]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        records = {r["id"]: r["state"] for r in api.list_runs(config=cluster.config, limit=400)}
        if all(records.get(i) == "succeeded" for i in ids):
            break
        time.sleep(0.5)
    assert all(records.get(i) == "succeeded" for i in ids), records


def test_bad_input_is_refused_before_anything_is_queued(cluster: Cluster, tmp_path) -> None:
    before = len(api.list_runs(config=cluster.config))
    broken = tmp_path / "broken.py"
    broken.write_text("from lightflow.models import Dag\nd = Dag('x'\n")
    with pytest.raises(WorkflowImportError, match=r"broken.py:2"):
        api.start_workflow(str(broken), {}, config=cluster.config)
    with pytest.raises(ParameterError, match="seconds"):
        api.start_workflow(str(WORKFLOWS / "slow.py"), {"seconds": "many"}, config=cluster.config)
    with pytest.raises(ParameterError, match="unknown parameter 'nope'"):
        api.start_workflow(str(WORKFLOWS / "tiny.py"), {"nope": "1"}, config=cluster.config)
    with pytest.raises(LightflowError, match="not found"):
        api.start_workflow(str(tmp_path / "missing.py"), {}, config=cluster.config)
    with pytest.raises(
        LightflowError,
        match=r"unpicklable_workflow.py: the workflow cannot be sent to the workers: "
        r"TypeError: cannot pickle '_thread.lock' object",
    ):
        api.start_workflow(str(WORKFLOWS / "unpicklable_workflow.py"), {}, config=cluster.config)
    assert len(api.list_runs(config=cluster.config)) == before


def test_worker_killed_mid_task_does_not_lose_the_run(cluster: Cluster) -> None:
    victim = cluster.worker("victim", queues="victim", concurrency=1)
    run_id = api.start_workflow(
        str(WORKFLOWS / "slow.py"), {"seconds": "3"}, config=cluster.config, keep_data=True
    )
    events: list = []

    def started(event) -> bool:
        return event.kind.value == "task_started" and event.task == "slow"

    deadline = time.monotonic() + 30
    while not any(started(e) for e in events) and time.monotonic() < deadline:
        events = []
        try:
            api.follow_events(
                config=cluster.config, run_id=run_id, on_event=events.append, timeout=1
            )
        except LightflowError:
            pass
    assert any(started(e) for e in events), "the slow task never started"
    victim.kill()
    cluster.worker("rescuer", queues="victim", concurrency=1)
    events = []
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=events.append, timeout=90
    )
    assert record["state"] == "succeeded", record
    document = cluster.store().get(run_id)
    assert len(document.get("attempts")) == 2  # ran again after the kill
    assert document.get("after") is True
    cluster.store().remove(run_id)


def test_unpicklable_task_output_fails_the_task_clearly(cluster: Cluster) -> None:
    record, events = cluster.run("unpicklable", timeout=30)
    assert record["state"] == "failed"
    assert record["failed_task"] == "keep_lock"
    assert "cannot be pickled" in record["error"] and "lock" in record["error"]
    assert states(events)[("main", "next")] == "cancelled"


def test_unreachable_broker_queues_nothing(cluster: Cluster, tmp_path) -> None:
    from lightflow.config import Config

    from tests.servers import free_port

    state = cluster.config.signal["url"]
    config = Config.from_dict(
        {
            "celery": {"broker_url": f"redis://127.0.0.1:{free_port()}/0"},
            "signal": {"url": state},
        }
    )
    before = len(api.list_runs(config=cluster.config))
    started = time.monotonic()
    with pytest.raises(LightflowError, match="nothing was queued"):
        api.start_workflow(str(WORKFLOWS / "tiny.py"), {}, config=config)
    assert time.monotonic() - started < 15
    assert len(api.list_runs(config=cluster.config)) == before


def test_a_crashed_workflow_job_fails_the_run_instead_of_leaving_it_queued(
    cluster: Cluster,
) -> None:
    from lightflow.queue import driver

    # No worker serves this queue: the run stays queued until the failure is recorded.
    run_id = api.start_workflow(
        str(WORKFLOWS / "tiny.py"), {}, config=cluster.config, queue="nobody-serves-this"
    )
    driver.job_failed(driver.Cluster(cluster.config), run_id, RuntimeError("disk full"))
    events: list = []
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=events.append, timeout=10
    )
    assert record["state"] == "failed"
    assert "internal error in the workflow job: RuntimeError: disk full" in record["error"]
    assert events[-1].kind.value == "workflow_finished"


def test_jobs_committed_but_never_sent_are_sent_by_the_sweeper(cluster: Cluster) -> None:
    from lightflow.queue import app, driver

    class DiesBeforeSending(driver.Cluster):
        def send(self, job: str, args: tuple, queue: str) -> None:
            raise RuntimeError("the worker died here")

    # Nobody serves this queue: the workflow job is run here, by a "dying" worker.
    run_id = api.start_workflow(
        str(WORKFLOWS / "tiny.py"), {}, config=cluster.config, queue="nobody-serves-this"
    )
    with pytest.raises(RuntimeError, match="died"):
        driver.workflow_job(DiesBeforeSending(cluster.config), run_id)
    sent = driver.resend_unsent_jobs(driver.Cluster(cluster.config), older_than=0)
    assert any(run_id in entry and app.DAG_JOB in entry for entry in sent)
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda e: None, timeout=30
    )
    assert record["state"] == "succeeded"


def test_run_store_of_a_run_that_kept_no_data_says_how_to_keep_it(cluster: Cluster) -> None:
    record, _ = cluster.run("tiny")
    with pytest.raises(LightflowError, match="--keep-data"):
        api.run_store(record["id"], config=cluster.config)


def test_workers_import_shared_code_from_the_configured_libraries(cluster: Cluster) -> None:
    record, _ = cluster.run("uses_library", keep_data=True)
    assert record["state"] == "succeeded", record
    assert api.run_store(record["id"], config=cluster.config).get("detector") == "pilatus-3"
    cluster.store().remove(record["id"])


def test_a_workflow_imports_helper_modules_beside_it_on_workers(cluster: Cluster) -> None:
    """As in 1.x, a workflow's folder is on the import path: on workers sharing it too."""
    workflow = Path(__file__).parent / "beside" / "counts_frames.py"
    record, _ = cluster.run(str(workflow), keep_data=True)
    assert record["state"] == "succeeded", record
    assert api.run_store(record["id"], config=cluster.config).get("frames") == 4
    cluster.store().remove(record["id"])


def test_an_argument_of_no_json_type_reaches_tasks_as_the_object(cluster: Cluster) -> None:
    record, _ = cluster.run("path_option", {"where": "/data/scan_0042"}, keep_data=True)
    assert record["state"] == "succeeded", record
    seen = api.run_store(record["id"], config=cluster.config).get("seen")
    assert seen == {"type": "PosixPath", "name": "scan_0042"}
    assert record["arguments"] == {"where": "PosixPath('/data/scan_0042')"}  # shown as text
    cluster.store().remove(record["id"])


def test_a_lost_task_that_is_not_safe_to_rerun_fails_the_run_with_a_record(
    cluster: Cluster,
) -> None:
    victim = cluster.worker("victim2", queues="victim2", concurrency=1)
    run_id = api.start_workflow(str(WORKFLOWS / "not_rerunnable.py"), {}, config=cluster.config)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = api.run_status(run_id, config=cluster.config)
        if status["dags"].get("main", {}).get("tasks", {}).get("move_motor"):
            break
        time.sleep(0.1)
    victim.kill()
    events: list = []
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=events.append, timeout=60
    )
    assert record["state"] == "failed"
    assert "not marked safe to re-run" in record["error"]
    status = api.run_status(run_id, config=cluster.config)
    assert status["dags"]["main"]["tasks"]["move_motor"]["state"] == "failed"
    assert status["dags"]["main"]["tasks"]["move_motor"]["duration"] > 0.05  # it did run


def test_a_successor_reads_its_predecessors_meta_records(cluster: Cluster) -> None:
    for _ in range(3):  # the record is written just after the successor is sent: race it
        record, _ = cluster.run("reads_meta", keep_data=True)
        assert record["state"] == "succeeded", record
        seen = api.run_store(record["id"], config=cluster.config).get("seen")
        for name in ("work0", "work1", "work2"):
            assert {"duration", "worker", "status", "end_time"} <= set(seen[name]), seen
        cluster.store().remove(record["id"])


def test_a_running_tasks_meta_entry_is_there_while_it_runs_as_in_1x(cluster: Cluster) -> None:
    """A task that reads the log sees itself and a sibling still running."""
    record, _ = cluster.run("reads_running_meta", keep_data=True, timeout=60)
    assert record["state"] == "succeeded", record
    document = api.run_store(record["id"], config=cluster.config)
    seen = document.get("seen")
    for name in ("probe", "busy"):
        assert seen[name]["status"] == "running", seen
        assert seen[name]["worker"] and seen[name]["start_time"], seen
        assert "end_time" not in seen[name], seen
    final = document.get("log.main.tasks.busy", section=DataStoreDocumentSection.Meta)
    assert final["status"] == "succeeded" and "end_time" in final
    cluster.store().remove(record["id"])


def test_a_dag_stopped_by_a_task_ends_the_run_stopped_saying_so(cluster: Cluster) -> None:
    record, events = cluster.run("stops_a_dag", timeout=60)
    assert record["state"] == "stopped"
    assert record["error"] == "DAG 'scan' stopped by signal.stop_dag() in DAG 'main'"
    assert states(events)[("main", "steer")] == "succeeded"
    assert states(events)[("scan", "expose")] == "succeeded"  # it saw is_stopped


def test_a_workflow_the_workers_cannot_load_fails_naming_worker_and_module(
    cluster: Cluster, tmp_path
) -> None:
    """The client has a library folder the workers lack: the run says so and ends."""
    from lightflow.config import Config

    library = tmp_path / "client_only"
    library.mkdir()
    (library / "client_only_helpers.py").write_text("def frames():\n    return 4\n")
    workflow = tmp_path / "needs_helpers.py"
    workflow.write_text(
        "from client_only_helpers import frames\n"
        "from lightflow.models import Dag\n"
        "from lightflow.tasks import PythonTask\n"
        "d = Dag('main')\n"
        "d.define({PythonTask('count', lambda *args: frames()): None})\n"
    )
    config = Config.from_dict(
        {
            "celery": cluster.config.celery,
            "signal": cluster.config.signal,
            "store": cluster.config.store,
            "libraries": [str(library)],
        }
    )
    run_id = api.start_workflow(str(workflow), {}, config=config)
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda _event: None, timeout=30
    )
    assert record is not None and record["state"] == "failed"
    assert record["error"].startswith("the workflow cannot be loaded on worker ")
    assert "ModuleNotFoundError: No module named 'client_only_helpers'" in record["error"]
    assert "internal error" not in record["error"]
