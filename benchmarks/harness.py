"""What the extension benchmarks share: a private cluster, record files, waiting, figures.

``bench_filesystem.py``, ``bench_epics.py`` and ``bench_rest.py`` start the same
private cluster (:func:`private_cluster`: redis-server, SecantusDB and one Lightflow
worker, on free ports, all stopped on the way out), read what the benchmark
workflows append to a record file (:func:`read_records`, one JSON object a line),
poll for what they wait on (:func:`wait_until`) and report medians and percentiles
the same way (:class:`Latency`, :func:`percentile`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:  # tests.servers: the private servers
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from tests.servers import WorkerProcess, redis, secantus  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@dataclass
class Latency:
    """The samples of one case: ``case`` picks its target, ``label`` is its row."""

    case: str
    label: str
    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 0.95)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON lines a benchmark workflow appended to ``path`` (none yet: ``[]``)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    interval: float = 0.002,
    check: Callable[[], None] = lambda: None,
) -> None:
    """Poll ``condition`` every ``interval`` s, calling ``check`` (which may raise) too.

    Raises:
        RuntimeError: ``timeout`` seconds passed: "timed out waiting for ``what``".
    """
    deadline = time.monotonic() + timeout
    while not condition():
        check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def private_cluster(
    folder: Path, name: str, *, concurrency: int = 2, settings: dict[str, Any] | None = None
) -> Iterator[Path]:
    """redis-server, SecantusDB and one worker; yields the cluster's config file.

    Args:
        folder: Where the config file goes.
        name: The benchmark's name: the store's database ``bench_NAME``, the worker
            ``bench-NAME@host``.
        concurrency: The worker's processes.
        settings: More sections of the config file (``workflows``, ``extensions``).
    """
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(redis())
        mongo = stack.enter_context(secantus())
        url = f"redis://{redis_server.address}/1"
        config = folder / "lightflow.cfg"
        config.write_text(
            yaml.safe_dump(
                {
                    **(settings or {}),
                    "celery": {"broker_url": url},
                    "signal": {"url": url},
                    "store": {"uri": f"mongodb://{mongo.address}/", "database": f"bench_{name}"},
                }
            )
        )
        worker = WorkerProcess(
            f"{name}-worker",
            [sys.executable, "-m", "lightflow.cli", "-c", str(config), "worker", "start",
             "-n", f"bench-{name}@{socket.gethostname()}", "--concurrency", str(concurrency)],
        )  # fmt: skip
        stack.callback(worker.stop)
        worker.start()
        yield config
