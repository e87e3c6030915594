"""Scale benchmark: wide fan-outs on the distributed engine beside raw Celery and Dask.

Starts the private cluster of ``bench_distributed.py`` (redis-server, SecantusDB, one
Lightflow worker and one raw Celery worker, concurrency 2 each) and times
``start -> N no-op lanes -> join`` for N = 100, 1,000 and 10,000 (``--widths``):

* Lightflow: ``api.start_workflow`` to ``workflow_finished`` (``workflows/fanout_wide.py``);
* raw Celery: ``chain(noop, chord(group(N x noop), noop))``, up to ``--celery-max`` lanes;
* Dask distributed, when installed (one worker process, 8 threads), on the same graph.

Lightflow and Celery alternate, ``--repeat`` timed runs each after a warm-up; the table
gives the median (minimum), the cost per task, its ratio to the 100-lane fan-out's
(target <= 1.3: linear) and Lightflow's ratio to raw Celery at 1,000 (target <= 1.2).
Then what a finished run keeps in Redis once its history is in the store (target
<= 20 KB), and, on request:

* ``--huge N``: one run of N tasks (100,000), kept, with the largest MongoDB document
  it made (far below the 16 MB limit, however large the run);
* ``--memory RUNS``: RSS of the Lightflow worker's processes after every 10 of RUNS
  mixed runs (chain, fan-out, sub-DAGs, store calls, array chain): it levels off.

Run it:  hatch run bench:scale [--repeat 3] [--huge 100000] [--memory 70]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bench_distributed as bd
from lightflow import api
from lightflow.queue import state as rs

WIDTH_VARIABLE = "LIGHTFLOW_BENCH_WIDTH"  # read by workflows/fanout_wide.py
LINEAR_TARGET, CELERY_TARGET, KEPT_TARGET = 1.3, 1.2, 20 * 1024


@contextlib.contextmanager
def width(lanes: int) -> Iterator[None]:
    os.environ[WIDTH_VARIABLE] = str(lanes)
    try:
        yield
    finally:
        os.environ.pop(WIDTH_VARIABLE, None)


def lightflow_fan(bench: bd.Bench, lanes: int, *, keep_data: bool = False) -> tuple[float, str]:
    """Seconds from submission to the run's end, and the run id."""
    with width(lanes):
        began = time.perf_counter()
        run_id = api.start_workflow(
            str(bd.WORKFLOWS / "fanout_wide.py"), {}, config=bench.config, keep_data=keep_data
        )
    record = api.follow_events(
        config=bench.config, run_id=run_id, on_event=lambda _e: None, timeout=3600
    )
    elapsed = time.perf_counter() - began
    if record is None or record.get("state") != "succeeded":
        raise bd.RunFailed(f"fan-out of {lanes} ended {(record or {}).get('state')}")
    return elapsed, run_id


def celery_fan(bench: bd.Bench, lanes: int) -> float:
    import celery_baseline as cb
    from celery import chain, chord, group

    def make() -> None:
        fan = chord(group(cb.noop.s() for _ in range(lanes)), cb.noop.s())
        chain(cb.noop.s(), fan).apply_async().get(timeout=3600)

    return bd.run_celery(bench, make)


class DaskFan:
    """The same graph on Dask distributed: one worker process with 8 threads."""

    def __init__(self) -> None:
        from dask.distributed import Client, LocalCluster

        self._cluster = LocalCluster(
            n_workers=1, threads_per_worker=8, processes=True, dashboard_address=None
        )
        self._client = Client(self._cluster)

    def __call__(self, lanes: int) -> float:
        """Seconds for the fan-out, submitted as futures (a graph dict of 10,000 keys
        into one join takes Dask minutes to take apart)."""
        client = self._client
        began = time.perf_counter()
        start = client.submit(noop, pure=False)
        done = [client.submit(noop, start, pure=False) for _ in range(lanes)]
        client.submit(noop, *done, pure=False).result()
        return time.perf_counter() - began

    def close(self) -> None:
        self._client.close()
        self._cluster.close()


def noop(*_inputs: Any) -> None:
    """A task that does nothing (the Dask graph's)."""


