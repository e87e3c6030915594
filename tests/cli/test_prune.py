"""Run-history retention: ``state.prune_finished_runs``, ``api.prune_runs`` and
``lightflow workflow prune``, on the session's real redis-server.

Runs are planted with the key layout the distributed engine writes (the module
docstring of :mod:`lightflow.queue.state`), each in a private database that is
emptied before every test; the tests then assert exactly which keys are left.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from lightflow import api
from lightflow.config import Config
from lightflow.exceptions import ConfigError, LightflowError
from lightflow.queue import state

from tests.servers import ServerProcess

from .test_cli import assert_one_error_line, invoke
from .test_distributed_cli import dead_port

DATABASE = 7  # the end-to-end cluster uses 1 and 2
DAY = 86_400.0


@pytest.fixture
def client(redis_server: ServerProcess) -> Iterator[redis.Redis]:
    """A client of an emptied private database on the session's redis-server."""
    client = redis.Redis(host=redis_server.host, port=redis_server.port, db=DATABASE)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def plant_run(
    client: redis.Redis,
    run_state: str,
    *,
    created_ago: float,
    ended_ago: float | None = None,
    run_id: str | None = None,
) -> tuple[str, set[str]]:
    """Write a run as the engine lays it out; return its id and every key it has."""
    run_id = run_id or uuid.uuid4().hex
    now = state.now()
    record: dict[str, Any] = {
        "workflow": "scan",
        "state": run_state,
        "created": now - created_ago,
        "arguments": "{}",
        "queue": "workflow",
        "keep_data": "0",
        "path": "/beamline/workflows/scan.py",
    }
    if run_state != "queued":
        record["started"] = now - created_ago + 1
    if ended_ago is not None:
        record["ended"] = now - ended_ago
    key = state.run_key
    pipe = client.pipeline()
    pipe.hset(key(run_id), mapping=record)
    pipe.zadd(state.RUNS, {run_id: now - created_ago})
    pipe.set(key(run_id, "workflow"), b"pickled workflow")
    pipe.rpush(key(run_id, "events"), '{"kind": "workflow_started"}')
    pipe.rpush(key(run_id, "logs"), "04:10:21 INFO main/expose: hello")
    pipe.hset(key(run_id, "dags"), "main", "succeeded" if ended_ago else "")
    pipe.set(key(run_id, "dag", "main"), '{"dag": "main"}')
    pipe.set(key(run_id, "dagv", "main"), 3)
    pipe.set(key(run_id, "seq", "main"), 1)
    pipe.set(key(run_id, "dagdef", "main"), b"pickled dag")
    pipe.set(key(run_id, "out", "main", "expose"), b"pickled output")
    pipe.set(key(run_id, "stop"), "stopped")
    pipe.set(key(run_id, "stop", "main"), "stopped")
    pipe.zadd(key(run_id, "metapending"), {"main|expose": now})
    pipe.execute()
    keys = {
        key(run_id),
        *(
            key(run_id, *parts)
            for parts in (
                ("workflow",),
                ("events",),
                ("logs",),
                ("dags",),
                ("dag", "main"),
                ("dagv", "main"),
                ("seq", "main"),
                ("dagdef", "main"),
                ("out", "main", "expose"),
                ("stop",),
                ("stop", "main"),
                ("metapending",),
            )
        ),
    }
    return run_id, keys


def plant_globals(client: redis.Redis, run_id: str) -> set[str]:
    """Keys shared by all runs (and one that is not Lightflow's): never pruned."""
    client.hset(state.RUNNING, state.running_field(run_id, "main", "expose"), "{}")
    client.zadd(state.OUTBOX, {'["lightflow.task", [], "task"]': state.now()})
    client.set("celery-task-meta-1", "{}")
    return {state.RUNNING, state.OUTBOX, "celery-task-meta-1"}


def keys_of(client: redis.Redis) -> set[str]:
    """Every key in the database but the run list (``listed_runs`` reads that)."""
    return {state.text(key) for key in client.keys("*")} - {state.RUNS}


def listed_runs(client: redis.Redis) -> set[str]:
    return {state.text(run_id) for run_id in client.zrange(state.RUNS, 0, -1)}


# -- the state function ---------------------------------------------------------------------
def test_prune_deletes_every_key_of_old_finished_runs_and_nothing_else(
    client: redis.Redis,
) -> None:
    old = {
        run_state: plant_run(client, run_state, created_ago=10 * DAY, ended_ago=9 * DAY)
        for run_state in ("succeeded", "failed", "stopped", "aborted")
    }
    kept = [
        plant_run(client, "succeeded", created_ago=10 * DAY, ended_ago=DAY),  # ended lately
        plant_run(client, "running", created_ago=30 * DAY),  # runs for a month
        plant_run(client, "queued", created_ago=30 * DAY),  # never picked up
        plant_run(client, "failed", created_ago=30 * DAY),  # closing: no `ended` yet
        # a record that says running wins over a stray `ended`
        plant_run(client, "running", created_ago=30 * DAY, ended_ago=20 * DAY),
        plant_run(client, "succeeded", created_ago=DAY, ended_ago=DAY),
    ]
    shared = plant_globals(client, old["failed"][0])
    pruned = state.prune_finished_runs(client, 7 * DAY)

    assert sorted(pruned) == sorted(run_id for run_id, _ in old.values())
    assert keys_of(client) == shared | {key for _, keys in kept for key in keys}
    assert listed_runs(client) == {run_id for run_id, _ in kept}


