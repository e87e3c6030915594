"""Distributed benchmark: Lightflow's distributed engine beside raw Celery, one run.

Starts a private redis-server and SecantusDB (MongoDB protocol) on free ports, one
Lightflow worker (queues workflow, dag, task) and one raw Celery worker for the
baseline app in ``celery_baseline.py`` (same private Redis, other databases, same
concurrency, late acknowledgement, prefetch 1), then times:

* chain: 21 chained no-op tasks (Celery: ``chain`` of 21 ``noop``);
* fan-out: start -> 100 parallel no-op tasks -> join
  (Celery: ``chain(start, chord(group(100 x noop), join))``);
* array chain: 5 chained tasks passing an 8 MiB numpy array, each adding one
  (Celery: a chain of 5 tasks taking and returning the array, pickled);
* store: 10 chained tasks making 20 store calls each (Lightflow only);
* sub-DAGs: one task starts 5 sub-DAGs and joins them (Lightflow only);
* workflow start: wall time of the ``lightflow workflow start`` command (a subprocess).

Engine times run from just before submission to the final result: for Lightflow
``api.start_workflow`` then ``api.follow_events`` until ``workflow_finished``; for
Celery ``apply_async().get()``. Each case runs once to warm up, then ``--repeat``
times (Lightflow and Celery interleaved); the median and the minimum are reported.
Everything started is stopped at the end, also on errors and Ctrl-C.

Run it:  hatch run bench:distributed [--repeat 5]   or
         python benchmarks/bench_distributed.py [--repeat N] [--concurrency C] [--json F]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKFLOWS = BENCH / "workflows"
for folder in (REPO, BENCH):  # tests.servers, and the baseline Celery app
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import yaml  # noqa: E402
from lightflow import api  # noqa: E402
from lightflow.config import Config  # noqa: E402

from tests.servers import ServerProcess, WorkerProcess, redis, secantus  # noqa: E402

# Redis databases on the private server.
LIGHTFLOW_DB, CELERY_BROKER_DB, CELERY_BACKEND_DB = 1, 2, 3
ARRAY_HOPS = 4  # make -> add0 -> add1 -> add2 -> check
RUN_TIMEOUT = 300.0

# Figures from the issue, for context: Lightflow 1.x and raw Celery measured earlier.
REFERENCE_1X = {"chain": 41.8, "fanout": 10.4, "array": 10.5, "store": 19.9, "subdags": 9.2}
RAW_CELERY_EARLIER = {"chain": 0.11, "fanout": 0.64, "array": 1.26}


@dataclass
class Case:
    """One workload: how to run it on each side and what it must reach."""

    key: str
    label: str
    workflow: str | None  # file in benchmarks/workflows, None for the CLI case
    celery: Callable[[], None] | None = None
    ratio_target: float | None = None  # Lightflow <= ratio_target x raw Celery
    seconds_target: float | None = None  # Lightflow <= seconds_target


@dataclass
class Result:
    key: str
    label: str
    lightflow: list[float] = field(default_factory=list)
    celery: list[float] = field(default_factory=list)
    target: str = ""
    passed: bool | None = None
    ratio: float | None = None
    phases: dict[str, float] = field(default_factory=dict)
    usage_lightflow: dict[str, Any] = field(default_factory=dict)
    usage_celery: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "workload": self.label,
            "lightflow": summary(self.lightflow),
            "celery": summary(self.celery) if self.celery else None,
            "ratio": self.ratio,
            "target": self.target,
            "passed": self.passed,
            "lightflow_phases": self.phases or None,
            "usage_per_run_lightflow": self.usage_lightflow or None,
            "usage_per_run_celery": self.usage_celery or None,
        }


def summary(times: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(times), "min": min(times), "times": list(times)}


# -- processes -----------------------------------------------------------------------------
def lightflow_command() -> list[str]:
    """The real ``lightflow`` console script (not a pyenv shim), else ``python -m``."""
    beside = Path(sys.executable).parent / "lightflow"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("lightflow")
    if found and "shims" not in Path(found).parts:
        return [found]
    return [sys.executable, "-m", "lightflow.cli"]


@dataclass
class Bench:
    """The private cluster and the clients the cases use."""

    config_path: Path
    config: Config
    redis_server: ServerProcess
    celery_app: Any
    processes: dict[str, int] = field(default_factory=dict)  # what -> pid / group id

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each server, each worker (all its processes) and us."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {what: 0.0 for what in self.processes}
        groups = {pid: what for what, pid in self.processes.items()}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            pid = int(text.split(" ", 1)[0])
            fields = text.rsplit(")", 1)[1].split()
            # fields[2] is the process group, fields[11:13] user and system ticks
            what = groups.get(int(fields[2])) if int(fields[2]) in groups else None
            if what is None:
                what = groups.get(pid)
            if what is not None:
                used[what] += (int(fields[11]) + int(fields[12])) / ticks
        times = os.times()
        used["client (this script)"] = times.user + times.system
        return used

    def redis_stats(self) -> dict[str, int]:
        import redis as redis_py

        with redis_py.Redis(host=self.redis_server.host, port=self.redis_server.port) as client:
            info = client.info("stats")
        return {
            key: int(info[key])
            for key in (
                "total_net_input_bytes",
                "total_net_output_bytes",
                "total_commands_processed",
            )
        }

    def flush_celery_results(self) -> None:
        """Drop the baseline's stored results (8 MiB each for the array chain)."""
        import redis as redis_py

        with redis_py.Redis(
            host=self.redis_server.host, port=self.redis_server.port, db=CELERY_BACKEND_DB
        ) as client:
            client.flushdb()


