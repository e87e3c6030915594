"""Task jobs pulling ready tasks and handing successors on, in-process against real servers.

The jobs are called directly (no worker), so each test decides what runs where: a
chain's successors run in the task job that took its first task, without a broker
message each, and an internal error in a handed-off task fails that task, not the one
the job took first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lightflow import api
from lightflow.config import Config
from lightflow.queue import driver, task_job
from lightflow.queue import state as rs
from lightflow.queue.ready import ready_key

from tests.servers import ServerProcess

from .conftest import WORKFLOWS

pytestmark = pytest.mark.slow

DATABASE = 12  # not used by the session cluster or other tests


@pytest.fixture
def handles(redis_server: ServerProcess, secantus_server: ServerProcess) -> Iterator[Any]:
    url = f"redis://{redis_server.address}/{DATABASE}"
    config = Config.from_dict(
        {
            "celery": {"broker_url": url},
            "store": {"uri": f"mongodb://{secantus_server.address}/", "database": "handoff"},
        }
    )
    cluster = driver.Cluster(config)
    cluster.redis.flushdb()
    yield cluster
    cluster.redis.flushdb()


def start(cluster: driver.Cluster, workflow: str) -> str:
    """Submit a run and carry it until its first task is ready; return the run id."""
    loaded = api.load(str(WORKFLOWS / f"{workflow}.py"), cluster.config)
    run_id = driver.submit(cluster, loaded, {}, keep_data=True)
    driver.workflow_job(cluster, run_id)
    driver.dag_job(cluster, run_id, "main")
    return run_id


def test_one_task_job_runs_the_whole_chain_from_one_message(handles: driver.Cluster) -> None:
    run_id = start(handles, "chain6")
    assert handles.redis.llen("task") == 1  # the broker queue: one task job, for t0

    driver.task_job(handles, "task")

    record = rs.read_run(handles.redis, run_id)
    assert record is not None and record["state"] == "succeeded"
    assert handles.store.get(run_id).get("seen") == [1, 2, 3, 4, 5, 6]
    assert handles.redis.llen("task") == 1  # no message for t1..t5: handed on in-process
    assert not handles.redis.llen(ready_key("task"))
    assert not handles.redis.hgetall(rs.RUNNING)  # every claim and entry is gone
    handles.store.remove(run_id)


def test_each_task_takes_the_next_one_in_its_own_commit(
    handles: driver.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan-out pulled by one task job: one take of its own, then every task's end
    commits and takes the next ready task in the same round trip."""
    monkeypatch.setenv("LIGHTFLOW_TEST_FAN_WIDTH", "20")
    run_id = start(handles, "wide_fan")
    takes: list[Any] = []
    real = task_job.take

    def counted(*args: Any) -> Any:
        takes.append(args)
        return real(*args)

    monkeypatch.setattr(task_job, "take", counted)
    driver.task_job(handles, "task")
    record = rs.read_run(handles.redis, run_id)
    assert record is not None and record["state"] == "succeeded"
    assert len(takes) == 2  # the first task, and the look that finds the list empty
    assert not handles.redis.llen(ready_key("task"))
    assert not handles.redis.hgetall(rs.RUNNING)
    handles.store.remove(run_id)


def test_an_internal_error_in_a_handed_off_task_fails_that_task(
    handles: driver.Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start(handles, "chain6")
    real = task_job.execute_task

    def breaks_on_t2(task: Any, *args: Any, **kwargs: Any) -> Any:
        if task.name == "t2":
            raise RuntimeError("state server went away")
        return real(task, *args, **kwargs)

    monkeypatch.setattr(task_job, "execute_task", breaks_on_t2)
    driver.task_job(handles, "task")
    record = rs.read_run(handles.redis, run_id)
    assert record is not None and record["state"] == "failed"
    assert record["failed_task"] == "t2"
    assert "RuntimeError: state server went away" in record["error"]
    tasks = api.run_status(run_id, config=handles.config)["dags"]["main"]["tasks"]
    states = [tasks[name]["state"] for name in ("t1", "t2", "t3")]
    assert states == ["succeeded", "failed", "cancelled"]
    assert not handles.redis.hgetall(rs.RUNNING)  # nothing left looking alive
    handles.store.remove(run_id)