def test_a_dry_run_names_the_same_runs_and_deletes_nothing(client: redis.Redis) -> None:
    first, _ = plant_run(client, "succeeded", created_ago=5 * DAY, ended_ago=4 * DAY)
    second, _ = plant_run(client, "stopped", created_ago=3 * DAY, ended_ago=3 * DAY)
    plant_run(client, "running", created_ago=5 * DAY)
    before = keys_of(client)

    assert state.prune_finished_runs(client, DAY, dry_run=True) == [first, second]
    assert keys_of(client) == before
    assert state.prune_finished_runs(client, DAY) == [first, second]  # oldest first
    assert len(keys_of(client)) < len(before)


def test_a_run_whose_id_starts_another_runs_id_takes_only_its_own_keys(
    client: redis.Redis,
) -> None:
    old, _ = plant_run(client, "succeeded", created_ago=3 * DAY, ended_ago=3 * DAY, run_id="abc")
    _, keys = plant_run(client, "running", created_ago=3 * DAY, run_id="abcdef")
    assert state.prune_finished_runs(client, DAY) == [old]
    assert keys_of(client) == keys
    assert listed_runs(client) == {"abcdef"}


def test_many_runs_are_pruned_across_batches(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state, "PRUNE_BATCH", 3)  # records read and keys deleted per trip
    old = [plant_run(client, "succeeded", created_ago=9 * DAY, ended_ago=8 * DAY)[0]]
    old += [plant_run(client, "failed", created_ago=8 * DAY, ended_ago=8 * DAY)[0] for _ in "1234"]
    running_id, running = plant_run(client, "running", created_ago=9 * DAY)
    assert sorted(state.prune_finished_runs(client, DAY)) == sorted(old)
    assert keys_of(client) == running
    assert listed_runs(client) == {running_id}


def test_nothing_to_prune_leaves_everything(client: redis.Redis) -> None:
    plant_run(client, "succeeded", created_ago=60, ended_ago=30)
    before = keys_of(client)
    assert state.prune_finished_runs(client, 3600) == []
    assert keys_of(client) == before


# -- the settings ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("30m", 1800), ("12h", 43_200), ("7d", 604_800), ("1.5h", 5400),
     ("2w", 1_209_600), (" 7D ", 604_800), ("0", 0), ("0s", 0)],
)  # fmt: skip
def test_durations_are_a_number_and_a_unit(text: str, seconds: float) -> None:
    assert api.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["7", "7x", "", "d", "-3d", "7 days", "1h30m", "soon"])
def test_other_durations_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(LightflowError, match="is not a duration: write a number and a unit"):
        api.parse_duration(text)


def test_finished_runs_are_kept_seven_days_by_default() -> None:
    assert api.finished_run_retention(Config.from_dict({})) == 7 * DAY
    assert "keep_finished_runs: 7d" in Config.defaults_yaml()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("12h", 43_200.0), (3600, 3600.0), (0, None), ("0", None), (None, None), (False, None)],
)
def test_keep_finished_runs_values(value: Any, seconds: float | None) -> None:
    config = Config.from_dict({"signal": {"keep_finished_runs": value}})
    assert api.finished_run_retention(config) == seconds


@pytest.mark.parametrize("value", ["a week", -60, True, [1]])
def test_an_invalid_keep_finished_runs_is_a_config_error(value: Any) -> None:
    config = Config.from_dict({"signal": {"keep_finished_runs": value}})
    with pytest.raises(ConfigError, match=r"signal\.keep_finished_runs"):
        api.finished_run_retention(config)


# -- the api --------------------------------------------------------------------------------
def cluster_config(redis_server: ServerProcess, **signal: Any) -> Config:
    url = f"redis://{redis_server.address}/{DATABASE}"
    return Config.from_dict({"celery": {"broker_url": url}, "signal": {"url": url, **signal}})


def test_prune_runs_goes_by_the_configured_retention(
    client: redis.Redis, redis_server: ServerProcess
) -> None:
    old, _ = plant_run(client, "succeeded", created_ago=3 * 3600, ended_ago=2 * 3600)
    recent_id, recent = plant_run(client, "succeeded", created_ago=3 * 3600, ended_ago=1800)
    config = cluster_config(redis_server, keep_finished_runs="1h")
    assert api.prune_runs(config=config, dry_run=True) == [old]
    assert api.prune_runs(config=config) == [old]
    assert keys_of(client) == recent
    assert api.prune_runs(config=config, older_than=60) == [recent_id]
    assert keys_of(client) == set() and listed_runs(client) == set()