def kept_bytes(bench: bd.Bench, run_id: str) -> int:
    """Bytes a finished run keeps in Redis once its history has moved to the store."""
    import redis as redis_py

    server = bench.redis_server
    with redis_py.Redis(host=server.host, port=server.port, db=bd.LIGHTFLOW_DB) as client:
        deadline = time.monotonic() + 60
        while not client.hexists(rs.run_key(run_id), "archived_events"):
            if time.monotonic() > deadline:
                raise bd.RunFailed(f"the history of run {run_id} was not archived")
            time.sleep(0.05)
        keys = [rs.run_key(run_id), *client.scan_iter(match=rs.run_key(run_id, "*"))]
        return sum(client.memory_usage(key) or 0 for key in keys)


def largest_document(bench: bd.Bench) -> tuple[str, int]:
    """The largest document of the bench's MongoDB store: (collection, bytes)."""
    import bson
    import pymongo

    store = bench.config.store
    with pymongo.MongoClient(store["uri"]) as client:
        database = client[store["database"]]
        largest = ("", 0)
        for name in database.list_collection_names():
            for document in database[name].find():
                size = len(bson.encode(document))
                if size > largest[1]:
                    largest = (name, size)
    return largest


def worker_rss(bench: bd.Bench) -> list[float]:
    """RSS in MB of the Lightflow worker's processes (main process first)."""
    group = bench.processes["Lightflow worker"]
    sizes = []
    for stat in sorted(Path("/proc").glob("[0-9]*/stat")):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            status = (stat.parent / "status").read_text()
        except OSError:
            continue
        if int(fields[2]) != group:  # fields[2]: the process group
            continue
        rss = next(line for line in status.splitlines() if line.startswith("VmRSS"))
        sizes.append((int(stat.parent.name) != group, int(rss.split()[1]) / 1024))
    return [size for _pool, size in sorted(sizes)]


def measure(bench: bd.Bench, args: argparse.Namespace, say: Callable[[str], None]) -> list[dict]:
    dask = DaskFan() if args.dask else None
    rows = []
    try:
        for lanes in args.widths:
            celery = lanes <= args.celery_max
            lightflow_fan(bench, lanes)  # warm-up
            if celery:
                celery_fan(bench, lanes)
            row: dict[str, Any] = {"lanes": lanes, "lightflow": [], "celery": [], "dask": []}
            for i in range(args.repeat):
                elapsed, run_id = lightflow_fan(bench, lanes)
                row["lightflow"].append(elapsed)
                line = f"fan-out {lanes}: {i + 1}/{args.repeat} lightflow {elapsed:.3f} s"
                if celery:
                    row["celery"].append(celery_fan(bench, lanes))
                    line += f", celery {row['celery'][-1]:.3f} s"
                if dask is not None:
                    row["dask"].append(dask(lanes))
                    line += f", dask {row['dask'][-1]:.3f} s"
                say(line)
            row["kept"] = kept_bytes(bench, run_id)
            rows.append(row)
    finally:
        if dask is not None:
            dask.close()
    return rows


