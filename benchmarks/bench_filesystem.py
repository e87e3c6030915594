"""Filesystem benchmark: from a file landing in a folder to its workflow run starting.

Runs real ``lightflow fs watch`` processes on a real folder (inotify), each starting
``workflows/fs_record.py``, whose task appends ``time.time()`` at its start and the
files it got to a record file. Cases:

* **latency, embedded**: the watch on the embedded engine (each run in a process of
  its own). Files are written one at a time, ``--pause`` seconds apart; for each,
  the time from ``close()`` returning to the run's first task starting. Median and
  p95 of ``--files`` files; target: median <= 50 ms.
* **latency, cluster**: the same through a private cluster (redis-server, SecantusDB,
  one ``lightflow worker`` of concurrency 2) started here; target: median <= 100 ms.
* **burst**: ``--burst`` small files written as fast as possible, handed off in runs
  of ``--aggregate`` files (embedded engine, ``--workers`` runs at once). Reports how
  fast they were written, and files per second from the first write until the last
  file's run started; checks that every file reached exactly one run. The same burst
  into a bare :class:`~lightflow_filesystem.FolderSource` in this process shows what
  the source alone keeps up with.

Everything started is stopped at the end, also on errors and Ctrl-C.

Run it:  hatch run bench:python benchmarks/bench_filesystem.py   or
         python benchmarks/bench_filesystem.py [--files 50] [--burst 10000] [--no-cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import Latency, private_cluster, read_records, wait_until

BENCH = Path(__file__).resolve().parent
RECORD_WORKFLOW = BENCH / "workflows" / "fs_record.py"

LATENCY_TARGETS = {"embedded": 0.050, "cluster": 0.100}


@dataclass
class Burst:
    files: int
    aggregate: int
    workers: int
    write_seconds: float
    total_seconds: float
    handed: int
    unique: int
    source_seconds: float  # the same burst into a bare FolderSource: until the last event
    source_events: int


# -- processes ---------------------------------------------------------------------------------
class Watch:
    """A ``lightflow fs watch`` process; stopped with SIGTERM."""

    def __init__(self, config: Path, folder: Path, record: Path, *options: str) -> None:
        self.log = config.parent / f"watch-{folder.name}.log"
        self._log = open(self.log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lightflow.cli", "-c", str(config), "fs", "watch",
             str(folder), "--workflow", str(RECORD_WORKFLOW), "--arg", f"record={record}",
             "--state-dir", str(config.parent / "state"), *options],
            stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "watching folder" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the watch did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def write(path: Path) -> float:
    """Write a small file; return ``time.time()`` once it is closed."""
    with open(path, "w") as file:
        file.write("frame\n")
    return time.time()


# -- cases -------------------------------------------------------------------------------------
def measure_latency(engine: str, config: Path, files: int, pause: float) -> Latency:
    folder = config.parent / f"latency-{engine}"
    folder.mkdir()
    record = config.parent / f"latency-{engine}.jsonl"
    watch = Watch(config, folder, record, f"--{engine}")
    try:
        write(folder / "warm-up.h5")  # the first run pays for imports
        wait_until(lambda: len(read_records(record)) == 1, 120, "the runs")
        closed: dict[str, float] = {}
        for i in range(files):
            path = folder / f"file_{i:04d}.h5"
            closed[str(path)] = write(path)
            wait_until(lambda count=i + 2: len(read_records(record)) == count, 60, "the runs")
            time.sleep(pause)
    finally:
        watch.stop()
    samples = [
        entry["started"] - closed[entry["files"][0]]
        for entry in read_records(record)
        if entry["files"][0] in closed
    ]
    return Latency(engine, f"close -> task, {engine}", samples)


def measure_source(folder: Path, count: int) -> tuple[float, int]:
    """Seconds from the first write to the last event of a bare source; events seen."""
    from lightflow_filesystem import FolderSource

    folder.mkdir()
    seen: list[float] = []
    source = FolderSource(str(folder))
    source.start(lambda event: seen.append(time.time()))
    try:
        began = time.time()
        for i in range(count):
            write(folder / f"burst_{i:05d}.h5")
        wait_until(lambda: len(seen) >= count, 120, "the runs", interval=0.01)
    finally:
        source.stop()
    return seen[-1] - began, len(seen)


def measure_burst(config: Path, count: int, aggregate: int, workers: int) -> Burst:
    source_seconds, source_events = measure_source(config.parent / "burst-source", count)
    folder = config.parent / "burst"
    folder.mkdir()
    record = config.parent / "burst.jsonl"
    watch = Watch(
        config, folder, record, "--embedded", "--aggregate", str(aggregate),
        "--workers", str(workers),
    )  # fmt: skip
    try:
        began = time.time()
        for i in range(count):
            write(folder / f"burst_{i:05d}.h5")
        written = time.time()
        expected = count // aggregate

        def all_started() -> bool:
            return len(read_records(record)) >= expected

        wait_until(all_started, 600, "the runs", interval=0.05)
    finally:
        watch.stop()
    entries = read_records(record)
    handed = [file for entry in entries for file in entry["files"]]
    return Burst(
        files=count,
        aggregate=aggregate,
        workers=workers,
        write_seconds=written - began,
        total_seconds=max(entry["started"] for entry in entries) - began,
        handed=len(handed),
        unique=len(set(handed)),
        source_seconds=source_seconds,
        source_events=source_events,
    )


# -- report ------------------------------------------------------------------------------------
def render(latencies: list[Latency], burst: Burst | None, header: str) -> str:
    lines = [header, ""]
    lines.append(f"{'case':<28}{'median':>10}{'p95':>10}{'target':>12}  result")
    for latency in latencies:
        target = LATENCY_TARGETS[latency.case]
        result = "ok" if latency.median <= target else "MISSED"
        lines.append(
            f"{latency.label:<28}{latency.median * 1000:>8.1f}ms"
            f"{latency.p95 * 1000:>8.1f}ms{'<= ' + format(target * 1000, 'g') + ' ms':>12}"
            f"  {result} ({len(latency.samples)} files)"
        )
    if burst is not None:
        lost = burst.files - burst.unique
        twice = burst.handed - burst.unique
        lines += [
            "",
            f"burst of {burst.files} files, runs of {burst.aggregate}, {burst.workers} at once "
            "(embedded):",
            f"  written in {burst.write_seconds:.2f} s "
            f"({burst.files / burst.write_seconds:,.0f} files/s)",
            f"  all handed off and started in {burst.total_seconds:.2f} s "
            f"({burst.files / burst.total_seconds:,.0f} files/s)",
            f"  lost: {lost}, handed off twice: {twice}",
            f"  a bare FolderSource saw {burst.source_events} of them "
            f"{burst.source_seconds:.2f} s after the first write "
            f"({burst.source_events / burst.source_seconds:,.0f} files/s: the writer's pace)",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=50, help="latency samples (default 50)")
    parser.add_argument(
        "--pause", type=float, default=0.2, help="seconds between two latency files (0.2)"
    )
    parser.add_argument("--burst", type=int, default=10_000, help="burst size (10000; 0: skip)")
    parser.add_argument("--aggregate", type=int, default=100, help="files per burst run (100)")
    parser.add_argument("--workers", type=int, default=2, help="burst runs at once (2)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the cluster case")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.burst and args.burst % args.aggregate:
        parser.error("--burst must be a multiple of --aggregate")

    def terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    latencies: list[Latency] = []
    burst = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fs-") as scratch:
            embedded = Path(scratch) / "embedded"
            embedded.mkdir()
            (embedded / "lightflow.cfg").write_text("{}\n")
            print("latency, embedded engine", file=sys.stderr, flush=True)
            latencies.append(
                measure_latency("embedded", embedded / "lightflow.cfg", args.files, args.pause)
            )
            if not args.no_cluster:
                print("latency, cluster (starting redis, secantus, a worker)", file=sys.stderr)
                cluster = Path(scratch) / "cluster"
                cluster.mkdir()
                with private_cluster(cluster, "fs") as config:
                    latencies.append(measure_latency("cluster", config, args.files, args.pause))
            if args.burst:
                print(f"burst of {args.burst} files", file=sys.stderr, flush=True)
                burst = measure_burst(
                    embedded / "lightflow.cfg", args.burst, args.aggregate, args.workers
                )
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    header = (
        f"lightflow-filesystem, Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), "
        f"{args.files} files {args.pause:g} s apart"
    )
    print(render(latencies, burst, header))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "latency": {
                        lat.case: {"median": lat.median, "p95": lat.p95, "samples": lat.samples}
                        for lat in latencies
                    },
                    "burst": burst.__dict__ if burst else None,
                },
                indent=2,
            )
        )
    missed = any(lat.median > LATENCY_TARGETS[lat.case] for lat in latencies)
    lossy = burst is not None and not (burst.handed == burst.unique == burst.files)
    return 1 if missed or lossy else 0


if __name__ == "__main__":
    sys.exit(main())
