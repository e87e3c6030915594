"""The 1.x example workflow (packages/lightflow-epics/examples/watch_pv.py) does what its
docstring says, on both engines: changes of the PV given as argument are checked, values
strictly between 1 and 5 start 'pv_action_dag' with the PV's name and value, and the
watch runs until the run is stopped."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from lightflow import api

from tests.cluster import Cluster

from .conftest import EXAMPLES, Command, Ioc, caput, wait_for

EXAMPLE = str(EXAMPLES / "watch_pv.py")
#: Values put after the watch is on, and those the action DAG must act on, in order.
PUT = [7.0, 2.5, 1.0, 6.5, 4.0, 5.0]
ACTED = [2.5, 4.0]


def changes_until_watched(pv: str, output: Callable[[], str]) -> None:
    """Keep moving the PV (outside 3 +/- 2) until the example reports a change."""
    value = 10.0
    while "changed to" not in output():
        value += 1
        caput(pv, value)
        time.sleep(0.2)
        assert value < 500, output()


def acted(output: str, pv: str) -> list[float]:
    return [float(v) for v in re.findall(rf"Acting on PV {re.escape(pv)} = (\S+)", output)]


def test_the_example_on_the_embedded_engine(ioc: Ioc, command: Callable[..., Command]) -> None:
    pv = ioc.pv("AO")
    caput(pv, 3.0)  # in range, but the value at connection is not a change
    run = command("run", EXAMPLE, f"pvname={pv}")
    run.wait_for_output(f"Watching PV {pv}")
    changes_until_watched(pv, run.output)
    for value in PUT:
        caput(pv, value)
    assert wait_for(lambda: len(acted(run.output(), pv)) == len(ACTED), 30), run.output()
    assert wait_for(lambda: f"PV {pv} changed to {PUT[-1]}" in run.output(), 30)
    code, took = run.interrupt()
    assert code == 130 and took < 3.0, run.output()
    output = run.output()
    assert acted(output, pv) == ACTED
    changed = re.findall(rf"PV {re.escape(pv)} changed to (\S+)", output)
    assert [float(v) for v in changed][-len(PUT) :] == PUT  # in the order they happened
    assert "3.0" not in changed


def test_the_example_on_the_cluster(ioc: Ioc, epics_cluster: Cluster) -> None:
    pv = ioc.pv("AO")
    caput(pv, 3.0)
    config = epics_cluster.config
    run_id = api.start_workflow("watch_pv", {"pvname": pv}, config=config)

    def output() -> str:
        return "\n".join(api.run_logs(run_id, config=config))

    assert wait_for(lambda: f"Watching PV {pv}" in output(), 60), (
        api.run_status(run_id, config=config),
        epics_cluster.workers[0].log()[-3000:],
    )
    changes_until_watched(pv, output)
    for value in PUT:
        caput(pv, value)
    assert wait_for(lambda: len(acted(output(), pv)) == len(ACTED), 60), output()
    asked = time.monotonic()
    api.stop_workflows(["watch_pv"], config=config)
    events: list = []
    final = api.follow_events(config=config, run_id=run_id, on_event=events.append, timeout=60)
    assert time.monotonic() - asked < 5.0
    assert final is not None and final["state"] == "stopped", final
    # The action DAGs run side by side on the workers, so their lines may come in either
    # order; the order they were started in is the order of the values.
    by_dag = dict(
        re.findall(rf"(pv_action_dag(?::\d+)?)/\S+: Acting on PV {re.escape(pv)} = (\S+)", output())
    )
    assert by_dag == {"pv_action_dag": str(ACTED[0]), "pv_action_dag:2": str(ACTED[1])}, output()
    action_dags = {event.dag for event in events if (event.dag or "").startswith("pv_action")}
    assert action_dags == {"pv_action_dag", "pv_action_dag:2"}
