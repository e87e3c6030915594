"""A private Lightflow cluster for end-to-end tests: Redis, SecantusDB, real workers.

:func:`start_cluster` writes a ``lightflow.cfg`` pointing at the session's private
servers and starts one ``lightflow worker start`` subprocess (default queues); tests
that need more (a dedicated queue, a worker to kill) start their own :class:`Worker`.
One cluster per broker kind serves the whole session, whichever suite asks first
(the core's end-to-end suite, the extensions' suites): see ``tests/conftest.py``.
RabbitMQ is used when a server answers on 5672 (each session gets its own virtual
host).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from lightflow import api
from lightflow.config import Config

from tests.servers import ServerProcess, WorkerProcess

WORKFLOWS = Path(__file__).parent / "distributed" / "workflows"
LIBRARY = Path(__file__).parent / "distributed" / "library"
RABBITMQ = ("127.0.0.1", 5672)


class Worker(WorkerProcess):
    """A ``lightflow worker start`` subprocess on the cluster's config."""

    def __init__(
        self, config_path: Path, name: str, queues: str = "workflow,dag,task", concurrency: int = 2
    ) -> None:
        self.node = f"{name}@{socket.gethostname()}"
        super().__init__(
            name,
            [
                sys.executable,
                "-m",
                "lightflow.cli",
                "-c",
                str(config_path),
                "worker",
                "start",
                "-n",
                self.node,
                "-q",
                queues,
                "--concurrency",
                str(concurrency),
            ],
        )

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children) at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Cluster:
    """What a test needs to drive the private cluster."""

    config_path: Path
    config: Config
    broker: str
    workers: list[Worker] = field(default_factory=list)
    vhost: str | None = None

    def worker(self, name: str, **kwargs: Any) -> Worker:
        worker = Worker(self.config_path, f"{name}-{uuid.uuid4().hex[:6]}", **kwargs).start()
        self.workers.append(worker)
        return worker

    def run(
        self,
        workflow: str,
        arguments: dict[str, str] | None = None,
        *,
        timeout: float = 60.0,
        keep_data: bool = False,
    ) -> tuple[dict[str, Any], list[Any]]:
        """Start a workflow, follow it to the end; return (final record, events).

        ``workflow`` is a file path, or the name of a file in ``tests/distributed/workflows``.
        """
        path = workflow if workflow.endswith(".py") else str(WORKFLOWS / f"{workflow}.py")
        run_id = api.start_workflow(path, arguments or {}, config=self.config, keep_data=keep_data)
        events: list[Any] = []
        record = api.follow_events(
            config=self.config, run_id=run_id, on_event=events.append, timeout=timeout
        )
        assert record is not None
        return record, events

    def store(self) -> Any:
        from lightflow.store.mongo import MongoDataStore

        return MongoDataStore(**self.config.store)

    def settings(self) -> dict[str, Any]:
        """The cluster's ``lightflow.cfg`` as a dict (a test may extend and write it)."""
        return yaml.safe_load(self.config_path.read_text())

    def write_config(
        self, path: Path, *, workflows: Iterable[Path] = (), **sections: Any
    ) -> Config:
        """Write a config file for this cluster's servers at ``path`` and load it.

        ``workflows`` are added to the cluster's workflow folders; ``sections`` replace
        or add whole sections (e.g. ``extensions={...}``, ``triggers=[...]``).
        """
        settings = self.settings()
        settings["workflows"] = [*settings["workflows"], *(str(p) for p in workflows)]
        settings.update(sections)
        path.write_text(yaml.safe_dump(settings))
        return Config.load(str(path))

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.vhost is not None:
            subprocess.run(
                ["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True, timeout=60
            )


def rabbitmq_vhost() -> str | None:
    """Create a private RabbitMQ virtual host, or None when RabbitMQ is not usable."""
    try:
        socket.create_connection(RABBITMQ, timeout=1).close()
    except OSError:
        return None
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    vhost = f"lightflow-test-{uuid.uuid4().hex[:8]}"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
        if subprocess.run([ctl, *args], capture_output=True, timeout=60).returncode:
            return None
    return vhost


def start_cluster(
    broker_kind: str, folder: Path, redis_server: ServerProcess, secantus_server: ServerProcess
) -> Cluster | None:
    """Write the config and start the first worker; ``None`` if the broker is not usable.

    Args:
        broker_kind: ``redis`` (the private Redis is the broker) or ``amqp`` (RabbitMQ).
        folder: Where the config file goes.
    """
    database = 1 if broker_kind == "redis" else 2
    state_url = f"redis://{redis_server.address}/{database}"
    vhost = None
    if broker_kind == "amqp":
        vhost = rabbitmq_vhost()
        if vhost is None:
            return None
        broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    else:
        broker = state_url
    config_path = folder / "lightflow.cfg"
    config_path.write_text(
        yaml.safe_dump(
            {
                "workflows": [str(WORKFLOWS)],
                "libraries": [str(LIBRARY)],
                "celery": {"broker_url": broker, "worker_concurrency": 2},
                "signal": {"url": state_url, "heartbeat_timeout": 6},
                "store": {
                    "uri": f"mongodb://{secantus_server.address}/",
                    "database": f"lightflow_e2e_{broker_kind}",
                },
            }
        )
    )
    cluster = Cluster(config_path, Config.load(str(config_path)), broker_kind, vhost=vhost)
    cluster.worker("main")
    return cluster