@contextlib.contextmanager
def private_cluster(concurrency: int) -> Iterator[Bench]:
    """Redis, SecantusDB, a Lightflow worker and a raw Celery worker; all stopped after."""
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(redis())
        mongo = stack.enter_context(secantus())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-lf-")))
        state_url = f"redis://{redis_server.address}/{LIGHTFLOW_DB}"
        config_path = folder / "lightflow.cfg"
        config_path.write_text(
            yaml.safe_dump(
                {
                    "workflows": [str(WORKFLOWS)],
                    "celery": {"broker_url": state_url},
                    "signal": {"url": state_url},
                    "store": {"uri": f"mongodb://{mongo.address}/", "database": "lightflow_bench"},
                }
            )
        )
        host = socket.gethostname()
        lightflow_worker = WorkerProcess(
            "lightflow",
            [
                *lightflow_command(),
                "-c",
                str(config_path),
                "worker",
                "start",
                "-n",
                f"bench-lightflow@{host}",
                "-q",
                "workflow,dag,task",
                "--concurrency",
                str(concurrency),
            ],
        )
        stack.callback(lightflow_worker.stop)
        celery_env = {
            "BENCH_CELERY_BROKER": f"redis://{redis_server.address}/{CELERY_BROKER_DB}",
            "BENCH_CELERY_BACKEND": f"redis://{redis_server.address}/{CELERY_BACKEND_DB}",
        }
        worker_env = dict(celery_env)
        if os.geteuid() == 0:  # Celery refuses pickle as root unless told: a private,
            worker_env["C_FORCE_ROOT"] = "1"  # loopback-only Redis, so that is safe
        celery_worker = WorkerProcess(
            "celery",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_baseline",
                "worker",
                "-n",
                f"bench-celery@{host}",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
            ],
            env=worker_env,
            cwd=BENCH,
        )
        stack.callback(celery_worker.stop)
        lightflow_worker.start()
        celery_worker.start()

        import celery_baseline

        celery_baseline.app.conf.update(
            broker_url=celery_env["BENCH_CELERY_BROKER"],
            result_backend=celery_env["BENCH_CELERY_BACKEND"],
        )
        processes = {
            "redis-server": server_pid(redis_server),
            "secantus": server_pid(mongo),
            "Lightflow worker": lightflow_worker.pid,
            "Celery worker": celery_worker.pid,
        }
        yield Bench(
            config_path, Config.load(str(config_path)), redis_server, celery_baseline.app, processes
        )


def server_pid(server: ServerProcess) -> int:
    process = getattr(server, "_process", None)
    return process.pid if process is not None else -1


# -- one run of each side ------------------------------------------------------------------
class RunFailed(RuntimeError):
    pass


def run_lightflow(bench: Bench, workflow: str) -> tuple[float, dict[str, float]]:
    """Seconds from submission to ``workflow_finished``, and where the time went."""
    events: list[Any] = []
    wall = time.time()
    began = time.perf_counter()
    run_id = api.start_workflow(str(WORKFLOWS / workflow), {}, config=bench.config)
    submitted = time.perf_counter()
    record = api.follow_events(
        config=bench.config, run_id=run_id, on_event=events.append, timeout=RUN_TIMEOUT
    )
    elapsed = time.perf_counter() - began
    if record is None or record.get("state") != "succeeded":
        state = (record or {}).get("state")
        raise RunFailed(f"Lightflow run of {workflow} ended {state}: {(record or {}).get('error')}")
    return elapsed, phases(events, wall, submitted - began, elapsed)


