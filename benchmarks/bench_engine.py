"""Core benchmark: the overhead of the embedded engine per task.

Measures ``LocalRun.run()`` from start to end (workflow, DAGs and the run's store
document are built before the clock starts; no CLI start-up) for:

* a 1-task run: the fixed cost of a run;
* a chain of no-op tasks (default 1,000): the added time over the 1-task run is the
  per-hop cost of scheduling, composing input and recording (target: <= 1 s for 1,000);
* fan-outs ``start -> N parallel no-op tasks -> join`` (default N = 1k, 5k, 10k): the
  time per task should stay roughly constant as N grows (linear growth);
* beside each fan-out, when Dask is installed, the same graph on Dask's threaded
  scheduler (``dask.threaded.get``, one thread per CPU), the mark the issue sets:
  Lightflow within 1.5x of it at 10,000.

Each case runs ``--repeat`` times and the median is reported.

Run it:  hatch run bench:core [--repeat 5]   or   python benchmarks/bench_engine.py
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightflow.local import LocalRun
from lightflow.models import Dag
from lightflow.store.memory import MemoryDataStore
from lightflow.workflows import Workflow

try:
    from lightflow.tasks import PythonTask

    def noop_task(name: str) -> Any:
        return PythonTask(name)

except ImportError:  # an older tree without the bundled task types
    from lightflow.models import BaseTask

    class _Noop(BaseTask):
        def run(self, data, store, signal, context, **kwargs):
            return None

    def noop_task(name: str) -> Any:
        return _Noop(name)


CHAIN_TARGET = 1.0  # seconds added by a 1,000-task chain over a 1-task run


def single_dag() -> Dag:
    return Dag("single", schema={noop_task("only"): None})


def chain_dag(length: int) -> Dag:
    tasks = [noop_task(f"t{i}") for i in range(length)]
    schema: dict[Any, Any] = {a: b for a, b in itertools.pairwise(tasks)}
    schema[tasks[-1]] = None
    return Dag("chain", schema=schema)


def fan_dag(width: int) -> Dag:
    start, join = noop_task("start"), noop_task("join")
    lanes = [noop_task(f"lane{i}") for i in range(width)]
    schema: dict[Any, Any] = {start: lanes}
    schema.update({lane: join for lane in lanes})
    return Dag("fan", schema=schema)


def time_run(make_dag: Callable[[], Dag], workers: int | None) -> float:
    """Seconds spent in ``LocalRun.run()`` for a fresh workflow built by ``make_dag``."""
    dag = make_dag()
    workflow = Workflow(name="bench", path=Path("bench.py"), docstring="", dags={dag.name: dag})
    local = LocalRun(workflow, {}, store=MemoryDataStore(), workers=workers, keep_data=False)
    began = time.perf_counter()
    result = local.run()
    elapsed = time.perf_counter() - began
    if not result.succeeded:
        raise SystemExit(f"benchmark run failed: {result.outcome}: {result.error}")
    return elapsed


def median_time(make_dag: Callable[[], Dag], repeat: int, workers: int | None) -> float:
    return statistics.median(time_run(make_dag, workers) for _ in range(repeat))


def dask_fan_time(width: int, repeat: int) -> float | None:
    """Median seconds of the fan-out on Dask's threaded scheduler (None: no Dask)."""
    try:
        from dask.threaded import get
    except ImportError:
        return None

    def noop(*_inputs: Any) -> None:
        return None

    graph: dict[str, Any] = {"start": (noop,)}
    graph.update({f"lane{i}": (noop, "start") for i in range(width)})
    graph["join"] = (noop, [f"lane{i}" for i in range(width)])
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        get(graph, "join")
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="runs per case; the median is reported (default 3)",
    )
    parser.add_argument(
        "--chain", type=int, default=1000, metavar="N", help="length of the chain (default 1000)"
    )
    parser.add_argument(
        "--fan",
        type=int,
        nargs="+",
        default=[1000, 5000, 10000],
        metavar="N",
        help="fan-out widths (default 1000 5000 10000)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="worker threads (default: the engine's default)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.chain < 1 or any(n < 1 for n in args.fan):
        parser.error("--repeat, --chain and --fan need positive numbers")

    time_run(single_dag, args.workers)  # warm up imports and thread start-up
    rows: list[tuple[str, int, float, float | None]] = []
    base = median_time(single_dag, args.repeat, args.workers)
    rows.append(("1 task", 1, base, None))
    chain = median_time(lambda: chain_dag(args.chain), args.repeat, args.workers)
    rows.append((f"chain of {args.chain}", args.chain, chain, (chain - base) / args.chain))
    dask: list[tuple[int, float, float]] = []  # width, Lightflow, Dask (seconds)
    for width in args.fan:
        total = width + 2
        elapsed = median_time(lambda w=width: fan_dag(w), args.repeat, args.workers)
        rows.append((f"fan-out {width}", total, elapsed, (elapsed - base) / total))
        dask_elapsed = dask_fan_time(width, args.repeat)
        if dask_elapsed is not None:
            dask.append((width, elapsed, dask_elapsed))

    print(
        f"Lightflow embedded engine, Python {sys.version.split()[0]}, "
        f"median of {args.repeat} run(s), workers={args.workers or 'default'}"
    )
    print()
    print(f"{'case':<18} {'tasks':>7} {'total [s]':>10} {'added [s]':>10} {'per task [us]':>14}")
    print("-" * 63)
    for label, tasks, elapsed, per_task in rows:
        added = f"{elapsed - base:10.4f}" if per_task is not None else f"{'-':>10}"
        per = f"{per_task * 1e6:14.1f}" if per_task is not None else f"{'-':>14}"
        print(f"{label:<18} {tasks:>7} {elapsed:10.4f} {added} {per}")
    if dask:
        print()
        print(
            f"{'fan-out':<18} {'Dask threaded [s]':>18} {'per task [us]':>14} "
            f"{'Lightflow/Dask':>15}"
        )
        for width, elapsed, dask_elapsed in dask:
            per_task = dask_elapsed / (width + 2) * 1e6
            print(
                f"{width:<18} {dask_elapsed:18.4f} {per_task:14.1f} {elapsed / dask_elapsed:15.2f}"
            )
    print()
    added_chain = chain - base
    scaled = added_chain * 1000 / args.chain
    verdict = "ok" if scaled <= CHAIN_TARGET else "OVER TARGET"
    print(
        f"chain: {added_chain:.3f} s added over a 1-task run "
        f"({scaled:.3f} s per 1,000 tasks; target <= {CHAIN_TARGET:.1f} s): {verdict}"
    )
    return 0 if scaled <= CHAIN_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
