"""The trigger runtime on the embedded engine: ``lightflow triggers run`` end to end.

One ``lightflow triggers run`` process hosts a trigger per behaviour for the whole
module (each with its own socket, output file and workflow); every test sends items
to its trigger and reads what the runs wrote and what the runtime logged. Each run is
a process of its own (``python -m lightflow.triggers.child``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lightflow import api
from lightflow.config import Config

from ..cli import clean_environment, run_lightflow
from .helpers import WORKFLOWS, Lightflow, items_written, send, wait_until, write_config

COLLECT = WORKFLOWS / "collect.py"


@dataclass
class Host:
    """The module's ``lightflow triggers run`` and where its triggers live."""

    process: Lightflow
    folder: Path
    config: Path
    state: Path

    def socket(self, trigger: str) -> Path:
        return self.folder / f"{trigger}.sock"

    def out(self, trigger: str) -> Path:
        return self.folder / f"{trigger}.txt"

    def log(self, trigger: str, pattern: str, *, count: int = 1) -> list[str]:
        return self.process.wait_for(f"trigger {trigger}: {pattern}", count=count)

    def handed_keys(self, trigger: str) -> set[str]:
        journal = self.state / f"{trigger}.ledger"
        return {
            key
            for line in journal.read_text().splitlines()
            for key in json.loads(line).get("keys", [])
        }


def trigger(host_folder: Path, name: str, workflow: Path | str, **settings: object) -> dict:
    out = host_folder / f"{name}.txt"
    return {
        "source": "lines",
        "workflow": str(workflow),
        "path": str(host_folder / f"{name}.sock"),
        "arguments": {"out": str(out)},
        **settings,
    }


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory, plugin_path: Path) -> Iterator[Host]:
    folder = tmp_path_factory.mktemp("triggers")
    edited = folder / "edited.py"
    shutil.copy(COLLECT, edited)
    triggers = {
        "pairs": trigger(folder, "pairs", "collect", aggregate=2),
        "calm": trigger(folder, "calm", "collect", debounce=1.0),
        "picky": trigger(folder, "picky", "collect", only="ok"),
        "strict": trigger(folder, "strict", "strict"),
        "edited": trigger(folder, "edited", edited),
    }
    config = write_config(folder / "lightflow.cfg", triggers)
    state = folder / "state"
    process = Lightflow(
        ["-c", str(config), "triggers", "run", "--embedded", "--state-dir", str(state)],
        folder=folder,
        plugin=plugin_path,
    )
    host = Host(process, folder, config, state)
    try:
        process.wait_for("trigger .*: watching", count=len(triggers))
        yield host
    finally:
        process.close()


def started_lines(host: Host, trigger: str) -> list[str]:
    lines = host.process.stderr.splitlines()
    return [line for line in lines if f"trigger {trigger}: started" in line]


def test_one_run_per_batch_with_its_items_in_order(host: Host) -> None:
    send(host.socket("pairs"), "a", "b", "c", "d", "e", "f", "g")
    wait_until(lambda: len(items_written(host.out("pairs"))) == 3, what="three runs")
    assert items_written(host.out("pairs")) == [["a", "b"], ["c", "d"], ["e", "f"]]
    lines = host.log("pairs", r"started run [0-9a-f]{32} for 2 item\(s\)$", count=3)
    assert len(lines) == 3 and len(started_lines(host, "pairs")) == 3  # one line per run
    host.log("pairs", r"run [0-9a-f]{32} succeeded", count=3)

    # a key seen before is not handed off again; nor twice in one batch
    send(host.socket("pairs"), "c", "h", "h", "a", "i")
    wait_until(lambda: len(items_written(host.out("pairs"))) == 4, what="the fourth run")
    time.sleep(0.5)
    assert items_written(host.out("pairs"))[3:] == [["g", "h"]]
    assert host.handed_keys("pairs") == set("abcdefgh")


def test_debounce_starts_the_first_at_once_and_the_last_of_the_window(host: Host) -> None:
    sent = time.monotonic()
    send(host.socket("calm"), "x1", "x2", "x3", "x4", "x5")
    wait_until(lambda: items_written(host.out("calm")) == [["x1"]], what="the leading run")
    assert time.monotonic() - sent < 0.9  # not held for the window
    host.log("calm", r"3 item\(s\) folded into the last one of the debounce window$")
    wait_until(lambda: len(items_written(host.out("calm"))) == 2, what="the trailing run")
    assert items_written(host.out("calm")) == [["x1"], ["x5"]]
    # the folded items were handed off with the last one: not started again
    assert host.handed_keys("calm") == {"x1", "x2", "x3", "x4", "x5"}
    time.sleep(1.2)  # the window is over: a folded key comes again, a new one goes
    send(host.socket("calm"), "x3", "x6")
    wait_until(lambda: len(items_written(host.out("calm"))) == 3, what="the next run")
    time.sleep(1.2)
    assert items_written(host.out("calm")) == [["x1"], ["x5"], ["x6"]]


