"""The core distribution as a user installs it: a fresh venv, ``pip install``, the CLI.

The other suites run in the hatch test environment, which installs Lightflow editable
next to test tools. Those tools brought ``packaging`` (through hatchling), which hid a
dependency missing from ``packages/lightflow/pyproject.toml``: kombu's Redis transport
imports it, so after a clean ``pip install lightflow`` a worker on the default Redis
broker could not start. Here a new virtual environment (no system site packages) gets
the distribution non-editable, with its dependencies from the package registry
configured on this machine, and the tests run only that environment's ``lightflow``
script, in an environment stripped of this session's settings.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.cli import clean_environment
from tests.servers import ServerProcess, WorkerProcess

# pip may build the wheel and fetch every dependency on a fresh machine: minutes, not s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = ROOT / "packages" / "lightflow"
EXAMPLES = ROOT / "examples"
PIP_TIMEOUT = 600.0
REDIS_DATABASE = 5  # the cluster uses 1 and 2, the prune and state tests 7, 8, 11, 12


@dataclass
class UserInstall:
    """A virtual environment holding a plain ``pip install`` of the core distribution."""

    venv: Path
    env: dict[str, str]  # what a user's shell in the activated venv would pass on

    @property
    def lightflow(self) -> str:
        """The venv's own ``lightflow`` script (its shebang is the venv's interpreter)."""
        return str(self.venv / "bin" / "lightflow")

    def run(
        self, *args: str, cwd: Path, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``lightflow ARGS`` from the venv and capture its output as text."""
        return subprocess.run(
            [self.lightflow, *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def user_install(tmp_path_factory: pytest.TempPathFactory) -> UserInstall:
    """Create the venv and install the distribution once for the module."""
    folder = tmp_path_factory.mktemp("user-install")
    venv = folder / "venv"
    # From a venv (hatch's) `-m venv` builds on the base interpreter, so nothing of the
    # test environment's site-packages is visible in the new one.
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # pip keeps the real HOME: this machine's registry settings live in the user's pip
    # configuration. PYTHONPATH could put the repository's sources on the path.
    pip_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    pip = subprocess.run(
        [python, "-m", "pip", "install", "--no-input", str(DISTRIBUTION)],
        env=pip_env,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
        check=False,
    )
    if pip.returncode != 0:
        output = (pip.stdout + pip.stderr)[-4000:]
        pytest.fail(f"pip install {DISTRIBUTION} exited {pip.returncode}:\n{output}")
    home = folder / "home"  # no ~/.config/lightflow/lightflow.cfg of the user's
    home.mkdir()
    env = clean_environment(
        home,
        PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
    )
    install = UserInstall(venv, env)
    # Guard the premise: the tests must exercise the installed copy, not the sources.
    where = subprocess.run(
        [python, "-c", "import lightflow; print(lightflow.__file__)"],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    return install


def assert_branch_succeeded(output: str) -> None:
    """What the README promises for examples/branch.py: two lanes run, one is skipped.

    ``inspect_scan`` limits the run to the two lanes of the detectors with data, the
    tomography lane is skipped and ``summarise`` joins the others.
    """
    lines = output.splitlines()
    for task in ("inspect_scan", "integrate_saxs", "fit_fluorescence", "summarise"):
        assert any(f"branch/{task}" in line for line in lines), f"{task} missing:\n{output}"
    skipped = [line for line in lines if "branch/reconstruct_tomo" in line]
    assert skipped and all("skipped" in line for line in skipped), output
    assert "Workflow branch succeeded in " in output, output
    assert "4 succeeded, 1 skipped" in output, output


def test_quick_start_runs_the_branch_example(user_install: UserInstall) -> None:
    """README quick start, step 1: ``lightflow run examples/branch.py`` from the root."""
    result = user_install.run("run", "examples/branch.py", cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_branch_succeeded(result.stdout)
    # The tasks' own output: the lanes chosen from the scan's detectors, then the join.
    joined = "summarise: scan_0042 produced scan_0042_saxs.dat, scan_0042_xrf.h5"
    assert joined in result.stdout, result.stdout


@pytest.fixture
def cluster_config(
    tmp_path: Path, redis_server: ServerProcess, secantus_server: ServerProcess
) -> Path:
    """A lightflow.cfg on the session's servers, Redis as broker (the default kind)."""
    redis_url = f"redis://{redis_server.address}/{REDIS_DATABASE}"
    config = tmp_path / "lightflow.cfg"
    config.write_text(
        yaml.safe_dump(
            {
                "workflows": [str(EXAMPLES)],
                "celery": {"broker_url": redis_url, "worker_concurrency": 2},
                "signal": {"url": redis_url},
                "store": {
                    "uri": f"mongodb://{secantus_server.address}/",
                    "database": "lightflow_packaging",
                },
            }
        )
    )
    return config


@pytest.fixture
def venv_worker(
    user_install: UserInstall, cluster_config: Path, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A ``lightflow worker start`` of the venv, not started yet: starting it is part of
    the test. Whatever happens, teardown stops it (the whole process group)."""
    name = f"packaging-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(
        name,
        [user_install.lightflow, "-c", str(cluster_config), "worker", "start", "-n", name],
        env=user_install.env,
        cwd=tmp_path,  # not the repository: nothing there may shadow an installed module
        inherit_env=False,
    )
    yield worker
    worker.stop()  # pytest runs this after a failed test too


def test_worker_on_redis_runs_a_workflow(
    user_install: UserInstall, cluster_config: Path, venv_worker: WorkerProcess, tmp_path: Path
) -> None:
    """The cluster path: a venv worker on Redis runs ``workflow start branch --wait``.

    Without kombu's Redis dependencies (``packaging``) the worker exits before "ready.";
    the error then holds its traceback.
    """
    venv_worker.start(timeout=120)
    result = user_install.run(
        "-c", str(cluster_config), "workflow", "start", "branch", "--wait", cwd=tmp_path
    )
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nworker log:\n{venv_worker.log()[-3000:]}"
    )
    run_id = result.stdout.splitlines()[0]
    assert len(run_id) == 32 and run_id.isalnum(), result.stdout
    assert_branch_succeeded(result.stdout)
