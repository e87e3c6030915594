"""A killed worker's work runs again within 5 s; stale jobs are dropped; lf:running ends clean.

Real workers on the session's Redis cluster, with the default ``signal.heartbeat_timeout``
(the shared cluster's config sets its own): a *victim* worker holds the work, a
*rescuer* (running since the start, so its sweeper is steady, as a long-lived worker's
is) is given the victim's queue just before the victim is SIGKILLed. The victim's
work is either a task it runs, or a job (workflow, DAG or task job) it received and
has not started: its pool process is stopped (SIGSTOP) before the job arrives.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from lightflow import api
from lightflow.queue.app import DAG_JOB, WORKFLOW_JOB, create_app
from lightflow.queue.recovery import Heartbeats
from lightflow.queue.settings import state_url
from lightflow.queue.state import RUNNING

from tests.cluster import Cluster, Worker

pytestmark = pytest.mark.slow

#: The target: a killed worker's work starts again within this many seconds.
RECOVERY_LIMIT = 5.0

WORKFLOW = '''
"""Notes each start of its task (time and pid) in the file ``starts`` names."""
import os
import time

from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([
    Option("starts", help="File each start is noted in"),
    Option("first_sleep", default=0.0, type=float, help="Seconds the first start sleeps"),
    Option("gil_seconds", default=0, type=int, help="Seconds it holds the GIL, at each start"),
])


def note(data, store, signal, context):
    path = store.get("starts")
    with open(path, "a") as starts:
        starts.write(f"{{time.time()}} {{os.getpid()}}\\n")
    with open(path) as starts:
        first = len(starts.read().splitlines()) == 1
    if first:
        time.sleep(store.get("first_sleep"))
    if store.get("gil_seconds"):  # libc's sleep called holding the GIL, as some C code does
        import ctypes

        ctypes.PyDLL(None).sleep(store.get("gil_seconds"))


d = Dag("main", queue="{dag_queue}")
d.define({{PythonTask("note", note, queue="{task_queue}"): None}})
'''


def starts(path: Path) -> list[float]:
    """The times the task started at, as it noted them."""
    if not path.exists():
        return []
    return [float(line.split()[0]) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def pool_processes(worker: Worker) -> list[int]:
    """The pids of a worker's pool processes (the children of its main process)."""
    assert worker.process is not None
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == worker.process.pid:
                children.append(int(entry.name))
    return children


@pytest.fixture
def site(redis_cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Cluster, Path]]:
    """A config for the cluster's servers with the default heartbeat timeout."""
    settings = redis_cluster.settings()
    signal_section = {"url": settings["signal"]["url"]}
    config = redis_cluster.write_config(tmp_path / "default.cfg", signal=signal_section)
    yield redis_cluster, tmp_path / "default.cfg"
    del config


def workflow_file(tmp_path: Path, dag_queue: str = "dag", task_queue: str = "task") -> Path:
    path = tmp_path / f"recovery_{uuid.uuid4().hex[:6]}.py"
    path.write_text(WORKFLOW.format(dag_queue=dag_queue, task_queue=task_queue))
    return path


def start_workers(config_path: Path, queue: str) -> tuple[Worker, Worker]:
    """The rescuer (on an idle queue of its own for now), then the victim on ``queue``."""
    rescuer = Worker(config_path, f"rescuer-{uuid.uuid4().hex[:6]}", queues=f"idle_{queue}")
    victim = Worker(config_path, f"victim-{uuid.uuid4().hex[:6]}", queues=queue, concurrency=1)
    return rescuer.start(), victim.start()


def rescue(cluster: Cluster, rescuer: Worker, victim: Worker, queue: str) -> float:
    """Give the rescuer the victim's queue, then SIGKILL the victim; the time of the kill."""
    app = create_app(cluster.config)
    replies = app.control.add_consumer(queue, destination=[rescuer.node], reply=True, timeout=5)
    assert replies, "the rescuer did not take the queue"
    killed_at = time.time()
    victim.kill()
    return killed_at


def finish(cluster: Cluster, run_id: str, *workers: Worker) -> None:
    record = api.follow_events(
        config=cluster.config, run_id=run_id, on_event=lambda _: None, timeout=30
    )
    for worker in workers:
        worker.stop()
    assert record is not None and record["state"] == "succeeded", record