def phases(events: list[Any], wall: float, submit: float, total: float) -> dict[str, float]:
    """Split one run into phases by its event times (worker clocks = this host's)."""
    times: dict[str, list[float]] = {}
    for event in events:
        times.setdefault(event.kind.value, []).append(event.time)
    started = times.get("task_started", [])
    finished = times.get("task_succeeded", [])
    result = {"submit": submit}
    if "workflow_started" in times:
        result["to_workflow_started"] = times["workflow_started"][0] - wall - submit
    if started and finished:
        result["to_first_task"] = min(started) - wall - submit
        result["tasks"] = max(finished) - min(started)
        result["task_time_sum"] = sum(
            e.duration or 0.0 for e in events if e.kind.value == "task_succeeded"
        )
    if finished and "workflow_finished" in times:
        result["last_task_to_finished"] = times["workflow_finished"][0] - max(finished)
        result["finished_to_client"] = wall + total - times["workflow_finished"][0]
    # A plain chain: the gap between a task's end and its successor's start is one hop.
    by_task: dict[str, dict[str, float]] = {}
    for event in events:
        if event.task and event.kind.value in ("task_started", "task_succeeded"):
            by_task.setdefault(f"{event.dag}/{event.task}", {})[event.kind.value] = event.time
    ordered = sorted(by_task.values(), key=lambda t: t.get("task_started", 0.0))
    gaps = [
        b["task_started"] - a["task_succeeded"]
        for a, b in itertools.pairwise(ordered)
        if "task_succeeded" in a and "task_started" in b
    ]
    if gaps and min(gaps) > -0.001:  # tasks ran one after another (a chain)
        result["hop_median"] = statistics.median(gaps)
    return result


def run_celery(bench: Bench, make: Callable[[], None]) -> float:
    began = time.perf_counter()
    make()
    elapsed = time.perf_counter() - began
    bench.flush_celery_results()
    return elapsed


def celery_cases() -> dict[str, Callable[[], None]]:
    import celery_baseline as cb
    from celery import chain, chord, group

    def chain21() -> None:
        chain(*(cb.noop.s() for _ in range(21))).apply_async().get(timeout=RUN_TIMEOUT)

    def fanout() -> None:
        chain(
            cb.noop.s(), chord(group(cb.noop.s() for _ in range(100)), cb.noop.s())
        ).apply_async().get(timeout=RUN_TIMEOUT)

    def array() -> None:
        total = (
            chain(cb.make.s(), *(cb.add_one.s() for _ in range(3)), cb.check.s())
            .apply_async()
            .get(timeout=RUN_TIMEOUT)
        )
        if total != 5.0 * cb.SHAPE[0] * cb.SHAPE[1]:
            raise RunFailed(f"raw Celery array chain returned {total}")

    return {"chain": chain21, "fanout": fanout, "array": array}


def byte_compile_lightflow() -> None:
    """Byte-compile the installed lightflow package, as pip does when it installs a wheel.

    An editable install compiles on first import and caches the result, unless the
    environment sets PYTHONDONTWRITEBYTECODE: then every command would compile every
    module again (about 40 ms here), which is not what an installed Lightflow costs.
    """
    import compileall

    import lightflow

    compileall.compile_dir(Path(lightflow.__file__).parent, quiet=1)