def test_the_condition_drops_the_events_it_refuses(host: Host) -> None:
    send(host.socket("picky"), "ok1", "no1", "ok2", "nope")
    wait_until(lambda: len(items_written(host.out("picky"))) == 2, what="two runs")
    time.sleep(0.5)
    assert items_written(host.out("picky")) == [["ok1"], ["ok2"]]
    assert host.handed_keys("picky") == {"ok1", "ok2"}


def test_arguments_the_workflow_refuses_are_logged_and_not_handed_off(host: Host) -> None:
    send(host.socket("strict"), "seven", "7")
    wait_until(lambda: host.out("strict").exists(), what="the run of 7")
    (refused,) = host.log("strict", "workflow strict refuses")
    assert refused.endswith(
        "trigger strict: workflow strict refuses the arguments of 1 item(s), not handed off "
        "(seven): parameter 'first' expects int, got 'seven'"
    )
    wait_until(lambda: host.out("strict").read_text() == "7\n", what="7 written")
    assert host.handed_keys("strict") == {"7"}


def test_the_workflow_file_is_loaded_again_when_it_changes(host: Host) -> None:
    source, out = host.folder / "edited.py", host.out("edited")
    send(host.socket("edited"), "e1")
    wait_until(lambda: items_written(out) == [["e1"]], what="the first run")

    source.write_text(source.read_text().replace('default=""', 'default="v2-"'))
    send(host.socket("edited"), "e2")
    wait_until(lambda: len(items_written(out)) == 2, what="the second run")
    assert items_written(out)[1] == ["v2-e2"]
    host.log("edited", f"workflow {source} loaded again")

    source.write_text("this is not Python\n")  # the runs keep the version that loaded
    send(host.socket("edited"), "e3")
    wait_until(lambda: len(items_written(out)) == 3, what="the third run")
    send(host.socket("edited"), "e4")  # run by a process started after the file broke
    wait_until(lambda: len(items_written(out)) == 4, what="the fourth run")
    assert items_written(out)[2:] == [["v2-e3"], ["v2-e4"]]
    (kept,) = host.log("edited", "the changed workflow file does not load")
    assert "the one loaded before is used" in kept


def test_state_is_published_and_listed(host: Host, plugin_path: Path) -> None:
    send(host.socket("picky"), "ok-listed")
    wait_until(lambda: ["ok-listed"] in items_written(host.out("picky")), what="the run")
    config = Config.load(str(host.config))

    def listed() -> dict[str, dict]:
        return {e["name"]: e for e in api.list_triggers(config=config, state_dir=host.state)}

    picky = wait_until(lambda: listed()["picky"]["last_event"] and listed()["picky"])
    assert {name: entry["state"] for name, entry in listed().items()} == dict.fromkeys(
        ("pairs", "calm", "picky", "strict", "edited"), "running"
    )
    assert picky["kind"] == "lines" and picky["workflow"] == "collect"
    assert picky["engine"] == "embedded" and picky["pid"] == host.process.pid
    assert picky["source"] == f"lines on {host.socket('picky')}"
    assert picky["source_state"] == {"state": "watching"}
    assert picky["runs"] >= 1 and picky["events"] >= picky["accepted"] >= picky["runs"]
    assert len(picky["last_run"]) == 32 and picky["error"] is None

    shown = run_lightflow(
        ["-c", str(host.config), "triggers", "list", "--state-dir", str(host.state)],
        cwd=host.folder,
        env=clean_environment(host.folder, PYTHONPATH=str(plugin_path)),
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert any(
        line.startswith(f"picky  running  lines on {host.socket('picky')}  -> collect  runs: ")
        for line in lines
    ), shown.stdout
    assert len(lines) == 6
    assert lines[-1].startswith("Source kinds installed: ") and "lines" in lines[-1]


def test_a_second_process_for_the_same_trigger_is_refused(host: Host, plugin_path: Path) -> None:
    arguments = ["triggers", "run", "pairs", "--embedded", "--state-dir", str(host.state)]
    second = run_lightflow(
        ["-c", str(host.config), *arguments],
        cwd=host.folder,
        env=clean_environment(host.folder, PYTHONPATH=str(plugin_path)),
    )
    assert second.returncode == 1
    assert second.stderr.splitlines() == [
        f"Error: trigger 'pairs' is already watched by another process on this host (it holds "
        f"{host.state / 'pairs.ledger'}); stop that process first"
    ]
