"""The Redis state server (here also the broker) restarts under a cluster at work.

A private cluster of its own: a redis-server with an append-only file (as
docs/cluster.md sets one up), stopped and started again on the same port while runs
are in flight, two workers, the session's SecantusDB as the store.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as redis_client
import yaml
from lightflow import api
from lightflow.config import Config
from lightflow.exceptions import LightflowError, StateServerError

from tests.cluster import Worker
from tests.servers import ServerProcess, redis

pytestmark = pytest.mark.slow

WORKFLOWS = Path(__file__).parent / "workflows"
#: The issue's measure: a Redis restart mid-run, this many times in a row.
TRIALS = 10


@dataclass
class RestartableCluster:
    server: ServerProcess
    config_path: Path
    config: Config
    workers: list[Worker]

    def restart_server(self, down_for: float) -> None:
        """Stop the server (its AOF stays), wait, start it again on the same port and
        return once it has loaded its data (it accepts connections before that)."""
        self.server.stop()
        time.sleep(down_for)
        self.server.start()
        client = redis_client.Redis(host=self.server.host, port=self.server.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis_client.exceptions.BusyLoadingError:
                assert time.monotonic() < deadline, "redis-server did not load its data"
                time.sleep(0.1)

    def start(self, workflow: str, **arguments: str) -> str:
        return api.start_workflow(
            str(WORKFLOWS / f"{workflow}.py"), arguments, config=self.config, keep_data=True
        )

    def wait(self, run_id: str, timeout: float = 120) -> dict:
        record = api.follow_events(
            config=self.config, run_id=run_id, on_event=lambda _event: None, timeout=timeout
        )
        assert record is not None
        return record

    def dead_workers(self) -> list[str]:
        return [w.name for w in self.workers if w.process is None or w.process.poll() is not None]


@pytest.fixture(scope="module")
def restartable(
    tmp_path_factory: pytest.TempPathFactory, secantus_server: ServerProcess
) -> Iterator[RestartableCluster]:
    folder = tmp_path_factory.mktemp("restartable")
    (folder / "aof").mkdir()
    server = redis(append_only=folder / "aof").start()
    config_path = folder / "lightflow.cfg"
    config_path.write_text(
        yaml.safe_dump(
            {
                "celery": {"broker_url": f"redis://{server.address}/0", "worker_concurrency": 2},
                "signal": {"url": f"redis://{server.address}/1", "heartbeat_timeout": 6},
                "store": {"uri": f"mongodb://{secantus_server.address}/", "database": "restarts"},
            }
        )
    )
    workers = [Worker(config_path, f"steady{n}-{uuid.uuid4().hex[:6]}").start() for n in (1, 2)]
    cluster = RestartableCluster(server, config_path, Config.load(str(config_path)), workers)
    try:
        yield cluster
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


def test_runs_and_workers_survive_a_redis_restart_mid_run(
    restartable: RestartableCluster,
) -> None:
    """The fault-injection run's measure: Redis stopped and restarted mid-run, with
    jobs in flight on both workers, ten times; every run completes, no worker dies."""
    outcomes = []
    for trial in range(TRIALS):
        run_id = restartable.start("busy_lanes", seconds="3")
        time.sleep(2.0)  # the lanes are running on both workers
        restartable.restart_server(down_for=1.0 + trial % 3 * 2.0)
        try:
            outcomes.append(restartable.wait(run_id)["state"])
        except LightflowError:
            status = api.run_status(run_id, config=restartable.config)
            tails = "\n".join(worker.log()[-4000:] for worker in restartable.workers)
            pytest.fail(f"trial {trial}: the run hung: {status}\n{tails}")
        assert not restartable.dead_workers(), (trial, restartable.workers[0].log()[-3000:])
    assert outcomes == ["succeeded"] * TRIALS
    logs = [worker.log() for worker in restartable.workers]
    assert not any("Unrecoverable error" in log for log in logs)
    # The jobs that ended after the reconnect met kombu's dead channel (the path that
    # killed workers now and then) and were left to the broker's redelivery.
    assert any("ended after its connection to the broker was lost" in log for log in logs)


def test_a_worker_on_an_append_only_server_gives_no_persistence_warning(
    restartable: RestartableCluster,
) -> None:
    for worker in restartable.workers:
        assert "keeps nothing on disk" not in worker.log()


def test_a_worker_warns_when_the_state_server_keeps_nothing(
    tmp_path: Path, secantus_server: ServerProcess, redis_server: ServerProcess
) -> None:
    path = tmp_path / "lightflow.cfg"
    path.write_text(
        yaml.safe_dump(
            {
                "celery": {"broker_url": f"redis://{redis_server.address}/7"},
                "signal": {"url": f"redis://{redis_server.address}/8"},
                "store": {"uri": f"mongodb://{secantus_server.address}/"},
            }
        )
    )
    worker = Worker(path, f"forgetful-{uuid.uuid4().hex[:6]}", concurrency=1).start()
    worker.stop()
    expected = (
        f"the Redis state server at redis://{redis_server.address}/8 keeps nothing on disk: "
        "a restart loses every run in progress and the run history"
    )
    assert expected in worker.log()
    assert worker.log().count("keeps nothing on disk") == 1  # broker: the same server


def test_wait_keeps_waiting_through_a_redis_restart(restartable: RestartableCluster) -> None:
    """The run succeeds after the outage: `--wait` must say so (exit 0), not exit 1."""
    command = [sys.executable, "-m", "lightflow.cli", "-c", str(restartable.config_path)]
    command += ["workflow", "start", "--wait", str(WORKFLOWS / "busy_lanes.py"), "seconds=4"]
    waiting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    restartable.restart_server(down_for=4.0)
    stdout, stderr = waiting.communicate(timeout=180)
    assert waiting.returncode == 0, stderr
    assert "succeeded" in stdout
    notes = [line for line in stderr.splitlines() if "lost the Redis state server" in line]
    assert len(notes) == 1, stderr
    assert "still following run" in notes[0] and "for up to 600 s" in notes[0]
    assert "Traceback" not in stderr


def test_following_gives_up_after_the_outage_limit(
    restartable: RestartableCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightflow.api import events

    run_id = restartable.start("busy_lanes", seconds="2")
    restartable.wait(run_id)
    other = restartable.start("busy_lanes", seconds="20")
    monkeypatch.setattr(events, "OUTAGE_LIMIT", 3.0)
    restartable.server.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StateServerError, match="cannot reach the Redis state server"):
            api.follow_events(
                config=restartable.config, run_id=other, on_event=lambda _e: None, timeout=60
            )
        assert time.monotonic() - started < 30
    finally:
        restartable.server.start()
    api.stop_workflows([other], config=restartable.config)
    restartable.wait(other)


def test_run_store_says_what_happened_to_a_kept_document(
    restartable: RestartableCluster,
) -> None:
    from lightflow.store.mongo import MongoDataStore

    run_id = restartable.start("busy_lanes", seconds="0")
    record = restartable.wait(run_id)
    assert record["state"] == "succeeded", record
    assert api.run_store(run_id, config=restartable.config).get("seconds") == 0.0
    MongoDataStore(**restartable.config.store).remove(run_id)  # the store lost it
    with pytest.raises(LightflowError) as lost:
        api.run_store(run_id, config=restartable.config)
    message = str(lost.value)
    assert f"run {run_id} was started with --keep-data, but MongoDB at" in message
    assert "database 'restarts' has no document for it" in message
    assert "start it with --keep-data" not in message
