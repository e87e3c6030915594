"""Hand-off of successors inside one task job, driven in-process against real servers.

The jobs are called directly (no worker), so each test decides what runs where: a
chain's successors run in the job of its first task, and an internal error in a
handed-off task fails that task, not the one the job was sent for.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from lightflow import api
from lightflow.config import Config
from lightflow.queue import driver, task_job
from lightflow.queue import state as rs

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
    """Submit a run and carry it to its first task's job; return the run id."""
    loaded = api.load(str(WORKFLOWS / f"{workflow}.py"), cluster.config)
    run_id = driver.submit(cluster, loaded, {}, keep_data=True)
    driver.workflow_job(cluster, run_id)
    driver.dag_job(cluster, run_id, "main")
    return run_id


def attempt_of(cluster: driver.Cluster, run_id: str, task: str) -> str:
    raw = cluster.redis.get(rs.run_key(run_id, "dag", "main"))
    assert raw is not None
    return str(rs.load_dag_state(raw)["attempts"][task])


def test_one_job_runs_the_whole_chain(handles: driver.Cluster) -> None:
    run_id = start(handles, "chain6")
    driver.task_job(handles, run_id, "main", "t0", attempt_of(handles, run_id, "t0"))
    record = rs.read_run(handles.redis, run_id)
    assert record is not None and record["state"] == "succeeded"
    assert handles.store.get(run_id).get("seen") == [1, 2, 3, 4, 5, 6]
    assert not handles.redis.zrange(rs.OUTBOX, 0, -1)  # every handed-off job left it
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
    driver.task_job(handles, run_id, "main", "t0", attempt_of(handles, run_id, "t0"))
    record = rs.read_run(handles.redis, run_id)
    assert record is not None and record["state"] == "failed"
    assert record["failed_task"] == "t2"
    assert "RuntimeError: state server went away" in record["error"]
    machine = rs.load_dag_state(handles.redis.get(rs.run_key(run_id, "dag", "main")))
    states = machine["machine"]["states"]
    assert (states["t1"], states["t2"], states["t3"]) == ("succeeded", "failed", "cancelled")
    assert not handles.redis.hgetall(rs.RUNNING)  # nothing left looking alive
    handles.store.remove(run_id)
