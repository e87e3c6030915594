"""Triggers on the cluster: runs through the public API, state in the state server.

Against the session's private cluster (``redis_cluster``: Redis broker and state
server, a real ``lightflow worker``): the cluster launcher's runs complete on the
worker and a start repeated under the same id records nothing new; ``lightflow
triggers run --cluster`` publishes its state to the Redis status board, where
``api.list_triggers`` and ``lightflow triggers list`` read it from any host, and holds
its trigger against a second process until another host takes it over.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from lightflow import api
from lightflow.queue.driver import Cluster as ClusterHandle
from lightflow.triggers.launcher import ClusterLauncher
from lightflow.triggers.ledger import Batch
from lightflow.triggers.status import STATUS_KEY, RedisStatusBoard

from tests.cluster import Cluster

from ..cli import clean_environment, run_lightflow
from .helpers import WORKFLOWS, items_written, lightflow, send, wait_until


def test_the_cluster_launcher_starts_a_run_once_per_id(
    redis_cluster: Cluster, tmp_path: Path
) -> None:
    out = tmp_path / "items.txt"
    launcher = ClusterLauncher(redis_cluster.config, queue="workflow", keep_data=False)
    launcher.open(api.load(str(WORKFLOWS / "collect.py")))
    batch = Batch(uuid.uuid4().hex, ["a", "b"], {"items": ["a", "b"], "out": str(out)})
    started: list[str] = []
    launcher.launch(batch, started.append)
    assert started == [batch.id]
    result = api.wait_for_run(batch.id, config=redis_cluster.config, timeout=30)
    assert result.succeeded
    record = api.run_status(batch.id, config=redis_cluster.config)

    launcher.launch(batch, started.append)  # a restarted trigger starting it again
    assert started == [batch.id, batch.id]
    again = api.run_status(batch.id, config=redis_cluster.config)
    assert again["created"] == record["created"] and again["state"] == "succeeded"
    runs = api.list_runs(config=redis_cluster.config, workflow="collect")
    assert [run["id"] for run in runs].count(batch.id) == 1
    assert items_written(out) == [["a", "b"]]
    launcher.close(0.0)


def test_a_cluster_trigger_publishes_its_state_and_holds_its_trigger(
    redis_cluster: Cluster, tmp_path: Path, plugin_path: Path
) -> None:
    name = f"beam-{uuid.uuid4().hex[:6]}"
    out, sock = tmp_path / "items.txt", tmp_path / "t.sock"
    config_path = tmp_path / "lightflow.cfg"
    trigger = {
        "source": "lines",
        "workflow": "collect",
        "path": str(sock),
        "arguments": {"out": str(out)},
    }
    config = redis_cluster.write_config(
        config_path, workflows=[WORKFLOWS], triggers={name: trigger}
    )
    command = ["-c", str(config_path), "triggers", "run"]  # the cluster: a broker is set
    with lightflow(command, folder=tmp_path, plugin=plugin_path) as process:
        process.wait_for(f"trigger {name}: watching .* on the cluster engine")
        send(sock, "p1")
        wait_until(lambda: items_written(out) == [["p1"]], what="the run on the worker")
        (line,) = process.wait_for(f"trigger {name}: started run ")
        run_id = line.split("started run ")[1].split()[0]
        assert api.run_status(run_id, config=config)["state"] == "succeeded"

        def listed() -> dict:
            return next(e for e in api.list_triggers(config=config) if e["name"] == name)

        state = wait_until(lambda: listed()["runs"] == 1 and listed(), what="runs: 1")
        assert state["state"] == "running" and state["engine"] == "cluster"
        assert state["last_run"] == run_id and state["pid"] == process.pid
        board = RedisStatusBoard(ClusterHandle(redis_cluster.config).redis)
        assert board.read()[name]["runs"] == 1  # the hash every host reads

        environment = clean_environment(tmp_path, PYTHONPATH=str(plugin_path))
        shown = run_lightflow(
            ["-c", str(config_path), "triggers", "list"], cwd=tmp_path, env=environment
        )
        assert shown.returncode == 0, shown.stderr
        expected = f"{name}  running  lines on {sock}  -> collect  runs: 1  last: {run_id}"
        assert expected in shown.stdout.splitlines()

        second = run_lightflow(command, cwd=tmp_path, env=environment)
        assert second.returncode == 1
        assert second.stderr.startswith(f"Error: trigger '{name}' is already watched by ")
        assert len(second.stderr.splitlines()) == 1

        # another host takes the trigger over (this one's ownership lapsed): it stops
        client = ClusterHandle(redis_cluster.config).redis
        client.set(f"lf:trigger:{name}:owner", "beamline-pc-2/4242#abcdef", px=15000)
        assert process.wait(15) == 1
        assert process.stderr.splitlines()[-1] == (
            f"Error: trigger '{name}' was taken over by beamline-pc-2/4242#abcdef"
        )
    assert listed()["state"] == "stopped"
    # what the other process holds is not given up by this one
    assert client.get(f"lf:trigger:{name}:owner") == b"beamline-pc-2/4242#abcdef"
    client.delete(f"lf:trigger:{name}:owner")
    client.hdel(STATUS_KEY, name)


def test_a_trigger_run_embedded_on_a_cluster_config_is_listed_too(
    redis_cluster: Cluster, tmp_path: Path
) -> None:
    import time

    from lightflow.triggers.status import FileStatusBoard

    name = f"embedded-{uuid.uuid4().hex[:6]}"
    state = {"name": name, "kind": "lines", "workflow": "collect", "state": "running",
             "updated": time.time(), "runs": 3}  # fmt: skip
    FileStatusBoard(tmp_path / "state").publish(name, state)
    listed = {e["name"]: e for e in api.list_triggers(config=redis_cluster.config,
                                                      state_dir=tmp_path / "state")}  # fmt: skip
    assert listed[name]["state"] == "running" and listed[name]["runs"] == 3
