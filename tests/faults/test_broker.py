"""The broker refuses the password, is down, or goes away: what ``lightflow worker``
commands and a running worker do.

Real servers throughout: a private redis-server with a password, the session's
RabbitMQ (where it runs) with a wrong password, a dead port, and a broker stopped
under a running worker.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.cluster import RABBITMQ, Worker
from tests.servers import ServerProcess, free_port, redis

from .conftest import Site, one_error_line

pytestmark = pytest.mark.slow

COMMANDS = (["worker", "start"], ["worker", "status"], ["worker", "stop", "--yes"])


@pytest.fixture(scope="module")
def guarded_redis() -> Iterator[ServerProcess]:
    """A redis-server that wants the password 'right'."""
    with redis(password="right") as server:
        yield server


def rabbitmq_runs() -> bool:
    try:
        socket.create_connection(RABBITMQ, timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_wrong_redis_broker_password_is_one_line_and_exit_1(
    site: Site, guarded_redis: ServerProcess, redis_server: ServerProcess, args: list[str]
) -> None:
    site.write_config(
        celery={"broker_url": f"redis://:wrong@{guarded_redis.address}/0"},
        signal={"url": f"redis://{redis_server.address}/5"},
    )
    error = one_error_line(site.lightflow(*args))
    assert error.startswith(
        f"Error: the broker at redis://:********@{guarded_redis.address}/0 refused the credentials"
    ), error


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_wrong_rabbitmq_password_is_one_line_and_exit_1(
    site: Site, redis_server: ServerProcess, args: list[str]
) -> None:
    if not rabbitmq_runs():
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    site.write_config(
        celery={"broker_url": "amqp://guest:wrong@127.0.0.1:5672//"},
        signal={"url": f"redis://{redis_server.address}/5"},
    )
    error = one_error_line(site.lightflow(*args))
    assert error.startswith(
        "Error: the broker at amqp://guest:********@127.0.0.1:5672// refused the credentials"
    ), error
    assert "ACCESS_REFUSED" in error


def test_worker_start_with_the_broker_down_refuses_within_the_connect_timeout(
    site: Site, redis_server: ServerProcess
) -> None:
    port = free_port()
    site.write_config(
        celery={"broker_url": f"redis://127.0.0.1:{port}/0", "broker_connection_timeout": 2},
        signal={"url": f"redis://{redis_server.address}/5"},
    )
    started = time.monotonic()
    error = one_error_line(site.lightflow("worker", "start"))
    assert time.monotonic() - started < 30  # Celery's own default: retries for hours
    assert error.startswith(f"Error: cannot reach the broker at redis://127.0.0.1:{port}/0")


def test_a_broker_host_that_says_nothing_is_refused_within_the_timeout(
    site: Site, redis_server: ServerProcess
) -> None:
    """A host that accepts the connection and never answers (a half-dead server)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        site.write_config(
            celery={"broker_url": f"redis://127.0.0.1:{port}/0", "broker_connection_timeout": 2},
            signal={"url": f"redis://{redis_server.address}/5"},
        )
        for args in (["worker", "start"], ["worker", "status"]):
            started = time.monotonic()
            error = one_error_line(site.lightflow(*args))
            assert time.monotonic() - started < 30, args
            assert error.count("cannot reach the broker") == 1, error  # said once


def test_wait_for_broker_waits_logging_each_try_then_starts(
    site: Site, redis_server: ServerProcess
) -> None:
    port = free_port()
    path = site.write_config(
        celery={"broker_url": f"redis://127.0.0.1:{port}/0", "worker_concurrency": 1},
        signal={"url": f"redis://{redis_server.address}/5"},
    )
    worker = Worker(path, "patient")
    worker.cmd.append("--wait-for-broker")
    worker.process = subprocess.Popen(
        worker.cmd,
        stdout=worker._log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=worker.env,
    )
    try:
        worker.wait_for_log("waiting for the broker (try 2)", timeout=60)
        assert "Traceback" not in worker.log()
        with redis(port):
            worker.wait_for_log("ready.", timeout=60)
            assert "the broker at" in worker.log() and "answered" in worker.log()
    finally:
        worker.stop()


def test_a_worker_that_celery_gives_up_on_exits_non_zero(
    site: Site, redis_server: ServerProcess
) -> None:
    """Celery ends a worker that lost its broker when told not to retry: a service
    manager must see a failure, not a clean exit."""
    with redis() as broker:
        path = site.write_config(
            celery={"broker_url": f"redis://{broker.address}/0", "broker_connection_retry": False},
            signal={"url": f"redis://{redis_server.address}/5"},
        )
        worker = Worker(path, "fragile").start()
        try:
            broker.stop()
            assert worker.process is not None
            status = worker.process.wait(60)
        finally:
            worker.stop()
    assert status != 0
    assert "Error: the worker stopped with exit status" in worker.log()