def run_cli(bench: Bench, command: list[str]) -> float:
    """Wall time of ``lightflow workflow start``; then waits (untimed) for the run."""
    began = time.perf_counter()
    done = subprocess.run(
        [*command, "-c", str(bench.config_path), "workflow", "start", str(WORKFLOWS / "chain.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - began
    if done.returncode != 0:
        raise RunFailed(f"lightflow workflow start failed: {done.stderr.strip()}")
    run_id = done.stdout.strip().splitlines()[-1]
    api.follow_events(
        config=bench.config, run_id=run_id, on_event=lambda _e: None, timeout=RUN_TIMEOUT
    )
    return elapsed


def usage(bench: Bench, action: Callable[[], object]) -> dict[str, Any]:
    """Redis traffic and commands, and CPU seconds per process, of one run.

    Whole servers and workers are counted, so idle polling (Celery's BRPOP loop,
    Lightflow's lost-task sweeper) is included; it is small against a run.
    """
    redis_before, cpu_before = bench.redis_stats(), bench.cpu_seconds()
    began = time.perf_counter()
    action()
    elapsed = time.perf_counter() - began
    redis_after, cpu_after = bench.redis_stats(), bench.cpu_seconds()
    return {
        "seconds": elapsed,
        "redis": {key: redis_after[key] - redis_before[key] for key in redis_before},
        "cpu": {key: round(cpu_after[key] - cpu_before[key], 3) for key in cpu_before},
    }


# -- the benchmark -------------------------------------------------------------------------
def measure(
    bench: Bench,
    case: Case,
    repeat: int,
    celery: Callable[[], None] | None,
    say: Callable[[str], None],
) -> Result:
    result = Result(case.key, case.label)
    say(f"{case.label}: warm-up")
    if case.workflow is None:
        command = lightflow_command()
        byte_compile_lightflow()
        run_cli(bench, command)
        for i in range(repeat):
            result.lightflow.append(run_cli(bench, command))
            say(f"{case.label}: {i + 1}/{repeat} lightflow {result.lightflow[-1]:.3f} s")
    else:
        run_lightflow(bench, case.workflow)
        if celery is not None:
            run_celery(bench, celery)
        all_phases: list[dict[str, float]] = []
        for i in range(repeat):
            elapsed, split = run_lightflow(bench, case.workflow)
            result.lightflow.append(elapsed)
            all_phases.append(split)
            line = f"{case.label}: {i + 1}/{repeat} lightflow {elapsed:.3f} s"
            if celery is not None:
                result.celery.append(run_celery(bench, celery))
                line += f", celery {result.celery[-1]:.3f} s"
            say(line)
        keys = {k for split in all_phases for k in split}
        result.phases = {
            k: statistics.median(s[k] for s in all_phases if k in s) for k in sorted(keys)
        }
        # One more run of each side for its Redis traffic and CPU use (not timed).
        result.usage_lightflow = usage(bench, lambda: run_lightflow(bench, case.workflow))
        if celery is not None:
            result.usage_celery = usage(bench, lambda: celery())
            bench.flush_celery_results()

    light = statistics.median(result.lightflow)
    if case.ratio_target is not None and result.celery:
        result.ratio = light / statistics.median(result.celery)
        result.target = f"<= {case.ratio_target:g}x raw Celery"
        result.passed = result.ratio <= case.ratio_target
    elif case.seconds_target is not None:
        result.target = f"<= {case.seconds_target:g} s"
        result.passed = light <= case.seconds_target
    return result


PHASES = (
    "submit",
    "to_workflow_started",
    "to_first_task",
    "tasks",
    "task_time_sum",
    "hop_median",
    "last_task_to_finished",
    "finished_to_client",
)
CPU_COLUMNS = (
    ("Lightflow worker", 6),
    ("Celery worker", 6),
    ("redis-server", 6),
    ("secantus", 8),
    ("client (this script)", 6),
)
CPU_COLUMNS_TITLE = "LF-wkr Cy-wkr  redis secantus client"


def render(results: list[Result], header: str) -> str:
    lines = [header, ""]
    lines.append(
        f"{'workload':<28} {'Lightflow [s]':>15} {'raw Celery [s]':>15} "
        f"{'ratio':>6}  {'target':<20} {'result':<6}"
    )
    lines.append(f"{'':<28} {'median (min)':>15} {'median (min)':>15}")
    lines.append("-" * 97)
    for r in results:
        light = f"{statistics.median(r.lightflow):.3f} ({min(r.lightflow):.3f})"
        raw = f"{statistics.median(r.celery):.3f} ({min(r.celery):.3f})" if r.celery else "-"
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        verdict = "-" if r.passed is None else ("PASS" if r.passed else "MISS")
        lines.append(f"{r.label:<28} {light:>15} {raw:>15} {ratio:>6}  {r.target:<20} {verdict:<6}")
    lines.append("")
    lines.append(
        "For context (from the issue): Lightflow 1.x: chain "
        f"{REFERENCE_1X['chain']} s, fan-out {REFERENCE_1X['fanout']} s, array chain "
        f"{REFERENCE_1X['array']} s, store {REFERENCE_1X['store']} s, sub-DAGs "
        f"{REFERENCE_1X['subdags']} s;"
    )
    lines.append(
        "raw Celery measured earlier on this machine: chain "
        f"{RAW_CELERY_EARLIER['chain']} s, chord {RAW_CELERY_EARLIER['fanout']} s, "
        f"array chain {RAW_CELERY_EARLIER['array']} s."
    )

    lines.append("")
    lines.append(
        "Per run (one extra, untimed run of each side): Redis commands and traffic "
        "(whole server), CPU seconds per process (workers: all pool processes)"
    )
    lines.append(
        f"{'workload':<28} {'side':<10} {'wall [s]':>8} {'commands':>9} "
        f"{'in [MiB]':>9} {'out [MiB]':>9}  {'CPU [s]: ' + CPU_COLUMNS_TITLE}"
    )
    for r in results:
        for side, used in (("Lightflow", r.usage_lightflow), ("raw Celery", r.usage_celery)):
            if not used:
                continue
            stats, cpu = used["redis"], used["cpu"]
            cpu_cells = " ".join(f"{cpu.get(name, 0.0):>{width}.2f}" for name, width in CPU_COLUMNS)
            lines.append(
                f"{r.label:<28} {side:<10} {used['seconds']:>8.3f} "
                f"{stats['total_commands_processed']:>9} "
                f"{stats['total_net_input_bytes'] / 2**20:>9.2f} "
                f"{stats['total_net_output_bytes'] / 2**20:>9.2f}  {cpu_cells}"
            )
    array = next((r for r in results if r.key == "array"), None)
    if array is not None and array.usage_lightflow and array.usage_celery:
        per_hop = []
        for side, used in (
            ("Lightflow", array.usage_lightflow),
            ("raw Celery", array.usage_celery),
        ):
            stats = used["redis"]
            moved = stats["total_net_input_bytes"] + stats["total_net_output_bytes"]
            per_hop.append(f"{side} {moved / ARRAY_HOPS / 2**20:.1f} MiB")
        lines.append(
            f"array chain, bytes through Redis per hop (in + out, {ARRAY_HOPS} hops "
            f"of an 8 MiB array): {', '.join(per_hop)}"
        )

    lines.append("")
    lines.append("Lightflow phases (ms, median over the timed runs; from worker event times):")
    lines.append(
        "  submit: api.start_workflow; to_workflow_started / to_first_task: from its "
        "return; tasks: first task start to last task end;"
    )
    lines.append(
        "  task_time_sum: summed task durations (start event to end event); "
        "hop_median: a task's end event to the next task's start event;"
    )
    lines.append(
        "  last_task_to_finished: to the workflow_finished event; finished_to_client: "
        "from that event until follow_events returned."
    )
    for r in results:
        if r.phases:
            parts = ", ".join(f"{k} {r.phases[k] * 1000:.0f}" for k in PHASES if k in r.phases)
            lines.append(f"  {r.label}: {parts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat",
        type=int,
        default=5,
        metavar="N",
        help="timed runs per case after one warm-up (default 5)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        metavar="C",
        help="worker processes of each worker (default 2)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.concurrency < 1:
        parser.error("--repeat and --concurrency need positive numbers")

    def say(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    # SIGTERM ends the run like Ctrl-C, so the cluster is torn down either way.
    def terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)

    cases = [
        Case("chain", "chain of 21", "chain.py", ratio_target=2.0),
        Case("fanout", "fan-out 100 (chord)", "fanout.py", ratio_target=1.5),
        Case("array", "array chain (8 MiB x 5)", "array_chain.py", ratio_target=1.0),
        Case("store", "store: 10 tasks x 20 calls", "store_calls.py", seconds_target=1.0),
        Case("subdags", "5 sub-DAGs joined", "sub_dags.py", seconds_target=1.0),
        Case("start", "workflow start (CLI)", None, seconds_target=0.35),
    ]
    results: list[Result] = []
    try:
        say(f"starting redis-server, secantus and two workers (concurrency {args.concurrency})")
        with private_cluster(args.concurrency) as bench:
            baseline = celery_cases()
            for case in cases:
                results.append(measure(bench, case, args.repeat, baseline.get(case.key), say))
            say("stopping the cluster")
    except KeyboardInterrupt:
        print("interrupted; the private cluster was stopped", file=sys.stderr)
        return 130

    header = (
        f"Lightflow distributed engine vs raw Celery {celery_version()}, Python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPU(s), worker concurrency "
        f"{args.concurrency}, median (min) of {args.repeat} run(s) after a warm-up"
    )
    print(render(results, header))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "python": sys.version.split()[0],
                    "celery": celery_version(),
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "concurrency": args.concurrency,
                    "repeat": args.repeat,
                    "cli": " ".join(lightflow_command()),
                    "results": [r.to_dict() for r in results],
                    "reference_1x": REFERENCE_1X,
                    "raw_celery_earlier": RAW_CELERY_EARLIER,
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if all(r.passed is not False for r in results) else 1


def celery_version() -> str:
    import celery

    return celery.__version__


if __name__ == "__main__":
    sys.exit(main())
