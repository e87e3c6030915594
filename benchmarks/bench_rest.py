"""REST benchmark: the lightflow-rest server as clients meet it, on a private cluster.

Starts a private redis-server and SecantusDB on free ports, one Lightflow worker and
a real ``lightflow rest serve`` process (gunicorn, one process), then measures over
plain HTTP (the standard library's client, keep-alive connections):

* start: ``POST /api/v2/runs`` of a one-task workflow until the run id is back, one
  request at a time on a warm connection (p50/p95; target p50 <= 20 ms);
* task end -> SSE: a client follows ``GET /api/v2/events``; for each run, the time
  from a task's end (the ``time`` its worker recorded in the event) to the moment the
  client has parsed that event (p50/p95; target p50 <= 100 ms);
* 100 streams: ``--clients`` clients follow ``/api/v2/events`` for ``--hold``
  seconds while runs are started; every client must receive every event of those
  runs, in order (the events of each run's history are the reference);
* run list: ``GET /api/v2/runs?limit=100`` from 8 threads for 10 s (requests/s).

Everything started is stopped at the end, also on errors and Ctrl-C. Prints a table.

Run it:  hatch run bench:python benchmarks/bench_rest.py [--starts 200] [--clients 100] [--hold 60]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness import percentile, private_cluster  # puts REPO on sys.path

from tests.servers import ServerProcess, free_port

BENCH = Path(__file__).resolve().parent
WORKFLOWS = BENCH / "workflows"
TOKEN = secrets.token_urlsafe(32)


class Client:
    """One keep-alive HTTP connection to the server, with the token."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


class Follower(threading.Thread):
    """Follows ``/api/v2/events``: every event with the time it was parsed here."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.connection.request(
            "GET", "/api/v2/events", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.read()
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.start()

    def run(self) -> None:
        data: list[str] = []
        try:
            while True:
                line = self.response.fp.readline()
                if not line:
                    return
                text = line.decode().rstrip("\n")
                if text.startswith(":"):
                    self.ready.set()
                elif text.startswith("data: "):
                    data.append(text[6:])
                elif text == "" and data:
                    self.events.append((time.time(), json.loads("\n".join(data))))
                    data = []
        except (OSError, ValueError, AttributeError):
            return  # closed at the end

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.sock.shutdown(2)  # type: ignore[union-attr]
        self.connection.close()


@contextlib.contextmanager
def private_server(concurrency: int) -> Iterator[int]:
    """Redis, SecantusDB, a worker and ``lightflow rest serve``; yields the server's port."""
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rest-")))
        settings = {
            "workflows": [str(WORKFLOWS)],
            "extensions": {
                "rest": {
                    "tokens": [{"token_env": "BENCH_REST_TOKEN", "role": "operate"}],
                    "threads": 256,
                }
            },
        }
        config = stack.enter_context(
            private_cluster(folder, "rest", concurrency=concurrency, settings=settings)
        )
        port = free_port()
        server = ServerProcess(
            ["env", f"BENCH_REST_TOKEN={TOKEN}", sys.executable, "-m", "lightflow.cli",
             "-c", str(config), "rest", "serve", "--port", str(port)],
            port,
            "lightflow rest serve",
            startup_timeout=60,
        )  # fmt: skip
        stack.enter_context(server)
        yield port


def measure_starts(port: int, count: int) -> list[float]:
    client = Client(port)
    for _ in range(10):  # warm: connections, the workflow file in the OS cache
        client.call("POST", "/api/v2/runs", {"workflow": "rest_noop"})
    times = []
    for _ in range(count):
        started = time.perf_counter()
        status, body = client.call("POST", "/api/v2/runs", {"workflow": "rest_noop"})
        times.append(time.perf_counter() - started)
        assert status == 201, body
    return times


