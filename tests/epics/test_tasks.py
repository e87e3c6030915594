"""The PV tasks on both engines, against a real IOC.

PvTriggerTask (1.x) runs under ``lightflow run`` subprocesses (which a test can
interrupt) and on the suite's own cluster; PvGetTask and PvPutTask run in this
process on the embedded engine and on the cluster.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lightflow import api
from lightflow_epics import channel

from tests.cluster import Cluster

from .conftest import WORKFLOWS, Command, Ioc, caput, lightflow, wait_for

WATCH = str(WORKFLOWS / "watch_record.py")
READ = str(WORKFLOWS / "read_pvs.py")
PUBLISH = str(WORKFLOWS / "publish_result.py")


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for_records(
    path: Path, count: int, timeout: float = 30.0, log: Callable[[], str] = str
) -> list[dict]:
    """The records once there are ``count``; else fail with them and ``log()``."""
    if not wait_for(lambda: len(records(path)) >= count, timeout):
        pytest.fail(f"{len(records(path))} of {count} records: {records(path)}\n{log()[-3000:]}")
    return records(path)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- PvTriggerTask ---------------------------------------------------------------------------
def test_the_trigger_task_calls_back_in_order_with_the_monitor_keywords(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv, record = ioc.pv("LO"), tmp_path / "updates.jsonl"
    caput(pv, 0)
    run = command(
        "run", WATCH, f"pvname={pv}", f"record={record}", "count=21", "skip_initial=false"
    )
    wait_for_records(record, 1)  # the value read at connection: the watch is on
    for value in range(1, 21):
        caput(pv, value)
    assert run.process.wait(60) == 0, run.output()
    lines = records(record)
    assert [line["value"] for line in lines[:-1]] == list(range(0, 21))
    assert lines[-1] == {"after": 21}  # the data went on to the successor
    assert all(line["pvname"] == pv and line["severity"] == 0 for line in lines[:-1])
    assert {"char_value", "timestamp", "status", "host", "count", "type"} <= set(
        lines[0]["keywords"]
    )


def test_the_trigger_task_skips_the_value_read_at_connection(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv, record = ioc.pv("AO"), tmp_path / "updates.jsonl"
    caput(pv, 7.0)
    run = command("run", WATCH, f"pvname={pv}", f"record={record}", "count=1")
    value = 10.0
    while not records(record):  # keep the PV moving until the watch reports a change
        assert run.process.poll() is None, run.output()
        value += 1
        caput(pv, value)
        time.sleep(0.1)
    assert run.process.wait(60) == 0, run.output()
    assert records(record)[0]["value"] > 10.0  # never 7.0, the value at connection


def test_ctrl_c_ends_a_watching_run_at_once_and_an_idle_watch_costs_no_cpu(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv, record = ioc.pv("LO"), tmp_path / "updates.jsonl"
    run = command("run", WATCH, f"pvname={pv}", f"record={record}", "skip_initial=false")
    wait_for_records(record, 1)
    time.sleep(1.0)  # start-up is over
    before = cpu_seconds(run.process.pid)
    time.sleep(5.0)
    idle = cpu_seconds(run.process.pid) - before
    assert idle < 0.5, f"an idle watch used {idle:.2f} s of CPU in 5 s"  # 1.x: 5 s
    code, took = run.interrupt()
    assert code == 130, run.output()
    assert took < 3.0, f"Ctrl-C took {took:.2f} s"
    assert "stopped" in run.output()


def test_the_trigger_task_reports_a_pv_that_does_not_connect_once_or_fails(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv, record = ioc.pv("NOPE"), tmp_path / "updates.jsonl"
    run = command("run", WATCH, f"pvname={pv}", f"record={record}", "connection_timeout=0.5")
    run.wait_for_output(f"PV {pv} has not connected within 0.5 s; still waiting", timeout=30)
    time.sleep(1.5)
    assert run.output().count("has not connected") == 1
    assert "EPICS_CA_ADDR_LIST=127.0.0.1:" in run.output()
    assert run.interrupt()[0] == 130
    result = lightflow(
        "run", WATCH, f"pvname={pv}", f"record={record}", "connection_timeout=0.5",
        "on_timeout=fail",
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"Error: task watch_dag/watch failed: PvError: PV '{pv}' did not connect within 0.5 s "
        "(EPICS_CA_ADDR_LIST="
    )


def test_the_trigger_task_on_the_cluster_stops_with_workflow_stop(
    ioc: Ioc, tmp_path: Path, epics_cluster: Cluster
) -> None:
    pv, record = ioc.pv("LO"), tmp_path / "updates.jsonl"
    caput(pv, 100)
    run_id = api.start_workflow(
        WATCH,
        {"pvname": pv, "record": str(record), "skip_initial": "false"},
        config=epics_cluster.config,
    )
    worker_log = epics_cluster.workers[0].log
    wait_for_records(record, 1, timeout=60, log=worker_log)
    for value in range(101, 111):
        caput(pv, value)
    lines = wait_for_records(record, 11, log=worker_log)
    assert [line["value"] for line in lines] == list(range(100, 111))
    asked = time.monotonic()
    assert api.stop_workflows([run_id], config=epics_cluster.config) == [run_id]
    final = api.follow_events(
        config=epics_cluster.config, run_id=run_id, on_event=lambda event: None, timeout=60
    )
    assert time.monotonic() - asked < 5.0
    assert final is not None and final["state"] == "stopped", final


# -- PvGetTask / PvPutTask ------------------------------------------------------------------
def test_get_reads_pvs_of_both_protocols_into_the_data(ioc: Ioc, tmp_path: Path) -> None:
    record = tmp_path / "data.jsonl"
    caput(ioc.pv("WF"), [1.0, 2.0, 3.0, 4.0])
    pvs = f"{ioc.pv('AI')},pva://{ioc.pv('WF')}"
    result = api.run_workflow(READ, {"pvs": pvs, "record": str(record)})
    assert result.succeeded, result.error
    assert records(record) == [{ioc.pv("AI"): 2.0, f"pva://{ioc.pv('WF')}": [1.0, 2.0, 3.0, 4.0]}]
    result = api.run_workflow(READ, {"pvs": ioc.pv("AI"), "record": str(record), "metadata": "y"})
    assert result.succeeded, result.error
    got = records(record)[-1][ioc.pv("AI")]
    assert got["value"] == 2.0 and got["severity"] == 0 and got["status"] == 0
    assert abs(got["timestamp"] - time.time()) < 3600


def test_get_of_an_unknown_pv_fails_the_run_with_one_line_within_the_timeout(
    ioc: Ioc, tmp_path: Path
) -> None:
    start = time.monotonic()
    result = api.run_workflow(
        READ, {"pvs": ioc.pv("NOPE"), "record": str(tmp_path / "r"), "timeout": "1"}
    )
    assert time.monotonic() - start < 10
    assert not result.succeeded and result.failed_task == "read"
    assert f"PV '{ioc.pv('NOPE')}' did not connect within 1 s" in result.error
    assert "EPICS_CA_ADDR_LIST" in result.error


def test_put_publishes_a_computed_result_for_the_operators(ioc: Ioc) -> None:
    caput(ioc.pv("AO"), 1.5)
    result = api.run_workflow(PUBLISH, {"prefix": ioc.prefix})
    assert result.succeeded, result.error
    assert channel.read([ioc.pv("LO")], timeout=10)[ioc.pv("LO")]["value"] == 17  # 1.5*10+2


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"target": "RO"}, "is read-only for this client"),
        ({"target": "NOPE", "timeout": "1"}, "did not connect within 1 s"),
        ({"target": "SLOW", "timeout": "0.2"}, "did not report the write of 17 done within 0.2 s"),
    ],
)
def test_a_put_that_cannot_be_done_fails_the_task_with_one_line(
    ioc: Ioc, arguments: dict[str, str], message: str
) -> None:
    caput(ioc.pv("AO"), 1.5)
    start = time.monotonic()
    result = api.run_workflow(PUBLISH, {"prefix": ioc.prefix, **arguments})
    assert time.monotonic() - start < 10
    assert not result.succeeded and result.failed_task == "publish"
    assert message in result.error and "\n" not in result.error
    time.sleep(0.5)  # SLOW finishes its processing


def test_get_and_put_on_the_cluster(ioc: Ioc, epics_cluster: Cluster) -> None:
    caput(ioc.pv("AO"), 2.5)
    final, _ = epics_cluster.run(PUBLISH, {"prefix": ioc.prefix})
    assert final["state"] == "succeeded", final
    assert channel.read([ioc.pv("LO")], timeout=10)[ioc.pv("LO")]["value"] == 27
    final, _ = epics_cluster.run(PUBLISH, {"prefix": ioc.prefix, "target": "RO"})
    assert final["state"] == "failed"
    assert f"PV '{ioc.pv('RO')}' is read-only" in final["error"]