def test_a_task_of_a_killed_worker_runs_again_within_5_s(
    site: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, config_path = site
    queue = f"recovery_running_{uuid.uuid4().hex[:6]}"
    rescuer, victim = start_workers(config_path, queue)
    noted = tmp_path / "starts"
    path = workflow_file(tmp_path, task_queue=queue)
    run_id = api.start_workflow(
        str(path), {"starts": str(noted), "first_sleep": "300"}, config=cluster.config
    )
    wait_for(lambda: starts(noted), 30, "the task's first start")
    killed_at = rescue(cluster, rescuer, victim, queue)
    again = wait_for(lambda: starts(noted)[1:], 30, "the task's second start")[0]
    print(f"\nrunning task: started again {again - killed_at:.2f} s after the kill")
    assert again - killed_at <= RECOVERY_LIMIT
    finish(cluster, run_id, rescuer)


@pytest.mark.parametrize("job", ["workflow", "dag", "task"])
def test_a_job_a_killed_worker_held_unstarted_runs_within_5_s(
    site: tuple[Cluster, Path], tmp_path: Path, job: str
) -> None:
    cluster, config_path = site
    queue = f"recovery_{job}_{uuid.uuid4().hex[:6]}"
    rescuer, victim = start_workers(config_path, queue)
    for pid in pool_processes(victim):  # it receives the job and cannot start it
        os.kill(pid, signal.SIGSTOP)
    noted = tmp_path / "starts"
    path = workflow_file(
        tmp_path,
        dag_queue=queue if job == "dag" else "dag",
        task_queue=queue if job == "task" else "task",
    )
    run_id = api.start_workflow(
        str(path),
        {"starts": str(noted)},
        config=cluster.config,
        queue=queue if job == "workflow" else "workflow",
    )
    victim.wait_for_log(f"Task lightflow.{job}[", 30)  # received, and held unstarted
    killed_at = rescue(cluster, rescuer, victim, queue)
    started = wait_for(lambda: starts(noted), 30, "the task's start")[0]
    print(f"\n{job} job held by a killed worker: ran {started - killed_at:.2f} s after the kill")
    assert started - killed_at <= RECOVERY_LIMIT
    finish(cluster, run_id, rescuer)


def test_a_task_holding_the_gil_longer_than_the_timeout_is_not_run_again(
    site: tuple[Cluster, Path], tmp_path: Path
) -> None:
    """Its process sends no heartbeat meanwhile; its worker's main process vouches for it."""
    cluster, config_path = site
    queue = f"recovery_busy_{uuid.uuid4().hex[:6]}"
    worker = Worker(config_path, f"busy-{uuid.uuid4().hex[:6]}", queues=queue, concurrency=1)
    worker.start()
    noted = tmp_path / "starts"
    path = workflow_file(tmp_path, task_queue=queue)
    run_id = api.start_workflow(
        str(path), {"starts": str(noted), "gil_seconds": "5"}, config=cluster.config
    )
    finish(cluster, run_id, worker)
    assert len(starts(noted)) == 1, "a busy task was taken for lost and run again"


def test_stale_jobs_are_dropped_with_one_debug_line(
    site: tuple[Cluster, Path], tmp_path: Path
) -> None:
    """Jobs delivered again for a finished run (or one never known) through the broker."""
    cluster, config_path = site
    queue = f"stale_{uuid.uuid4().hex[:6]}"
    worker = Worker(config_path, f"stale-{uuid.uuid4().hex[:6]}", queues=queue)
    worker.cmd += ["--loglevel", "DEBUG"]
    worker.start()
    record, events = cluster.run("tiny")
    assert record["state"] == "succeeded"
    run_id = record["id"]
    instance = next(event.dag for event in events if event.dag)
    app = create_app(cluster.config)
    stale = [
        (WORKFLOW_JOB, (run_id,)),
        (DAG_JOB, (run_id, instance)),
        (WORKFLOW_JOB, ("no-such-run",)),
        (DAG_JOB, ("no-such-run", "main")),
    ]
    for name, args in stale:
        app.send_task(name, args=args, queue=queue)
    wait_for(lambda: worker.log().count("dropped a stale") == len(stale), 20, "4 drops")
    log = worker.log()  # before its shutdown, which logs its pool's end
    worker.stop()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
    drops = [line for line in log.splitlines() if "dropped a stale" in line]
    assert all("DEBUG" in line for line in drops), drops
    assert any(f"DAG job: run {run_id} is succeeded" in line for line in drops), drops


def test_no_running_entry_outlives_its_task(redis_cluster: Cluster) -> None:
    """Many short tasks: once their runs ended and a heartbeat went by, none is listed."""
    os.environ["LIGHTFLOW_TEST_FAN_WIDTH"] = "40"
    try:
        run_ids = [
            api.start_workflow("wide_fan", {}, config=redis_cluster.config) for _ in range(40)
        ]
    finally:
        del os.environ["LIGHTFLOW_TEST_FAN_WIDTH"]
    for run_id in run_ids:
        record = api.follow_events(
            config=redis_cluster.config, run_id=run_id, on_event=lambda _: None, timeout=60
        )
        assert record is not None and record["state"] == "succeeded", record
    time.sleep(2 * Heartbeats.INTERVAL)  # a heartbeat of every process went by
    client = redis.Redis.from_url(state_url(redis_cluster.config))
    left = [
        field.decode()
        for field in client.hkeys(RUNNING)
        if field.decode().split("|", 1)[0] in run_ids
    ]
    assert not left, f"lf:running still lists finished tasks: {left}"