def wait_until_idle(port: int, timeout: float = 300) -> None:
    client = Client(port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = [
            run
            for state in ("queued", "running")
            for run in client.call("GET", f"/api/v2/runs?state={state}&limit=1000")[1]["runs"]
        ]
        if not busy:
            return
        time.sleep(0.5)
    raise RuntimeError("runs did not finish")


def measure_sse_latency(port: int, runs: int) -> list[float]:
    follower = Follower(port)
    follower.ready.wait(30)
    client = Client(port)
    ids = []
    for _ in range(runs):
        ids.append(client.call("POST", "/api/v2/runs", {"workflow": "rest_noop"})[1]["id"])
        time.sleep(0.2)  # one at a time: the latency of an idle path, not of a queue
    wait_until_idle(port)
    time.sleep(1)
    follower.close()
    latencies = [
        received - event["time"]
        for received, event in follower.events
        if event["workflow_id"] in ids and event["kind"] == "task_succeeded"
    ]
    assert len(latencies) == runs, f"{len(latencies)} task events for {runs} runs"
    return latencies


def measure_many_streams(port: int, clients: int, hold: float) -> dict[str, Any]:
    followers = [Follower(port) for _ in range(clients)]
    for follower in followers:
        follower.ready.wait(60)
    client = Client(port)
    ids = []
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:
        ids.append(client.call("POST", "/api/v2/runs", {"workflow": "rest_noop"})[1]["id"])
        time.sleep(0.5)
    wait_until_idle(port)
    time.sleep(2)
    expected = {}
    for run_id in ids:
        detail = client.call("GET", f"/api/v2/runs/{run_id}")[1]
        expected[run_id] = sum(2 + 2 * len(dag["tasks"]) for dag in detail["dags"]) + 2
    lost = 0
    disordered = 0
    for follower in followers:
        follower.close()
        counts: dict[str, int] = {}
        for _received, event in follower.events:
            if event["workflow_id"] in expected:
                counts[event["workflow_id"]] = counts.get(event["workflow_id"], 0) + 1
        lost += sum(max(0, total - counts.get(run_id, 0)) for run_id, total in expected.items())
        keys = [tuple(int(p) for p in event["id"].split("-")) for _r, event in follower.events]
        disordered += keys != sorted(keys)
    return {
        "clients": clients,
        "seconds": hold,
        "runs": len(ids),
        "events_per_client": sum(expected.values()),
        "lost": lost,
        "out_of_order_clients": disordered,
    }


def measure_run_list(port: int, threads: int = 8, seconds: float = 10.0) -> dict[str, float]:
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def hammer(index: int) -> None:
        client = Client(port)
        while time.monotonic() < stop:
            started = time.perf_counter()
            status, body = client.call("GET", "/api/v2/runs?limit=100")
            latencies[index].append(time.perf_counter() - started)
            assert status == 200, body
            counts[index] += 1

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    every = [value for values in latencies for value in values]
    recorded = len(Client(port).call("GET", "/api/v2/runs?limit=1000")[1]["runs"])
    return {
        "rps": sum(counts) / seconds,
        "p50": statistics.median(every),
        "threads": threads,
        "runs": recorded,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=200, help="timed start requests")
    parser.add_argument("--sse-runs", type=int, default=50, help="runs timed for task end -> SSE")
    parser.add_argument("--clients", type=int, default=100, help="streams held open at once")
    parser.add_argument("--hold", type=float, default=60.0, help="seconds the streams are held")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    args = parser.parse_args(argv)
    print(f"lightflow-rest benchmark on {os.cpu_count()} CPUs; starting the private cluster...")
    with private_server(args.concurrency) as port:
        starts = measure_starts(port, args.starts)
        wait_until_idle(port)
        sse = measure_sse_latency(port, args.sse_runs)
        streams = measure_many_streams(port, args.clients, args.hold)
        listing = measure_run_list(port)
    ms = 1000.0
    rows = [
        (
            "start request -> run id",
            f"p50 {statistics.median(starts) * ms:.1f} ms",
            f"p95 {percentile(starts, 0.95) * ms:.1f} ms",
            "p50 <= 20 ms",
            statistics.median(starts) <= 0.020,
        ),
        (
            "task end -> its SSE event",
            f"p50 {statistics.median(sse) * ms:.1f} ms",
            f"p95 {percentile(sse, 0.95) * ms:.1f} ms",
            "p50 <= 100 ms",
            statistics.median(sse) <= 0.100,
        ),
        (
            f"{streams['clients']} SSE clients held {streams['seconds']:g} s",
            f"{streams['runs']} runs, {streams['events_per_client']} events each",
            f"lost {streams['lost']}, out of order {streams['out_of_order_clients']}",
            "no event lost",
            streams["lost"] == 0 and streams["out_of_order_clients"] == 0,
        ),
        (
            f"run list (limit=100 of {listing['runs']})",
            f"{listing['rps']:.0f} requests/s",
            f"p50 {listing['p50'] * ms:.1f} ms ({listing['threads']} threads)",
            "",
            None,
        ),
    ]
    width = max(len(row[0]) for row in rows)
    print(f"\n{'measure':<{width}}  {'result':<34}  {'':<34}  target")
    for name, first, second, target, passed in rows:
        mark = "" if passed is None else (" (met)" if passed else " (MISSED)")
        print(f"{name:<{width}}  {first:<34}  {second:<34}  {target}{mark}")
    return 0 if all(row[4] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