def render(rows: list[dict], header: str) -> str:
    lines = [header, ""]
    lines.append(
        f"{'fan-out':>9} {'Lightflow [s]':>15} {'per task':>9} {'vs 100':>7} "
        f"{'raw Celery [s]':>15} {'per task':>9} {'LF/Cy':>6} {'Dask [s]':>8} "
        f"{'per task':>9} {'Redis kept':>10}"
    )
    base = next((r for r in rows if r["lanes"] == 100), rows[0])
    base_per_task = statistics.median(base["lightflow"]) / (base["lanes"] + 2)
    verdicts = []
    for row in rows:
        tasks = row["lanes"] + 2
        light = statistics.median(row["lightflow"])
        per_task = light / tasks
        linear = per_task / base_per_task
        cells = [
            f"{row['lanes']:>9,}",
            f"{light:>7.3f} ({min(row['lightflow']):.3f})",
            f"{per_task * 1e3:>6.2f} ms",
            f"{linear:>7.2f}",
        ]
        if row["celery"]:
            raw = statistics.median(row["celery"])
            cells += [
                f"{raw:>7.3f} ({min(row['celery']):.3f})",
                f"{raw / tasks * 1e3:>6.2f} ms",
                f"{light / raw:>6.2f}",
            ]
            if row["lanes"] == 1000:
                verdicts.append(("Lightflow / raw Celery at 1,000", light / raw, CELERY_TARGET))
        else:
            cells += [f"{'-':>15}", f"{'-':>9}", f"{'-':>6}"]
        if row["dask"]:
            dask = statistics.median(row["dask"])
            cells += [f"{dask:>8.3f}", f"{dask / tasks * 1e3:>6.2f} ms"]
        else:
            cells += [f"{'-':>8}", f"{'-':>9}"]
        cells.append(f"{row['kept'] / 1024:>7.1f} KB")
        lines.append(" ".join(cells))
        if row is not base:
            verdicts.append((f"per task at {row['lanes']:,} / at 100", linear, LINEAR_TARGET))
        verdicts.append((f"Redis kept by a run of {row['lanes']:,} [KB]", row["kept"] / 1024, 20))
    lines.append("")
    for what, value, target in verdicts:
        lines.append(
            f"{what}: {value:.2f} (target <= {target:g}): {'PASS' if value <= target else 'MISS'}"
        )
    return "\n".join(lines)


def huge(bench: bd.Bench, lanes: int, say: Callable[[str], None]) -> str:
    say(f"one run of {lanes + 2:,} tasks")
    elapsed, run_id = lightflow_fan(bench, lanes, keep_data=True)
    kept = kept_bytes(bench, run_id)
    collection, size = largest_document(bench)
    return (
        f"run of {lanes + 2:,} tasks: {elapsed:.1f} s ({elapsed / (lanes + 2) * 1e3:.2f} ms per "
        f"task), Redis kept {kept / 1024:.1f} KB; largest MongoDB document: {size / 1024:.0f} KB "
        f"in '{collection}' (limit 16,384 KB)"
    )


def memory(bench: bd.Bench, runs: int, say: Callable[[str], None]) -> str:
    workflows = ["chain.py", "fanout.py", "sub_dags.py", "store_calls.py", "array_chain.py"]
    lines = ["Lightflow worker RSS [MB] (main process, pool processes) every 10 runs:"]
    lines.append(f"  before: {', '.join(f'{mb:.0f}' for mb in worker_rss(bench))}")
    for i in range(runs):
        bd.run_lightflow(bench, workflows[i % len(workflows)])
        if (i + 1) % 10 == 0:
            sizes = worker_rss(bench)
            lines.append(f"  after {i + 1:>3}: {', '.join(f'{mb:.0f}' for mb in sizes)}")
            say(lines[-1])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, metavar="N", help="timed runs (3)")
    parser.add_argument(
        "--widths", type=int, nargs="+", default=[100, 1000, 10000], metavar="N", help="lanes"
    )
    parser.add_argument(
        "--celery-max", type=int, default=1000, metavar="N", help="widest raw Celery chord"
    )
    parser.add_argument("--no-dask", dest="dask", action="store_false", help="skip Dask")
    parser.add_argument("--huge", type=int, default=0, metavar="N", help="a run of N lanes")
    parser.add_argument("--memory", type=int, default=0, metavar="RUNS", help="RSS over RUNS")
    parser.add_argument("--concurrency", type=int, default=2, metavar="C")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.dask:
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            args.dask = False

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    with bd.private_cluster(args.concurrency) as bench:
        rows = measure(bench, args, say)
        extra = []
        if args.huge:
            extra.append(huge(bench, args.huge, say))
        if args.memory:
            extra.append(memory(bench, args.memory, say))
    header = (
        f"Fan-outs on the distributed engine beside raw Celery {bd.celery_version()} and "
        f"Dask distributed (1 worker, 8 threads), Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPU(s), worker concurrency {args.concurrency}, median (min) of "
        f"{args.repeat} run(s) after a warm-up"
    )
    print(render(rows, header))
    for block in extra:
        print()
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
