"""The core distribution as a user installs it: a fresh venv, ``pip install``, the CLI.

The other suites run in the hatch test environment, which installs Lightflow editable
next to test tools. Those tools brought ``packaging`` (through hatchling), which hid a
dependency missing from ``packages/lightflow/pyproject.toml``: kombu's Redis transport
imports it, so after a clean ``pip install lightflow`` a worker on the default Redis
broker could not start. Here the core alone is installed into a new virtual
environment by the README's own command, ``pip install ./packages/lightflow``
(``core_install``, see ``conftest.py``), and the tests run only that environment's
``lightflow`` script.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.servers import ServerProcess, WorkerProcess

from .wheels import ROOT, Install, assert_extensions

# pip may fetch every dependency on a fresh machine: minutes, not seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXAMPLES = ROOT / "examples"
REDIS_DATABASE = 5  # the cluster uses 1 and 2, the prune and state tests 7, 8, 11, 12


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


def test_the_core_alone_has_no_extensions(core_install: Install) -> None:
    assert_extensions(core_install, [])


def test_quick_start_runs_the_branch_example(core_install: Install) -> None:
    """README quick start, step 1: ``lightflow run examples/branch.py`` from the root."""
    result = core_install.run("run", "examples/branch.py", cwd=ROOT)
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
    core_install: Install, cluster_config: Path, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """A ``lightflow worker start`` of the venv, not started yet: starting it is part of
    the test. Whatever happens, teardown stops it (the whole process group)."""
    name = f"packaging-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(
        name,
        [core_install.lightflow, "-c", str(cluster_config), "worker", "start", "-n", name],
        env=core_install.env,
        cwd=tmp_path,  # not the repository: nothing there may shadow an installed module
        inherit_env=False,
    )
    yield worker
    worker.stop()  # pytest runs this after a failed test too


def test_worker_on_redis_runs_a_workflow(
    core_install: Install, cluster_config: Path, venv_worker: WorkerProcess, tmp_path: Path
) -> None:
    """The cluster path: a venv worker on Redis runs ``workflow start branch --wait``.

    Without kombu's Redis dependencies (``packaging``) the worker exits before "ready.";
    the error then holds its traceback.
    """
    venv_worker.start(timeout=120)
    result = core_install.run(
        "-c", str(cluster_config), "workflow", "start", "branch", "--wait", cwd=tmp_path
    )
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nworker log:\n{venv_worker.log()[-3000:]}"
    )
    run_id = result.stdout.splitlines()[0]
    assert len(run_id) == 32 and run_id.isalnum(), result.stdout
    assert_branch_succeeded(result.stdout)
