"""``lightflow epics watch`` and ``pv`` triggers in lightflow.cfg, against a real IOC.

The watch runs as users run it (``python -m lightflow.cli`` subprocesses); its runs
append the parameters they got to a file, so a test sees which runs started, in which
order, with what. ``--no-skip-initial`` makes the value read at connection start a
first run: once it is recorded, the watch is on.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from lightflow import api
from lightflow.config import Config

from tests.cluster import Cluster

from .conftest import WORKFLOWS, Command, Ioc, caput, lightflow, wait_for

PV_RUN = str(WORKFLOWS / "pv_run.py")


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def values(path: Path) -> list[object]:
    return [entry["value"] for entry in records(path)]


def wait_for_values(path: Path, count: int, run: Command, timeout: float = 60) -> list[object]:
    if not wait_for(lambda: len(records(path)) >= count, timeout):
        pytest.fail(f"{values(path)} after {timeout} s:\n{run.output()[-3000:]}")
    return values(path)


def until_watched(
    pv: str, record: Path, run: Command, probes: tuple[object, ...] = (10.0, 11.0)
) -> int:
    """Keep changing the PV through ``probes`` until the watch starts a run: then it is
    on. Returns how many runs the probes started, once they are all recorded."""
    deadline = time.monotonic() + 60
    count = 0
    while not records(record):
        assert run.process.poll() is None and time.monotonic() < deadline, run.output()[-3000:]
        caput(pv, probes[count % len(probes)])
        count += 1
        time.sleep(0.2)
    time.sleep(1.5)  # the run of a probe put just before the first is recorded too
    return len(records(record))


def watch(
    command: Callable[..., Command],
    tmp_path: Path,
    *pvs_and_options: str,
    config: Path | None = None,
    engine: str = "--embedded",
) -> tuple[Command, Path]:
    record = tmp_path / "runs.jsonl"
    run = command(
        "epics",
        "watch",
        *pvs_and_options,
        "--workflow",
        PV_RUN,
        "--arg",
        f"record={record}",
        engine,
        "--state-dir",
        str(tmp_path / "state"),
        config=config,
    )
    return run, record


def test_each_update_starts_a_run_in_order_with_the_update_as_parameters(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv = ioc.pv("LO")
    caput(pv, 0)
    run, record = watch(command, tmp_path, pv, "--no-skip-initial")
    wait_for_values(record, 1, run)
    for value in range(1, 6):
        caput(pv, value)
    assert wait_for_values(record, 6, run) == [0, 1, 2, 3, 4, 5]
    entries = records(record)
    assert all(entry["pvname"] == pv and entry["severity"] == 0 for entry in entries)
    assert all(abs(entry["timestamp"] - time.time()) < 600 for entry in entries)
    assert len({entry["run"] for entry in entries}) == 6
    assert f"trigger pv_run.py@{pv}" in run.output() or f"@{pv}: started run" in run.output()
    code, took = run.interrupt()
    assert code == 0 and took < 3.0, run.output()


def test_rising_starts_runs_on_upward_crossings_only(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv = ioc.pv("AO")
    caput(pv, 0.0)
    run, record = watch(command, tmp_path, pv, "--rising", "5")
    probed = until_watched(pv, record, run, probes=(6.0, 0.0))
    caput(pv, 0.0)
    for value in (6.0, 7.0, 3.0, 8.0, 4.0, 5.0, 5.5):
        caput(pv, value)
    assert wait_for_values(record, probed + 3, run)[probed:] == [6.0, 8.0, 5.0]
    time.sleep(1.0)
    assert len(records(record)) == probed + 3


def test_when_starts_runs_for_the_updates_it_holds_for(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv = ioc.pv("LO")
    caput(pv, 1)
    run, record = watch(command, tmp_path, pv, "--when", "value == 1", "--no-skip-initial")
    wait_for_values(record, 1, run)  # 1 at connection
    for value in (0, 1, 2, 1):
        caput(pv, value)
    assert wait_for_values(record, 3, run) == [1, 1, 1]
    time.sleep(1.0)
    assert len(records(record)) == 3


def test_a_flapping_pv_starts_at_most_one_run_per_debounce_window(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    import epics

    pv = ioc.pv("LO")
    caput(pv, 0)
    run, record = watch(command, tmp_path, pv, "--debounce", "2", "--no-skip-initial")
    wait_for_values(record, 1, run)  # the first update of a quiet period goes at once
    start = time.monotonic()
    value = 0
    while time.monotonic() - start < 3.0:  # ~100 Hz for 3 s
        value += 1
        epics.caput(pv, value)
        time.sleep(0.01)
    caput(pv, value)  # the last one, acknowledged
    flapped = time.monotonic() - start
    assert wait_for(lambda: values(record)[-1:] == [value], 10), run.output()
    time.sleep(2.5)  # a further window: nothing more may come
    # one run when the flapping began, then at most one per 2 s window
    assert len(records(record)) <= 2 + int(flapped / 2) + 1, values(record)
    folded = [int(n) for n in re.findall(r"(\d+) update\(s\) folded", run.output())]
    assert folded and sum(folded) + len(records(record)) - 1 >= value * 0.5, run.output()


def test_several_pvs_are_watched_in_one_process(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    caput(ioc.pv("AO"), 1.0)
    caput(ioc.pv("LO"), 1)
    run, record = watch(command, tmp_path, ioc.pv("AO"), ioc.pv("LO"), "--no-skip-initial")
    wait_for_values(record, 2, run)
    caput(ioc.pv("AO"), 2.5)
    caput(ioc.pv("LO"), 3)
    wait_for_values(record, 4, run)
    seen = {(entry["pvname"], entry["value"]) for entry in records(record)}
    assert seen == {(ioc.pv("AO"), 1.0), (ioc.pv("LO"), 1), (ioc.pv("AO"), 2.5), (ioc.pv("LO"), 3)}


def test_a_pva_channel_is_watched_like_a_ca_one(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv = "pva://" + ioc.pv("AO")
    run, record = watch(command, tmp_path, pv, "--changes")
    probed = until_watched(ioc.pv("AO"), record, run)
    for value in (1.0, 1.0, 2.0, 2.0, 3.0):
        caput(ioc.pv("AO"), value)
    assert wait_for_values(record, probed + 3, run)[probed:] == [1.0, 2.0, 3.0]
    assert records(record)[-1]["pvname"] == pv


def test_an_ioc_restart_mid_watch_is_logged_and_runs_start_again(
    restartable_ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    pv = restartable_ioc.pv("AO")
    caput(pv, 1.0)
    run, record = watch(command, tmp_path, pv, "--no-skip-initial")
    wait_for_values(record, 1, run)
    restartable_ioc.kill()
    run.wait_for_output(f"PV {pv} disconnected", timeout=30)

    def source_state() -> str:
        states = api.list_triggers(config=Config.from_dict({}), state_dir=tmp_path / "state")
        return states[0]["source_state"]["state"]

    assert wait_for(lambda: source_state() == "disconnected", 15), source_state()
    restartable_ioc.start()  # back with 0.0: a change that happened while it was away
    assert wait_for_values(record, 2, run, timeout=120) == [1.0, 0.0]
    run.wait_for_output(f"PV {pv} reconnected after", timeout=10)
    caput(pv, 4.0)
    assert wait_for_values(record, 3, run) == [1.0, 0.0, 4.0]
    assert wait_for(lambda: source_state() == "connected", 15), source_state()


def test_triggers_declared_in_lightflow_cfg(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command]
) -> None:
    record = tmp_path / "runs.jsonl"
    config = tmp_path / "lightflow.cfg"
    config.write_text(
        yaml.safe_dump(
            {
                "workflows": [str(WORKFLOWS)],
                "triggers": {
                    "sample_changed": {
                        "source": "pv",
                        "pv": ioc.pv("SO"),
                        "workflow": "pv_run",
                        "arguments": {"record": str(record)},
                        "changes": True,
                        "skip_initial": False,
                    },
                    "energy_high": {
                        "source": "pv",
                        "pv": ioc.pv("AO"),
                        "workflow": "pv_run",
                        "arguments": {"record": str(record)},
                        "when": "value > 100",
                    },
                },
            }
        )
    )
    caput(ioc.pv("SO"), "sample-1")
    caput(ioc.pv("AO"), 0.0)
    run = command("triggers", "run", "--state-dir", str(tmp_path / "state"), config=config)
    probed = until_watched(ioc.pv("AO"), record, run, probes=(150.0, 0.0))
    probed = until_watched(ioc.pv("SO"), record, run, probes=("probe-1", "probe-2"))
    for value in (50.0, 120.0):
        caput(ioc.pv("AO"), value)
    caput(ioc.pv("SO"), "sample-2")
    wait_for_values(record, probed + 2, run)
    seen = {(entry["pvname"], entry["value"]) for entry in records(record)[probed:]}
    assert seen == {(ioc.pv("SO"), "sample-2"), (ioc.pv("AO"), 120.0)}
    listing = lightflow("triggers", "list", "--state-dir", str(tmp_path / "state"), config=config)
    assert "sample_changed  running" in listing.stdout, listing.stdout + listing.stderr


def test_runs_start_on_the_cluster(
    ioc: Ioc, tmp_path: Path, command: Callable[..., Command], epics_cluster: Cluster
) -> None:
    pv = ioc.pv("LO")
    caput(pv, 40)
    run, record = watch(
        command,
        tmp_path,
        pv,
        "--no-skip-initial",
        config=epics_cluster.config_path,
        engine="--cluster",
    )
    wait_for_values(record, 1, run)
    caput(pv, 41)
    assert wait_for_values(record, 2, run) == [40, 41]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--when", "import os"], "condition 'import os' is not an expression"),
        (["--when", "value > 1", "--rising", "2"], "one condition, got when and rising"),
        (["--when", "open('/etc/passwd')"], "the call 'open(...)' is not allowed"),
        (["BL:OTHER", "--name", "mine"], "--name names one trigger, but 2 PVs are given"),
        (["--workflow", str(WORKFLOWS / "no_pv_parameters.py")], "declares none of the parameters"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    record = tmp_path / "runs.jsonl"
    result = lightflow(
        "epics",
        "watch",
        "BL:PV",
        "--workflow",
        PV_RUN,
        "--arg",
        f"record={record}",
        "--embedded",
        "--state-dir",
        str(tmp_path),
        *arguments,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_pv_fails_the_watch_when_asked_to(ioc: Ioc, tmp_path: Path) -> None:
    start = time.monotonic()
    result = lightflow(
        "epics",
        "watch",
        ioc.pv("NOPE"),
        "--workflow",
        PV_RUN,
        "--arg",
        "record=x",
        "--embedded",
        "--state-dir",
        str(tmp_path),
        "--connection-timeout",
        "1",
        "--on-timeout",
        "fail",
    )
    assert time.monotonic() - start < 30
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"Error: trigger '{PV_RUN}@{ioc.pv('NOPE')}': ")
    assert f"PV '{ioc.pv('NOPE')}' did not connect within 1 s (EPICS_CA_ADDR_LIST=127." in errors[0]
    assert errors[0].endswith("check the name, that its IOC runs, and that these settings reach it")


def test_get_prints_the_pvs_or_one_error_line(ioc: Ioc) -> None:
    caput(ioc.pv("SO"), "hello")
    result = lightflow("epics", "get", ioc.pv("SO"), f"pva://{ioc.pv('AI')}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{ioc.pv('SO')}  'hello'  severity 0  ")
    assert lines[1].startswith(f"pva://{ioc.pv('AI')}  2.0  severity 0  ")
    result = lightflow("epics", "get", ioc.pv("NOPE"), "--timeout", "1")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert errors[0].startswith(f"Error: PV '{ioc.pv('NOPE')}' did not connect within 1 s")
