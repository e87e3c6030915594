"""EPICS benchmark: from a ``caput`` to the code that reacts, and what an idle trigger costs.

Starts a private IOC (``tests/epics/ioc.py``: pythonSoftIOC serving Channel Access and
PV Access on free loopback ports) and points this process and its children at it
(``EPICS_CA_ADDR_LIST``...). Every value is written from this process with pyepics, as
an operator's ``caput`` would; times are taken with ``time.time()`` on both sides (one
machine, one clock). Cases:

* **caput -> source event**: a :class:`~lightflow_epics.PvSource` in this process, one
  for ``PV`` (Channel Access) and one for ``pva://PV`` (PV Access through p4p): the
  time until it emits the update. Target: median <= 5 ms.
* **caput -> PvTriggerTask callback**: ``workflows/pv_callback.py`` under ``lightflow
  run`` (the 1.x task on the embedded engine, another process): the time until the
  callback begins. Target: median <= 5 ms.
* **caput -> first task**: a ``lightflow epics watch`` process starting
  ``workflows/pv_record.py``, whose task records ``time.time()`` at its start: on a
  private cluster (redis-server, SecantusDB, one worker of concurrency 2, started here;
  target: median <= 100 ms) and on the embedded engine (each run in a process of its
  own; for comparison).
* **idle CPU**: the CPU time (all processes of each) of the idle ``lightflow run`` of
  the PvTriggerTask and of the idle ``lightflow epics watch`` over ``--idle`` seconds,
  as a share of one core. 1.x spun a core at 100% here.

Everything started is stopped at the end, also on errors and Ctrl-C.

Run it:  hatch run bench:python benchmarks/bench_epics.py   or
         python benchmarks/bench_epics.py [--samples 200] [--runs 30] [--idle 60] [--no-cluster]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import Latency, private_cluster, read_records, wait_until  # puts REPO on sys.path

from tests.epics.servers import Ioc, client_environment, free_udp_and_tcp_port

BENCH = Path(__file__).resolve().parent
RECORD_WORKFLOW = BENCH / "workflows" / "pv_record.py"
CALLBACK_WORKFLOW = BENCH / "workflows" / "pv_callback.py"

TARGETS = {"source": 0.005, "callback": 0.005, "cluster": 0.100}


@dataclass
class Idle:
    label: str
    seconds: float
    cpu: float

    @property
    def share(self) -> float:
        return self.cpu / self.seconds


# -- processes ---------------------------------------------------------------------------------
class Command:
    """A long-running ``lightflow`` command (``run``, ``epics watch``) with its log."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        self._log = open(log, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lightflow.cli", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.log.name} ended:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and every process below it."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += times.get(current, 0.0)
        todo.extend(children.get(current, []))
    return total


# -- cases -------------------------------------------------------------------------------------
def put(pv: str, value: float) -> float:
    """Write ``value`` (no waiting for completion); return ``time.time()`` just before."""
    import epics

    sent = time.time()
    epics.caput(pv, value)
    return sent


def measure_source(pv: str, label: str, samples: int, pause: float, start: float) -> Latency:
    """caput -> PvSource event, in this process."""
    from lightflow_epics import PvSource

    arrived: dict[float, float] = {}
    connected = threading.Event()
    source = PvSource(pv, skip_initial=False)
    source.start(lambda event: (arrived.__setitem__(event.values["value"], time.time()),
                                connected.set()))  # fmt: skip
    try:
        if not connected.wait(30):
            raise RuntimeError(f"{pv} did not connect")
        sent: dict[float, float] = {}
        for index in range(samples):
            value = start + index
            sent[value] = put(pv.removeprefix("pva://"), value)
            wait_until(lambda v=value: v in arrived, 10, "the PV's reaction")
            time.sleep(pause)
    finally:
        source.stop()
    return Latency("source", label, [arrived[value] - sent[value] for value in sent])


def measure_runs(
    record: Path, command: Command, pv: str, count: int, pause: float, start: float,
    case: str, label: str, key: str,
) -> Latency:  # fmt: skip
    """caput -> a record line (a callback, or a run's first task) for ``count`` values."""
    # the watch is on
    wait_until(lambda: bool(read_records(record)), 120, "the PV's reaction", check=command.check)
    sent: dict[float, float] = {}
    for index in range(count):
        value = start + index
        sent[value] = put(pv, value)
        wait_until(
            lambda v=value: any(entry["value"] == v for entry in read_records(record)),
            60,
            "the PV's reaction",
            check=command.check,
        )
        time.sleep(pause)
    reacted = {entry["value"]: entry[key] for entry in read_records(record)}
    return Latency(case, label, [reacted[value] - sent[value] for value in sent])


def measure_idle(commands: dict[str, Command], seconds: float) -> list[Idle]:
    """CPU over ``seconds`` of each command, all measured over the same interval."""
    time.sleep(2.0)  # what the last measured update set off is over
    before = {label: cpu_seconds(command.process.pid) for label, command in commands.items()}
    began = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - began
    for command in commands.values():
        command.check()
    return [
        Idle(label, took, cpu_seconds(command.process.pid) - before[label])
        for label, command in commands.items()
    ]


