"""Exactly once across a SIGKILL: a burst of items, the trigger killed in the middle of it.

Each item is appended to the backlog file (what a restarted source finds already
there) and then sent to the socket, as a file is written and then announced. The
``lightflow triggers run`` process is SIGKILLed while runs are being started and
started again at once, while the burst goes on; every item must then have been
handed to exactly one run: the runs append their items to one file, which is counted.
On the embedded engine the ledger is the journal of the state folder and each run is
a process of its own (the killed trigger's runs go on as orphans); on the cluster it
is in Redis and the runs go to the session's worker.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightflow import api

from tests.cluster import Cluster

from .helpers import WORKFLOWS, Lightflow, send_lenient, wait_until, write_config

ITEMS = [f"i{number:03d}" for number in range(300)]
#: Sent after the burst: whatever batch the last item is in closes with them.
AGGREGATE = 25
FILLERS = [f"z{number}" for number in range(AGGREGATE - 1)]


def burst(folder: Path, items: list[str], gate: threading.Event | None = None) -> threading.Thread:
    """Send ``items`` in a thread: each appended to the backlog, then sent.

    With a ``gate``, the second half waits until it is set (the trigger was killed).
    """

    def send_all() -> None:
        for number, item in enumerate(items):
            if gate is not None and number == len(items) // 2:
                gate.wait(30)
            with open(folder / "backlog", "a") as backlog:
                backlog.write(item + "\n")
            send_lenient(folder / "burst.sock", item)
            time.sleep(0.002)

    thread = threading.Thread(target=send_all, daemon=True)
    thread.start()
    return thread


def trigger_settings(folder: Path) -> dict[str, Any]:
    return {
        "burst": {
            "source": "lines",
            "workflow": "collect",
            "aggregate": AGGREGATE,
            "path": str(folder / "burst.sock"),
            "backlog": str(folder / "backlog"),
            "arguments": {"out": str(folder / "items.txt")},
        }
    }


def embedded_config(folder: Path) -> tuple[Path, list[str]]:
    config = write_config(folder / "lightflow.cfg", trigger_settings(folder))
    return config, ["--embedded", "--workers", "2", "--state-dir", str(folder / "state")]


def cluster_config(cluster: Cluster) -> Callable[[Path], tuple[Path, list[str]]]:
    def make(folder: Path) -> tuple[Path, list[str]]:
        config = folder / "lightflow.cfg"
        cluster.write_config(config, workflows=[WORKFLOWS], triggers=trigger_settings(folder))
        return config, ["--cluster"]

    return make


def written(folder: Path) -> Counter[str]:
    path = folder / "items.txt"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def run_ids(*processes: Lightflow) -> list[str]:
    return [
        line.split("started run ")[1].split()[0]
        for process in processes
        for line in process.stderr.splitlines()
        if "trigger burst: started run " in line
    ]


def kill_in_the_middle_and_restart(
    folder: Path,
    plugin: Path,
    make_config: Callable[[Path], tuple[Path, list[str]]],
    processes: list[Lightflow],
) -> None:
    """The burst, the first process killed in its middle, the second; every item written.

    The processes go to ``processes`` as they start, for the test to close.
    """
    config, options = make_config(folder)
    command = ["-c", str(config), "triggers", "run", *options]
    first = Lightflow(command, folder=folder, plugin=plugin)
    processes.append(first)
    first.wait_for("trigger burst: watching")
    killed = threading.Event()
    sender = burst(folder, ITEMS, killed)
    first.wait_for("trigger burst: started run", count=3)
    first.signal(signal.SIGKILL)
    first.wait()
    killed.set()  # the rest of the burst meets no trigger, then a starting one
    second = Lightflow(command, folder=folder, plugin=plugin)
    processes.append(second)
    second.wait_for("trigger burst: watching")
    sender.join(30)
    burst(folder, FILLERS).join(10)
    wait_until(lambda: set(ITEMS) <= set(written(folder)), timeout=60, what="every item written")


@pytest.mark.parametrize("engine", ["embedded", "cluster"])
def test_every_item_is_handed_off_exactly_once_across_a_sigkill(
    engine: str, tmp_path: Path, plugin_path: Path, request: pytest.FixtureRequest
) -> None:
    if engine == "embedded":
        make_config = embedded_config
    else:
        cluster: Cluster = request.getfixturevalue("redis_cluster")
        make_config = cluster_config(cluster)
    processes: list[Lightflow] = []
    try:
        kill_in_the_middle_and_restart(tmp_path, plugin_path, make_config, processes)
        first, second = processes
        time.sleep(1.5)  # a run started twice would write its items again by now
        counts = written(tmp_path)
        assert {item: n for item, n in counts.items() if n != 1} == {}
        assert set(ITEMS) <= set(counts) <= set(ITEMS + FILLERS)
        assert "Traceback" not in first.stderr + second.stderr
        ids = run_ids(first, second)
        assert len(ids) == len(set(ids))  # no run started twice either
        if engine == "cluster":  # every run completed on the worker
            cluster = request.getfixturevalue("redis_cluster")
            for run_id in ids:
                assert api.wait_for_run(run_id, config=cluster.config, timeout=30).succeeded
        second.signal(signal.SIGTERM)
        assert second.wait(10) == 0
    finally:
        for process in processes:
            process.close()
