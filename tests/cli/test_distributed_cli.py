"""The distributed-engine commands (``worker``, ``workflow start/stop/status/logs``,
``monitor``) through CliRunner, with no server running.

What needs no server is tested here: the broker requirement, input checked before
anything is queued, unreachable servers reported in one line, and the rendering of
what :mod:`lightflow.api` returns (replaced by fakes). Runs on real Redis, MongoDB and
workers are the end-to-end suite's (``tests/distributed``).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from lightflow import api
from lightflow.api import events as api_events
from lightflow.events import EventKind, RunEvent

from .test_cli import assert_one_error_line, invoke

RUN_ID = "3f2a9c1b4e5d4c6b8a7f0e1d2c3b4a59"
OTHER_ID = "77aa00bb11cc22dd33ee44ff55aa66bb"

PARAMETER_WORKFLOW = '''\
"""Takes an exposure time and a sample name."""
from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([
    Option("exposure", type=float),
    Option("sample", default="Fe2O3"),
])


def noop(data, store, signal, context):
    pass


main = Dag("main")
main.define({PythonTask("expose", noop): None})
'''


def dead_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder whose lightflow.cfg points broker, state and store at dead ports."""
    for name in list(os.environ):
        if name.startswith("LIGHTFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    port = dead_port()
    (work / "lightflow.cfg").write_text(
        f"celery:\n  broker_url: redis://127.0.0.1:{port}/0\n"
        f"signal:\n  host: 127.0.0.1\n  port: {port}\n"
        f"store:\n  host: 127.0.0.1\n  port: {dead_port()}\n"
    )
    (work / "exposure.py").write_text(PARAMETER_WORKFLOW)
    return work


@pytest.fixture
def no_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no config file: the defaults, which have no broker."""
    for name in list(os.environ):
        if name.startswith("LIGHTFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exposure.py").write_text(PARAMETER_WORKFLOW)
    return tmp_path


def state_port(site: Path) -> int:
    match = re.search(r"port: (\d+)", (site / "lightflow.cfg").read_text())
    assert match
    return int(match.group(1))


# -- no broker -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["worker", "start"],
        ["worker", "start", "-q", "gpu", "--concurrency", "2"],
        ["worker", "stop", "--yes"],
        ["worker", "status"],
        ["workflow", "start", "exposure.py", "exposure=0.5"],
        ["workflow", "stop"],
        ["workflow", "status"],
        ["workflow", "logs", RUN_ID],
        ["monitor"],
    ],
)
def test_distributed_commands_without_a_broker_say_how_to_set_one(
    no_broker: Path, args: list[str]
) -> None:
    line = assert_one_error_line(invoke(*args), 1)
    assert line.startswith("Error: no broker configured: set celery.broker_url in lightflow.cfg")
    assert "LIGHTFLOW_CELERY__BROKER_URL" in line


def test_without_a_broker_the_file_given_is_the_one_named(no_broker: Path) -> None:
    (no_broker / "beamline.cfg").write_text("workflows: []\n")
    line = assert_one_error_line(invoke("-c", "beamline.cfg", "workflow", "status"), 1)
    assert f"set celery.broker_url in {no_broker / 'beamline.cfg'} or" in line


def test_a_broker_from_the_environment_is_enough(no_broker: Path) -> None:
    # A Redis broker alone also serves as the state server (no 'signal' settings).
    port = dead_port()
    env = {"LIGHTFLOW_CELERY__BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    line = assert_one_error_line(invoke("workflow", "status", env=env), 1)
    assert (
        "no broker configured" not in line
        and f"cannot reach the Redis state server at redis://127.0.0.1:{port}/0" in line
    )


# -- input is checked before anything is queued ---------------------------------------
BROKEN_SYNTAX = '"""Broken."""\nfrom lightflow.models import Dag\nmain = Dag("main"\n'


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["nothere.py"], r"workflow file not found: nothere\.py"),
        (["broken.py"], r"broken\.py:3: syntax error"),
        (["exposure.py"], r"missing required parameter 'exposure'"),
        (["exposure.py", "exposure=1", "gain=2"], r"unknown parameter 'gain'"),
        (["exposure.py", "exposure=long"], r"parameter 'exposure' expects float, got 'long'"),
        (["exposure.py", "exposure"], r"malformed argument 'exposure'"),
        (["exposure.py", "=1"], r"malformed argument '=1'"),
    ],
)
def test_workflow_start_rejects_bad_input_before_connecting(
    site: Path, args: list[str], expected: str
) -> None:
    """The broker and state server are dead ports: a connection attempt would fail with
    'cannot reach', so seeing the input error proves nothing was sent anywhere."""
    (site / "broken.py").write_text(BROKEN_SYNTAX)
    result = invoke("workflow", "start", *args)
    line = assert_one_error_line(result, 1)
    assert re.search(expected, line), line
    assert "cannot reach" not in result.stderr
    assert result.stdout == ""  # no run id


def test_workflow_start_with_good_input_does_try_the_dead_server(site: Path) -> None:
    """The control for the test above: valid input does reach for the server."""
    result = invoke("workflow", "start", "exposure.py", "exposure=0.5", "--wait")
    line = assert_one_error_line(result, 1)
    assert f"cannot reach the Redis state server at redis://127.0.0.1:{state_port(site)}/0" in line
    assert result.stdout == ""


# -- unreachable servers ---------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["workflow", "status"],
        ["workflow", "status", "-d", RUN_ID],
        ["workflow", "logs", RUN_ID],
        ["workflow", "stop", "--yes"],
        ["workflow", "stop", RUN_ID],
        ["monitor"],
        ["monitor", RUN_ID],
    ],
)
def test_an_unreachable_state_server_is_one_line_naming_it(site: Path, args: list[str]) -> None:
    start = time.monotonic()
    line = assert_one_error_line(invoke(*args), 1)
    assert time.monotonic() - start < 5
    assert f"cannot reach the Redis state server at redis://127.0.0.1:{state_port(site)}/0" in line


def test_a_password_in_the_state_server_url_is_not_shown(site: Path) -> None:
    port = state_port(site)
    env = {"LIGHTFLOW_SIGNAL__URL": f"redis://:hunter2@127.0.0.1:{port}/0"}
    result = invoke("workflow", "status", env=env)
    line = assert_one_error_line(result, 1)
    assert "hunter2" not in result.stderr and f"127.0.0.1:{port}" in line


@pytest.mark.parametrize("args", [["worker", "status"], ["worker", "stop", "w1@host"]])
def test_an_unreachable_broker_is_one_line_naming_it(site: Path, args: list[str]) -> None:
    start = time.monotonic()
    line = assert_one_error_line(invoke(*args), 1)
    assert time.monotonic() - start < 20  # Celery retries the connection a few times
    assert f"cannot reach the broker at redis://127.0.0.1:{state_port(site)}/0" in line


# -- worker ------------------------------------------------------------------------------
def test_worker_start_passes_queues_name_and_celery_arguments(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightflow.queue import worker

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(worker, "start_worker", lambda config, **kw: calls.append(kw))
    args = ["-q", "task, gpu", "-n", "gpu1@%h", "--concurrency", "4", "-O", "fair"]
    assert invoke("worker", "start", *args).exit_code == 0
    assert calls == [{"queues": ["task", "gpu"], "name": "gpu1@%h",
                      "celery_args": ["--concurrency", "4", "-O", "fair"],
                      "wait_for_broker": False}]  # fmt: skip
    calls.clear()
    assert invoke("worker", "start").exit_code == 0
    assert calls[0]["queues"] == ["workflow", "dag", "task"] and calls[0]["name"] is None


def test_worker_start_needs_a_queue(site: Path) -> None:
    assert_one_error_line(invoke("worker", "start", "-q", " , "), 2)


WORKERS = [
    {"name": "cpu1@beamline", "pid": 4242, "queues": ["workflow", "dag", "task"],
     "concurrency": 8, "running": [{"job": "lightflow.task", "args": [RUN_ID, "main", "fit"]},
                                   {"job": "lightflow.workflow", "args": [OTHER_ID]}]},
    {"name": "gpu1@beamline", "pid": 77, "queues": ["gpu"], "concurrency": 1, "running": []},
]  # fmt: skip


def test_worker_status_is_a_table_and_details_list_the_jobs(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightflow.queue import worker

    monkeypatch.setattr(worker, "worker_status", lambda config, timeout=2.0: WORKERS)
    result = invoke("worker", "status")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"NAME\s+PID\s+QUEUES\s+CONCURRENCY\s+RUNNING\s+STATE", lines[0])
    assert re.fullmatch(r"cpu1@beamline\s+4242\s+workflow,dag,task\s+8\s+2\s+running", lines[1])
    assert re.fullmatch(r"gpu1@beamline\s+77\s+gpu\s+1\s+0\s+running", lines[2])
    assert len(lines) == 3

    details = invoke("worker", "status", "-d").stdout
    assert "cpu1@beamline: 2 running jobs" in details
    assert re.search(r"^  task\s+3f2a9c1b  main/fit$", details, re.M)
    assert re.search(r"^  workflow\s+77aa00bb$", details, re.M)
    assert "gpu1@beamline: no running jobs" in details

    only_gpu = invoke("worker", "status", "-f", "gpu").stdout.splitlines()
    assert len(only_gpu) == 2 and only_gpu[1].startswith("gpu1@beamline")
    none = invoke("worker", "status", "-f", "nosuch,other")
    assert none.exit_code == 0 and none.stdout == "No worker consumes nosuch, other.\n"


def test_worker_status_without_workers(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightflow.queue import worker

    monkeypatch.setattr(worker, "worker_status", lambda config, timeout=2.0: [])
    result = invoke("worker", "status")
    assert result.exit_code == 0 and result.stdout == "No workers are running.\n"


def test_worker_stop_prints_who_answered(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightflow.queue import worker

    asked: list[list[str]] = []

    def stop(config: Any, names: list[str]) -> list[str]:
        asked.append(names)
        return [n for n in names if n.startswith("cpu")]

    monkeypatch.setattr(worker, "stop_workers", stop)
    result = invoke("worker", "stop", "cpu1@beamline", "gone@beamline")
    assert result.exit_code == 0 and result.stdout == "cpu1@beamline\n"
    assert asked == [["cpu1@beamline", "gone@beamline"]]
    nobody = invoke("worker", "stop", "gone@beamline")
    assert nobody.exit_code == 0 and nobody.stdout == ""
    assert "nothing was stopped" in nobody.stderr


# -- workflow start --------------------------------------------------------------------
def fake_start(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []

    def start(name: str, arguments: dict[str, str], *, config: Any, queue: str,
              keep_data: bool) -> str:  # fmt: skip
        calls.append((name, arguments, queue, keep_data))
        return RUN_ID

    monkeypatch.setattr(api, "start_workflow", start)
    return calls


def test_workflow_start_prints_only_the_run_id(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_start(monkeypatch)
    result = invoke(
        "workflow", "start", "exposure", "exposure=0.5", "sample=Cu", "-q", "fast", "-k"
    )
    assert result.exit_code == 0
    assert result.stdout == f"{RUN_ID}\n" and result.stderr == ""
    assert calls == [("exposure", {"exposure": "0.5", "sample": "Cu"}, "fast", True)]
    invoke("workflow", "start", "exposure")
    assert calls[-1] == ("exposure", {}, "workflow", False)


def event(kind: str, dag: str | None = None, task: str | None = None, **extra: Any) -> RunEvent:
    return RunEvent(EventKind(kind), RUN_ID, "exposure", time.time(), dag, task, **extra)


def fake_follow(
    monkeypatch: pytest.MonkeyPatch, events: list[RunEvent], record: dict[str, Any],
    then: Callable[[], None] | None = None,
) -> list[str | None]:  # fmt: skip
    followed: list[str | None] = []

    def follow(*, config: Any, run_id: str | None = None, on_event: Callable[[RunEvent], None],
               stop_when_finished: bool = True, **_: Any) -> dict[str, Any] | None:  # fmt: skip
        followed.append(run_id)
        for item in events:
            on_event(item)
        if then is not None:
            then()
        return record

    monkeypatch.setattr(api, "follow_events", follow)
    monkeypatch.setattr(api_events, "follow_events", follow)  # what api.wait_for_run calls
    return followed


def test_workflow_start_wait_shows_progress_and_succeeds(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_start(monkeypatch)
    events = [
        event("workflow_started"),
        event("task_started", "main", "expose"),
        event("task_succeeded", "main", "expose", duration=0.25),
        event("workflow_finished", outcome="succeeded", duration=0.3),
    ]
    record = {"id": RUN_ID, "workflow": "exposure", "state": "succeeded",
              "started": 100.0, "ended": 100.5}  # fmt: skip
    followed = fake_follow(monkeypatch, events, record)
    result = invoke("workflow", "start", "exposure", "exposure=1", "--wait")
    assert result.exit_code == 0, result.stderr
    assert followed == [RUN_ID]
    lines = result.stdout.splitlines()
    assert lines[0] == RUN_ID
    assert "  ▸ main/expose" in lines and "  ✓ main/expose  0.25s" in lines
    assert "Workflow exposure succeeded in 0.50s: 1 succeeded" in lines
    assert lines[-1] == f"Run id: {RUN_ID}"


def test_workflow_start_wait_fails_naming_the_task(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_start(monkeypatch)
    trace = 'Traceback (most recent call last):\n  File "x.py", line 3\nValueError: no beam\n'
    events = [
        event("task_failed", "main", "expose", duration=0.1, message="ValueError: no beam",
              traceback=trace),
        event("task_cancelled", "main", "save"),
        event("workflow_finished", outcome="failed"),
    ]  # fmt: skip
    record = {"id": RUN_ID, "workflow": "exposure", "state": "failed", "started": 1.0,
              "ended": 2.0, "error": "ValueError: no beam", "failed_dag": "main",
              "failed_task": "expose"}  # fmt: skip
    fake_follow(monkeypatch, events, record)
    result = invoke("workflow", "start", "exposure", "exposure=1", "-w")
    line = assert_one_error_line(result, 1, traceback=True)
    assert line == "Error: task main/expose failed: ValueError: no beam"
    assert "ValueError: no beam" in result.stderr.split(line, 1)[1]
    assert "Workflow exposure failed in 1.00s: 1 failed, 1 cancelled" in result.stdout


@pytest.mark.parametrize(("state", "reason"), [("stopped", "stop requested"),
                                               ("aborted", "sample missing")])  # fmt: skip
def test_workflow_start_wait_exits_1_unless_the_run_succeeded(
    site: Path, monkeypatch: pytest.MonkeyPatch, state: str, reason: str
) -> None:
    fake_start(monkeypatch)
    record = {"id": RUN_ID, "workflow": "exposure", "state": state,
              "error": "sample missing" if state == "aborted" else ""}  # fmt: skip
    fake_follow(monkeypatch, [event("workflow_finished", outcome=state)], record)
    line = assert_one_error_line(invoke("workflow", "start", "exposure", "exposure=1", "-w"), 1)
    assert line == f"Error: workflow exposure {state}: {reason}"


def test_ctrl_c_while_waiting_leaves_the_run_going(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_start(monkeypatch)

    def interrupt() -> None:
        raise KeyboardInterrupt

    fake_follow(monkeypatch, [event("task_started", "main", "expose")], {}, then=interrupt)
    result = invoke("workflow", "start", "exposure", "exposure=1", "-w")
    assert result.exit_code == 130
    assert f"lightflow workflow stop {RUN_ID}" in result.stderr
    assert "Error" not in result.stderr and "Traceback" not in result.stderr


# -- workflow stop ---------------------------------------------------------------------
def test_workflow_stop_prints_the_stopped_ids(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[list[str], float | None, bool]] = []

    def stop(targets: list[str], *, config: Any, grace: float | None, force: bool) -> list[str]:
        asked.append((targets, grace, force))
        return [RUN_ID, OTHER_ID] if targets else [RUN_ID]

    monkeypatch.setattr(api, "stop_workflows", stop)
    result = invoke("workflow", "stop", "exposure", OTHER_ID)
    assert result.exit_code == 0 and result.stdout == f"{RUN_ID}\n{OTHER_ID}\n"
    assert asked == [(["exposure", OTHER_ID], None, False)]
    everything = invoke("workflow", "stop")  # stdin is no terminal: no question
    assert everything.exit_code == 0 and everything.stdout == f"{RUN_ID}\n"
    assert asked[-1] == ([], None, False)
    assert invoke("workflow", "stop", "--grace", "2.5", "exposure").exit_code == 0
    assert invoke("workflow", "stop", "--force", "exposure").exit_code == 0
    assert asked[-2:] == [(["exposure"], 2.5, False), (["exposure"], None, True)]


def test_workflow_stop_takes_a_grace_or_force_not_both(site: Path) -> None:
    both = invoke("workflow", "stop", "--force", "--grace", "3", "exposure")
    assert both.exit_code == 2 and "give --force or --grace, not both" in both.stderr
    negative = invoke("workflow", "stop", "--grace", "-1", "exposure")
    assert negative.exit_code == 2 and "'--grace'" in negative.stderr


def test_workflow_stop_with_nothing_to_stop(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "stop_workflows", lambda targets, **_: [])
    result = invoke("workflow", "stop", "exposure")
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == "No queued or running runs of exposure: nothing to stop.\n"


# -- workflow status and logs ---------------------------------------------------------------
RECORDS = [
    {"id": RUN_ID, "workflow": "exposure", "state": "failed", "created": 1_700_000_000.0,
     "started": 1_700_000_000.0, "ended": 1_700_000_002.5, "arguments": {"exposure": "0.5"},
     "error": "ValueError: no beam", "failed_task": "expose", "failed_dag": "main",
     "queue": "workflow", "keep_data": False},
    {"id": OTHER_ID, "workflow": "scan", "state": "queued", "created": 1_699_999_999.0,
     "arguments": {}, "queue": "workflow", "keep_data": True},
]  # fmt: skip


def test_workflow_status_lists_the_runs_newest_first(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits: list[int | None] = []

    def list_runs(*, config: Any, limit: int | None = None) -> list[dict[str, Any]]:
        limits.append(limit)
        return RECORDS[: limit or None]

    monkeypatch.setattr(api, "list_runs", list_runs)
    result = invoke("workflow", "status", env={"LIGHTFLOW_CLI__TIME_FORMAT": "%Y"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"ID\s+WORKFLOW\s+STATE\s+STARTED\s+DURATION", lines[0])
    assert re.fullmatch(r"3f2a9c1b\s+exposure\s+failed\s+2023\s+2\.50s", lines[1])
    assert re.fullmatch(r"77aa00bb\s+scan\s+queued\s+-\s+-", lines[2])
    assert limits == [50]
    one = invoke("workflow", "status", "-n", "1")
    assert len(one.stdout.splitlines()) == 2 and "--limit 0" in one.stderr
    invoke("workflow", "status", "--limit", "0")
    assert limits[-1] is None


def test_workflow_status_without_runs(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "list_runs", lambda *, config, limit=None: [])
    result = invoke("workflow", "status")
    assert result.exit_code == 0 and result.stdout == "No workflow runs recorded.\n"


def status_record() -> dict[str, Any]:
    record = dict(RECORDS[0])
    record["dags"] = {
        "main": {"state": "failed", "duration": 2.0, "tasks": {
            "prepare": {"state": "succeeded", "duration": 1.25, "worker": "cpu1@beamline"},
            "expose": {"state": "failed", "duration": 0.5, "worker": "cpu1@beamline",
                       "message": "ValueError: no beam"},
            "save": {"state": "cancelled"},
        }},
    }  # fmt: skip
    return record


def test_workflow_status_of_one_run(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def run_status(run_id: str, *, config: Any) -> dict[str, Any]:
        asked.append(run_id)
        return status_record()

    monkeypatch.setattr(api, "run_status", run_status)
    monkeypatch.setattr(api, "run_logs", lambda run_id, *, config: ["12:00:01 INFO main/x: hi"])
    result = invoke("workflow", "status", "3f2a")
    assert result.exit_code == 0 and asked == ["3f2a"]
    out = result.stdout
    assert re.search(rf"^Run\s+{RUN_ID}$", out, re.M)
    assert re.search(r"^State\s+failed$", out, re.M)
    assert re.search(r"^Arguments\s+exposure=0\.5$", out, re.M)
    assert re.search(r"^Duration\s+2\.50s$", out, re.M)
    assert re.search(r"^Failed task\s+main/expose$", out, re.M)
    assert re.search(r"^DAG main  failed  2\.00s$", out, re.M)
    assert re.search(r"^  prepare\s+succeeded\s+1\.25s\s+cpu1@beamline$", out, re.M)
    assert re.search(r"^  expose\s+failed\s+0\.50s\s+cpu1@beamline$", out, re.M)
    assert re.search(r"^  save\s+cancelled$", out, re.M)
    assert "no beam" not in out and "hi" not in out  # errors and logs with -d only

    detailed = invoke("workflow", "status", "-d", "3f2a").stdout
    assert re.search(r"^Error\s+ValueError: no beam$", detailed, re.M)
    assert re.search(r"^  expose\s+failed\s+0\.50s\s+cpu1@beamline\s+ValueError: no beam$",
                     detailed, re.M)  # fmt: skip
    assert detailed.endswith("\nLog:\n  12:00:01 INFO main/x: hi\n")


def test_workflow_logs(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["12:00:01 INFO main/prepare: ready", "12:00:02 WARNING main/expose: no beam"]
    monkeypatch.setattr(api, "run_logs", lambda run_id, *, config: lines)
    result = invoke("workflow", "logs", RUN_ID)
    assert result.exit_code == 0 and result.stdout == "\n".join(lines) + "\n"
    monkeypatch.setattr(api, "run_logs", lambda run_id, *, config: [])
    empty = invoke("workflow", "logs", RUN_ID)
    assert empty.exit_code == 0 and empty.stdout == "" and "no log lines" in empty.stderr


def test_an_unknown_run_id_is_one_line(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lightflow.exceptions import LightflowError

    def unknown(run_id: str, *, config: Any) -> Any:
        raise LightflowError(f"no workflow run with id '{run_id}'")

    monkeypatch.setattr(api, "run_status", unknown)
    monkeypatch.setattr(api, "run_logs", unknown)
    for args in (["workflow", "status", "nope"], ["workflow", "logs", "nope"]):
        assert "no workflow run with id 'nope'" in assert_one_error_line(invoke(*args), 1)


# -- monitor ---------------------------------------------------------------------------
def test_monitor_prints_one_line_per_event_and_ctrl_c_ends_it_quietly(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    events = [
        event("workflow_started"),
        event("dag_started", "main"),
        event("task_started", "main", "expose"),
        event("task_failed", "main", "expose", duration=0.5, message="ValueError: no beam",
              worker="cpu1@beamline"),
        event("dag_finished", "main", outcome="failed", duration=0.75),
        event("workflow_finished", outcome="failed", duration=1.0),
    ]  # fmt: skip
    followed = fake_follow(monkeypatch, events, {}, then=interrupt)
    monkeypatch.setattr(api, "check_state_server", lambda config: None)
    monkeypatch.setattr(api, "run_status", lambda run_id, *, config: {"id": RUN_ID})
    result: Result = invoke("monitor")
    assert result.exit_code == 0
    assert followed == [None]
    lines = result.stdout.splitlines()
    clock = r"\d\d:\d\d:\d\d"
    assert re.fullmatch(rf"{clock}  3f2a9c1b  exposure\s+workflow started", lines[0])
    assert re.fullmatch(rf"{clock}  3f2a9c1b  main\s+dag started", lines[1])
    assert re.fullmatch(rf"{clock}  3f2a9c1b  main/expose\s+task started", lines[2])
    assert re.fullmatch(
        rf"{clock}  3f2a9c1b  main/expose\s+task failed\s+0\.50s  ValueError: no beam", lines[3]
    )
    assert re.fullmatch(rf"{clock}  3f2a9c1b  main\s+dag failed\s+0\.75s", lines[4])
    assert re.fullmatch(rf"{clock}  3f2a9c1b  exposure\s+workflow failed\s+1\.00s", lines[5])
    assert "Traceback" not in result.stderr and "Error" not in result.stderr

    detailed = invoke("monitor", "-d", "3f2a").stdout.splitlines()
    assert followed[-1] == RUN_ID  # the prefix resolved first
    assert RUN_ID in detailed[3] and "cpu1@beamline" in detailed[3]


def test_a_broker_other_than_redis_needs_a_state_server(tmp_path: Path) -> None:
    from lightflow.config import Config
    from lightflow.exceptions import ConfigError
    from lightflow.queue.driver import state_url

    config = Config.from_dict({"celery": {"broker_url": "amqp://guest:guest@mq:5672//"}})
    with pytest.raises(ConfigError, match=r"signal\.url"):
        state_url(config)


def test_a_1x_signal_password_is_escaped_in_the_state_url() -> None:
    from urllib.parse import urlsplit

    from lightflow.config import Config
    from lightflow.queue.driver import state_url

    config = Config.from_dict(
        {"signal": {"host": "redis1", "port": 6380, "password": "p@ss/w", "database": 2}}
    )
    url = urlsplit(state_url(config))
    assert (url.hostname, url.port, url.path) == ("redis1", 6380, "/2")
    assert url.password == "p%40ss%2Fw"


def test_an_unknown_store_setting_fails_workflow_start_before_queueing(
    tmp_path: Path,
) -> None:
    from lightflow import api
    from lightflow.config import Config
    from lightflow.exceptions import ConfigError

    port = dead_port()
    config = Config.from_dict(
        {
            "celery": {"broker_url": f"redis://127.0.0.1:{port}/0"},
            "store": {"hostname": "db1"},
        }
    )
    with pytest.raises(ConfigError, match="unknown store setting 'hostname'"):
        api.start_workflow(
            str(Path(__file__).parents[2] / "examples" / "sequence.py"), {}, config=config
        )


# -- tracebacks in status --------------------------------------------------------------
def test_workflow_status_details_show_each_failed_tasks_traceback(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = status_record()
    trace = ('Traceback (most recent call last):\n  File "/beam/scan.py", line 9, in expose\n'
             "    raise ValueError('no beam')\nValueError: no beam\n")  # fmt: skip
    record["dags"]["main"]["tasks"]["expose"]["traceback"] = trace
    monkeypatch.setattr(api, "run_status", lambda run_id, *, config: record)
    monkeypatch.setattr(api, "run_logs", lambda run_id, *, config: [])
    plain = invoke("workflow", "status", RUN_ID).stdout
    assert "Traceback" not in plain and "scan.py" not in plain
    detailed = invoke("workflow", "status", "-d", RUN_ID).stdout
    assert (
        "\nTask main/expose failed: ValueError: no beam\n"
        "  Traceback (most recent call last):\n"
        '    File "/beam/scan.py", line 9, in expose\n'
        "      raise ValueError('no beam')\n"
        "  ValueError: no beam\n"
        "\nLog: (no lines)\n"
    ) in detailed


# -- queue names, waiting on a queue ---------------------------------------------------
@pytest.mark.parametrize("queue", ["", "   "])
def test_workflow_start_rejects_an_empty_queue_before_connecting(site: Path, queue: str) -> None:
    """The servers are dead ports: the queue error proves nothing was sent anywhere."""
    for extra in ([], ["--wait"]):
        result = invoke("workflow", "start", "exposure.py", "exposure=0.5", "-q", queue, *extra)
        line = assert_one_error_line(result, 1)
        assert "queue name must not be empty or blank" in line
        assert "cannot reach" not in result.stderr and result.stdout == ""


def fake_wait_on_queued_run(
    monkeypatch: pytest.MonkeyPatch, workers: list[dict[str, Any]]
) -> list[str]:
    """A run that stays queued while --wait follows it; returns the queues asked about."""
    import threading

    from lightflow.cli import workflow_cmd
    from lightflow.queue import worker

    monkeypatch.setattr(workflow_cmd, "QUEUED_NOTE_AFTER", 0.05)
    fake_start(monkeypatch)
    pinged: list[str] = []
    checked = threading.Event()

    def status(config: Any, timeout: float = 2.0) -> list[dict[str, Any]]:
        pinged.append("ping")
        checked.set()
        return workers

    def queued_work(run_id: str, *, config: Any, leave_out: Any = ()) -> list[dict[str, Any]]:
        work = [{"queue": "fast", "dag": None, "task": None}]  # the run's workflow job
        return [piece for piece in work if piece["queue"] not in leave_out]

    def follow(*, config: Any, on_event: Any, **_: Any) -> dict[str, Any]:
        checked.wait(5)
        time.sleep(0.3)  # time enough for a note, and for a second one if there were
        return {"id": RUN_ID, "workflow": "exposure", "state": "stopped"}

    monkeypatch.setattr(worker, "worker_status", status)
    monkeypatch.setattr(api, "queued_work", queued_work)
    monkeypatch.setattr(api_events, "follow_events", follow)
    return pinged


def test_waiting_on_a_queue_no_worker_consumes_prints_one_note(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    others = [{"name": "gpu1@beamline", "queues": ["gpu"], "state": "running"},
              {"name": "old@beamline", "queues": ["fast"], "state": "stopping"}]  # fmt: skip
    pinged = fake_wait_on_queued_run(monkeypatch, others)
    result = invoke("workflow", "start", "exposure", "exposure=1", "-q", "fast", "--wait")
    assert pinged == ["ping"]
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note:")]
    assert notes == [
        "Note: run 3f2a9c1b is still queued on queue 'fast' and no live worker consumes it; "
        "start one with `lightflow worker start -q fast` (still waiting)."
    ]


def test_waiting_on_a_queue_a_worker_consumes_prints_no_note(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = [{"name": "cpu1@beamline", "queues": ["fast", "dag", "task"]}]
    pinged = fake_wait_on_queued_run(monkeypatch, busy)
    result = invoke("workflow", "start", "exposure", "exposure=1", "-q", "fast", "--wait")
    assert pinged == ["ping"] and "Note:" not in result.stderr


def test_workflow_start_without_wait_asks_no_worker(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinged = fake_wait_on_queued_run(monkeypatch, [])
    result = invoke("workflow", "start", "exposure", "exposure=1")
    time.sleep(0.3)
    assert result.exit_code == 0 and result.stdout == f"{RUN_ID}\n" and pinged == []


def test_monitor_of_an_unknown_run_is_the_error_alone(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightflow.exceptions import LightflowError

    def unknown(run_id: str, *, config: Any) -> Any:
        raise LightflowError(f"no workflow run with id '{run_id}'")

    monkeypatch.setattr(api, "run_status", unknown)
    followed = fake_follow(monkeypatch, [], {})
    result = invoke("monitor", "zzzz")
    line = assert_one_error_line(result, 1)
    assert result.stderr == f"{line}\n" and "no workflow run with id 'zzzz'" in line
    assert result.stdout == "" and followed == []


@pytest.mark.parametrize("args", [["monitor"], ["monitor", RUN_ID]])
def test_monitor_against_an_unreachable_state_server_is_the_error_alone(
    site: Path, args: list[str]
) -> None:
    result = invoke(*args)
    line = assert_one_error_line(result, 1)
    assert result.stderr == f"{line}\n"
    assert "cannot reach the Redis state server" in line


def test_monitor_header_names_the_full_run_id_of_a_prefix(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "run_status", lambda run_id, *, config: {"id": RUN_ID})
    followed = fake_follow(monkeypatch, [event("workflow_finished", outcome="succeeded")], {})
    result = invoke("monitor", "3f2a")
    assert result.exit_code == 0
    assert result.stderr == f"Events of run {RUN_ID} (Ctrl-C to end):\n"
    assert followed == [RUN_ID]


FOLLOW_FOREVER_DRIVER = f"""\
import sys, time
from pathlib import Path
from lightflow import api
from lightflow.api import events
from lightflow.cli.main import main

def start(name, arguments, *, config, queue, keep_data):
    return {RUN_ID!r}

def follow(*, config, run_id=None, on_event, stop_when_finished=True, **_):
    Path("following").touch()
    time.sleep(60)

api.start_workflow = start
events.follow_events = follow
main(sys.argv[1:])
"""


def test_sigterm_while_waiting_leaves_the_run_going(site: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from . import clean_environment

    (site / "driver.py").write_text(FOLLOW_FOREVER_DRIVER)
    process = subprocess.Popen(
        [sys.executable, "driver.py", "workflow", "start", "exposure", "exposure=1", "-w"],
        cwd=site,
        env=clean_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (site / "following").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the driver never started following"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert stdout == f"{RUN_ID}\n"
    assert stderr.startswith("Stopped following run 3f2a9c1b; it goes on ")
    assert f"lightflow workflow stop {RUN_ID}" in stderr
    assert "Error" not in stderr and "Traceback" not in stderr


def test_waiting_handles_sigterm_only_while_it_follows(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    fake_start(monkeypatch)
    before = signal.getsignal(signal.SIGTERM)
    during: list[Any] = []
    record = {"id": RUN_ID, "workflow": "exposure", "state": "succeeded"}
    fake_follow(monkeypatch, [event("workflow_finished", outcome="succeeded")], record,
                then=lambda: during.append(signal.getsignal(signal.SIGTERM)))  # fmt: skip
    result = invoke("workflow", "start", "exposure", "exposure=1", "-w")
    assert result.exit_code == 0, result.stderr
    assert during and during[0] is not before
    assert signal.getsignal(signal.SIGTERM) is before