# -- report ------------------------------------------------------------------------------------
def render(latencies: list[Latency], idle: list[Idle], header: str) -> str:
    lines = [header, ""]
    lines.append(f"{'case':<40}{'median':>10}{'p95':>10}{'target':>12}  result")
    for latency in latencies:
        target = TARGETS.get(latency.case)
        shown = f"<= {target * 1000:g} ms" if target else "-"
        result = "" if target is None else ("ok" if latency.median <= target else "MISSED")
        lines.append(
            f"{latency.label:<40}{latency.median * 1000:>8.2f}ms{latency.p95 * 1000:>8.2f}ms"
            f"{shown:>12}  {result} ({len(latency.samples)} samples)"
        )
    if idle:
        lines.append("")
        lines.append(f"{'idle for':<40}{'CPU':>10}{'of a core':>12}")
        for entry in idle:
            lines.append(
                f"{entry.label + f', {entry.seconds:.0f} s':<40}{entry.cpu:>9.2f}s"
                f"{entry.share * 100:>11.2f}%"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="puts per in-process case (200)")
    parser.add_argument("--runs", type=int, default=30, help="puts per run-starting case (30)")
    parser.add_argument(
        "--pause", type=float, default=0.05, help="seconds between puts, in-process (0.05)"
    )
    parser.add_argument(
        "--run-pause",
        type=float,
        default=1.0,
        help="seconds between puts that start runs (1.0: the embedded engine has its next "
        "run's process ready again)",
    )
    parser.add_argument("--idle", type=float, default=60.0, help="idle seconds measured (60)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the cluster case")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    def terminate(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    ca_port, pva_port = free_udp_and_tcp_port(), free_udp_and_tcp_port()
    os.environ.update(client_environment([ca_port], pva_port))  # before any CA or PVA call
    latencies: list[Latency] = []
    idle: list[Idle] = []

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        with contextlib.ExitStack() as stack:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-epics-")))
            progress("starting the IOC")
            ioc = Ioc(ca_port, pva_port).start()
            stack.callback(ioc.stop)
            pv = ioc.pv("AO")
            progress("caput -> source event (CA, PVA)")
            latencies.append(measure_source(pv, "caput -> source event, CA", args.samples,
                                             args.pause, 1_000))  # fmt: skip
            latencies.append(measure_source("pva://" + pv, "caput -> source event, PVA",
                                            args.samples, args.pause, 2_000))  # fmt: skip

            progress("caput -> PvTriggerTask callback (lightflow run)")
            callbacks = scratch / "callbacks.jsonl"
            run = Command(scratch / "run.log", "run", str(CALLBACK_WORKFLOW),
                          f"pvname={pv}", f"record={callbacks}")  # fmt: skip
            stack.callback(run.stop)
            latencies.append(measure_runs(callbacks, run, pv, args.samples, args.pause, 3_000,
                                          "callback", "caput -> PvTriggerTask callback",
                                          "called"))  # fmt: skip

            progress("caput -> first task, embedded engine (lightflow epics watch)")
            (scratch / "embedded.cfg").write_text("{}\n")
            starts = scratch / "embedded.jsonl"
            watch = Command(scratch / "watch.log", "-c", str(scratch / "embedded.cfg"),
                            "epics", "watch", pv, "--no-skip-initial", "--workflow",
                            str(RECORD_WORKFLOW), "--arg", f"record={starts}", "--embedded",
                            "--state-dir", str(scratch / "state"))  # fmt: skip
            stack.callback(watch.stop)
            latencies.append(measure_runs(starts, watch, pv, args.runs, args.run_pause, 4_000,
                                          "embedded", "caput -> first task, embedded",
                                          "started"))  # fmt: skip

            if args.idle > 0:
                progress(f"idle CPU over {args.idle:g} s")
                idle = measure_idle(
                    {"lightflow run (PvTriggerTask)": run, "lightflow epics watch": watch},
                    args.idle,
                )
            run.stop()
            watch.stop()

            if not args.no_cluster:
                progress("caput -> first task, cluster (starting redis, secantus, a worker)")
                folder = scratch / "cluster"
                folder.mkdir()
                config = stack.enter_context(private_cluster(folder, "epics"))
                starts = folder / "cluster.jsonl"
                watch = Command(folder / "watch.log", "-c", str(config), "epics", "watch", pv,
                                "--no-skip-initial", "--workflow", str(RECORD_WORKFLOW),
                                "--arg", f"record={starts}", "--cluster")  # fmt: skip
                stack.callback(watch.stop)
                latencies.append(measure_runs(starts, watch, pv, args.runs, args.run_pause, 5_000,
                                              "cluster", "caput -> first task, cluster",
                                              "started"))  # fmt: skip
    except KeyboardInterrupt:
        progress("interrupted; everything started was stopped")
        return 130
    header = (
        f"lightflow-epics, Python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), "
        f"puts {args.pause:g} s apart ({args.run_pause:g} s when they start runs)"
    )
    print(render(latencies, idle, header))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "latency": {
                        lat.label: {"median": lat.median, "p95": lat.p95, "samples": lat.samples}
                        for lat in latencies
                    },
                    "idle": {
                        entry.label: {"seconds": entry.seconds, "cpu": entry.cpu} for entry in idle
                    },
                },
                indent=2,
            )
        )
    missed = any(lat.case in TARGETS and lat.median > TARGETS[lat.case] for lat in latencies)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
