"""Fixtures of the EPICS suite: real IOCs (pythonSoftIOC) on private loopback ports.

Channel Access and PV Access clients read their address settings once per process,
at their first call. So :func:`epics_environment` chooses the ports of every IOC the
session starts (one for the session's IOC, one for the IOC that tests stop and
start again, one for PV Access) and puts the client settings in the environment
before any test touches a PV; the subprocesses tests start (workers, ``lightflow
run``, ``lightflow epics watch``) inherit them. Every IOC listens on 127.0.0.1 only,
on its own port, so parallel sessions never answer each other's searches.

* ``ioc``: the session's IOC, Channel Access and PV Access (records: see ``ioc.py``).
* ``restartable_ioc``: a Channel Access IOC of its own for one test, which may stop
  and start it (same port, same records).
* ``epics_cluster``: a private cluster (its own Redis database and store database on
  the session's servers) whose worker has the EPICS settings; the shared
  ``redis_cluster`` worker may have been started before them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from lightflow.config import Config

from tests.cluster import Cluster
from tests.servers import ServerProcess

from .servers import Ioc, client_environment, free_udp_and_tcp_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "packages" / "lightflow-epics" / "examples"
WORKFLOWS = Path(__file__).resolve().parent / "workflows"
#: The Redis database of the EPICS suite's cluster (the core's clusters use 1 and 2).
CLUSTER_DATABASE = 8


@dataclass(frozen=True)
class EpicsPorts:
    """The ports the session's IOCs serve on."""

    ca: int
    restart_ca: int
    pva: int


@pytest.fixture(scope="session", autouse=True)
def epics_environment() -> Iterator[EpicsPorts]:
    """Choose the IOC ports and set the client settings before any CA or PVA call."""
    ports = EpicsPorts(free_udp_and_tcp_port(), free_udp_and_tcp_port(), free_udp_and_tcp_port())
    settings = client_environment([ports.ca, ports.restart_ca], ports.pva)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        yield ports


@pytest.fixture(scope="session")
def ioc(epics_environment: EpicsPorts) -> Iterator[Ioc]:
    """The session's IOC, with Channel Access and PV Access."""
    server = Ioc(epics_environment.ca, epics_environment.pva).start()
    yield server
    server.stop()


@pytest.fixture
def restartable_ioc(epics_environment: EpicsPorts) -> Iterator[Ioc]:
    """An IOC of the test's own, which it may stop, kill and start again."""
    server = Ioc(epics_environment.restart_ca).start()
    yield server
    server.stop()


def caput(pv: str, value: object) -> None:
    """Write a PV as an operator's tool would (pyepics, waiting for completion)."""
    import epics

    assert epics.caput(pv, value, wait=True, timeout=10) == 1, f"caput {pv} {value} failed"


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def lightflow(
    *args: str, config: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``lightflow [-c config] args...`` to its end; return its output."""
    options = ["-c", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "lightflow.cli", *options, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class Command:
    """A long-running ``lightflow`` command (``run``, ``epics watch``) in its own group."""

    def __init__(self, *args: str, config: Path | None = None) -> None:
        options = ["-c", str(config)] if config else []
        self._log = tempfile.NamedTemporaryFile(prefix="lightflow-epics-", suffix=".log")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lightflow.cli", *options, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        """Wait until the output holds ``text`` (fails with the output otherwise)."""
        if not wait_for(lambda: text in self.output() or self.process.poll() is not None, timeout):
            pytest.fail(f"no {text!r} within {timeout} s:\n{self.output()[-3000:]}")
        if text not in self.output():
            pytest.fail(f"exited ({self.process.returncode}) before {text!r}:\n{self.output()}")

    def interrupt(self, timeout: float = 30.0) -> tuple[int, float]:
        """Send SIGINT (Ctrl-C); return the exit code and the seconds it took to exit."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        return code, time.monotonic() - start

    def stop(self) -> None:
        """Whatever state it is in: end the whole group."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


@pytest.fixture
def command() -> Iterator[Callable[..., Command]]:
    """``command(*args, config=...)`` starts a long-running lightflow command, ended after."""
    started: list[Command] = []

    def start(*args: str, config: Path | None = None) -> Command:
        started.append(Command(*args, config=config))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def epics_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: ServerProcess,
    secantus_server: ServerProcess,
    epics_environment: EpicsPorts,
) -> Iterator[Cluster]:
    """A cluster of its own whose worker reaches the session's IOCs."""
    state_url = f"redis://{redis_server.address}/{CLUSTER_DATABASE}"
    config_path = tmp_path_factory.mktemp("epics-cluster") / "lightflow.cfg"
    config_path.write_text(
        yaml.safe_dump(
            {
                "workflows": [str(WORKFLOWS), str(EXAMPLES)],
                "celery": {"broker_url": state_url, "worker_concurrency": 3},
                "signal": {"url": state_url, "heartbeat_timeout": 6},
                "store": {
                    "uri": f"mongodb://{secantus_server.address}/",
                    "database": "lightflow_epics",
                },
            }
        )
    )
    cluster = Cluster(config_path, Config.load(str(config_path)), "redis")
    cluster.worker("epics", concurrency=3)
    yield cluster
    cluster.stop()