def test_prune_runs_without_an_age_when_retention_is_off_says_how_to_give_one(
    client: redis.Redis, redis_server: ServerProcess
) -> None:
    plant_run(client, "succeeded", created_ago=3 * DAY, ended_ago=2 * DAY)
    before = keys_of(client)
    config = cluster_config(redis_server, keep_finished_runs=0)
    with pytest.raises(LightflowError, match=r"is off .* --older-than 30d"):
        api.prune_runs(config=config)
    assert keys_of(client) == before


def test_prune_runs_reports_an_unreachable_state_server_in_one_line() -> None:
    url = f"redis://127.0.0.1:{dead_port()}/0"
    config = Config.from_dict({"celery": {"broker_url": url}, "signal": {"url": url}})
    with pytest.raises(LightflowError, match="cannot reach the Redis state server"):
        api.prune_runs(config=config, older_than=60)


# -- the command ----------------------------------------------------------------------------
@pytest.fixture
def site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: ServerProcess
) -> Iterator[Path]:
    """A working folder whose lightflow.cfg points broker and state at the database."""
    for name in list(os.environ):
        if name.startswith("LIGHTFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    url = f"redis://{redis_server.address}/{DATABASE}"
    write_config(tmp_path, {"celery": {"broker_url": url}, "signal": {"url": url}})
    yield tmp_path


def write_config(folder: Path, data: dict[str, Any]) -> None:
    (folder / "lightflow.cfg").write_text(yaml.safe_dump(data))


def set_retention(site: Path, value: Any) -> None:
    data = yaml.safe_load((site / "lightflow.cfg").read_text())
    data["signal"]["keep_finished_runs"] = value
    write_config(site, data)


def test_workflow_prune_older_than_prints_the_pruned_runs(site: Path, client: redis.Redis) -> None:
    old, _ = plant_run(client, "failed", created_ago=60, ended_ago=10)
    _, just_ended = plant_run(client, "succeeded", created_ago=60, ended_ago=0)
    _, running = plant_run(client, "running", created_ago=60)
    result = invoke("workflow", "prune", "--older-than", "1s")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{old}\n"
    assert result.stderr == "Pruned 1 run that finished more than 1s ago.\n"
    assert keys_of(client) == just_ended | running


def test_workflow_prune_dry_run_deletes_nothing(site: Path, client: redis.Redis) -> None:
    first, _ = plant_run(client, "succeeded", created_ago=3 * 3600, ended_ago=3 * 3600)
    second, _ = plant_run(client, "aborted", created_ago=3 * 3600, ended_ago=2 * 3600)
    before = keys_of(client)
    result = invoke("workflow", "prune", "--older-than", "90m", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{first}\n{second}\n"
    assert result.stderr == "Would prune 2 runs that finished more than 90m ago.\n"
    assert keys_of(client) == before


def test_workflow_prune_defaults_to_the_configured_retention(
    site: Path, client: redis.Redis
) -> None:
    set_retention(site, "1m")
    old, _ = plant_run(client, "stopped", created_ago=300, ended_ago=120)
    _, recent = plant_run(client, "stopped", created_ago=300, ended_ago=30)
    result = invoke("workflow", "prune")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{old}\n"
    assert keys_of(client) == recent


def test_workflow_prune_with_nothing_to_prune_says_so_and_exits_zero(
    site: Path, client: redis.Redis
) -> None:
    _, running = plant_run(client, "running", created_ago=30 * DAY)
    result = invoke("workflow", "prune")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr == "No runs finished more than 7d ago: nothing to prune.\n"
    assert keys_of(client) == running


@pytest.mark.parametrize("duration", ["7x", "7", "-3d", "a week"])
def test_workflow_prune_refuses_a_bad_duration_in_one_line(
    site: Path, client: redis.Redis, duration: str
) -> None:
    plant_run(client, "succeeded", created_ago=3 * DAY, ended_ago=2 * DAY)
    before = keys_of(client)
    line = assert_one_error_line(invoke("workflow", "prune", "--older-than", duration), 1)
    assert line == (
        f"Error: --older-than: '{duration}' is not a duration: write a number and a unit "
        "(s, m, h, d or w), e.g. 90s, 30m, 12h or 7d"
    )
    assert keys_of(client) == before


def test_workflow_prune_with_retention_off_asks_for_an_age(site: Path, client: redis.Redis) -> None:
    set_retention(site, None)
    line = assert_one_error_line(invoke("workflow", "prune"), 1)
    assert "signal.keep_finished_runs is off" in line and "--older-than" in line


def test_workflow_prune_names_an_invalid_configured_retention(
    site: Path, client: redis.Redis
) -> None:
    set_retention(site, "forever")
    line = assert_one_error_line(invoke("workflow", "prune"), 1)
    assert line.startswith("Error: signal.keep_finished_runs: 'forever' is not a duration")
