"""Real servers for tests: start a server process on a free port, stop it afterwards.

Tests talk to real servers (SecantusDB for MongoDB, later redis-server) rather than
mocks, so the helpers here own their life cycle: :class:`ServerProcess` starts any
server command, waits until its port accepts connections (bounded, with the server's
own output in the error), and terminates it on exit (terminate, wait 5 s, kill).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    The OS picks the port; another process could take it before the server binds it,
    which is rare enough for tests and shows up as a clear start error.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server subprocess listening on ``HOST:port``; use it as a context manager.

    Args:
        cmd: The command line that starts the server in the foreground on ``port``.
        port: The port the command makes the server listen on.
        name: What the server is, for error messages (e.g. ``'secantus'``).
        startup_timeout: Seconds to wait for the port to accept connections.
    """

    def __init__(
        self, cmd: Sequence[str], port: int, name: str, *, startup_timeout: float = 20.0
    ) -> None:
        self.cmd = list(cmd)
        self.port = port
        self.name = name
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # A file rather than a pipe: a chatty server must never block on a full pipe.
        self._log = tempfile.TemporaryFile()

    @property
    def host(self) -> str:
        """The host the server listens on."""
        return HOST

    @property
    def address(self) -> str:
        """``host:port`` of the server."""
        return f"{HOST}:{self.port}"

    def start(self) -> ServerProcess:
        """Start the server and return once it accepts connections.

        Raises:
            RuntimeError: The server exited or did not listen within ``startup_timeout``;
                the message holds the end of its output.
        """
        self._process = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self._process.returncode} before "
                    f"listening on {self.address}: {self.output()[-2000:]}"
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        message = (
            f"{self.name} did not listen on {self.address} within {self.startup_timeout} s: "
            f"{self.output()[-2000:]}"
        )
        self.stop()
        raise RuntimeError(message)

    def stop(self) -> None:
        """Terminate the server (kill it if it has not exited after 5 s)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        self._log.close()


def secantus(port: int | None = None, *, auth: bool = False) -> ServerProcess:
    """A SecantusDB server (MongoDB wire protocol) with ephemeral in-memory storage.

    Args:
        port: Port to listen on; a free one if ``None``.
        auth: Require authentication (no users exist, so every login fails).
    """
    port = free_port() if port is None else port
    cmd = [sys.executable, "-m", "secantus", "--host", HOST, "--port", str(port)]
    cmd += ["--storage-path", ":memory:", "--log-level", "WARNING"]
    if auth:
        cmd.append("--auth")
    return ServerProcess(cmd, port, "secantus")


def redis(
    port: int | None = None, *, password: str | None = None, append_only: Path | None = None
) -> ServerProcess:
    """A private redis-server that keeps nothing on disk, unless asked to.

    Args:
        port: Port to listen on; a free one if ``None``.
        password: Require this password (``requirepass``).
        append_only: A folder for an append-only file (``appendonly yes``, written
            every second), so a server stopped and started again on it (on the same
            port: :meth:`ServerProcess.start` once more) has its data back, as a
            state server set up as docs/cluster.md says would.
    """
    port = free_port() if port is None else port
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no" if append_only is None else "yes",
        "--protected-mode",
        "no",
    ]
    if append_only is not None:
        cmd += ["--dir", str(append_only), "--appendfsync", "everysec"]
    if password:
        cmd += ["--requirepass", password]
    return ServerProcess(cmd, port, "redis-server")


class WorkerProcess:
    """A worker subprocess in its own process group, ready once it logs "ready.".

    Args:
        name: What the worker is, for its log file and error messages.
        cmd: The command line that runs the worker in the foreground.
        env: Variables added to this process's environment for the worker.
        cwd: The worker's working directory (this process's when ``None``).
        inherit_env: ``False`` runs the worker with ``env`` alone instead, for a worker
            that must not see this process's settings (e.g. one from another virtual
            environment, without this one's ``LIGHTFLOW_*`` or ``PYTHONPATH``).
    """

    def __init__(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        inherit_env: bool = True,
    ) -> None:
        self.name = name
        self.cmd = cmd
        base = os.environ if inherit_env else {}
        self.env = {**base, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        self.process = subprocess.Popen(
            self.cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=self.env,
            cwd=self.cwd,
        )
        try:
            self.wait_for_log("ready.", timeout)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"worker {self.name} did not start:\n{self.log()[-3000:]}") from None
        return self

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        """Wait until the worker's output holds ``text``.

        Raises:
            RuntimeError: Not within ``timeout`` seconds, or the worker exited first;
                the message holds the end of its output.
        """
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"worker {self.name} did not log {text!r}:\n{self.log()[-3000:]}"
                )
            time.sleep(0.1)

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    @property
    def pid(self) -> int:
        """The main process, which leads the worker's process group."""
        return self.process.pid if self.process is not None else -1

    def stop(self) -> None:
        """SIGTERM the whole group (warm shutdown), SIGKILL what is left after 15 s."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                pass
        # Pool children outlive a main process that died hard: clear the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
