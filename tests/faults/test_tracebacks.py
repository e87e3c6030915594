"""A task's traceback shows the user's code, on both engines.

Not Lightflow's frames that called the callback, nor the frames of what Lightflow
called for the user (``copy.py`` copying a stored value in ``lightflow run``,
cloudpickle and ``pickle`` on a worker's MongoDB store).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import Cluster

from .conftest import Site

pytestmark = pytest.mark.slow

WORKFLOWS = Path(__file__).parent / "workflows"


def assert_only_user_frames(stderr: str, workflow: str, line: str) -> None:
    assert f'{WORKFLOWS / workflow}", line' in stderr, stderr
    assert line in stderr
    for foreign in ("/lightflow/", "copy.py", "cloudpickle", "pickle.py"):
        assert foreign not in stderr, (foreign, stderr)


def test_a_callback_with_the_wrong_signature_points_at_the_callback(site: Site) -> None:
    result = site.lightflow("run", str(WORKFLOWS / "bad_signature.py"))
    assert result.returncode == 1
    assert (
        "Error: task main/measure failed: TypeError: measure() takes 2 positional "
        "arguments but 4 were given" in result.stderr
    )
    assert_only_user_frames(result.stderr, "bad_signature.py", "def measure(data, store):")


def test_an_unpicklable_store_value_shows_the_users_line_only(site: Site) -> None:
    result = site.lightflow("run", str(WORKFLOWS / "unpicklable_value.py"))
    assert result.returncode == 1
    assert "StoreError: cannot store the lock at 'guard'" in result.stderr
    assert_only_user_frames(
        result.stderr, "unpicklable_value.py", 'store.set("guard", threading.Lock())'
    )


@pytest.mark.parametrize(
    ("workflow", "line"),
    [
        ("bad_signature.py", "def measure(data, store):"),
        ("unpicklable_value.py", 'store.set("guard", threading.Lock())'),
    ],
)
def test_the_same_on_a_worker(redis_cluster: Cluster, workflow: str, line: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lightflow.cli", "-c", str(redis_cluster.config_path),
         "workflow", "start", "--wait", str(WORKFLOWS / workflow)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert_only_user_frames(result.stderr, workflow, line)


def test_an_extension_tasks_frames_are_left_out_like_the_cores(site: Site) -> None:
    """GlobTask calls the user's callback: only the callback's frame is the user's."""
    result = site.lightflow("run", str(WORKFLOWS / "failing_glob.py"))
    assert result.returncode == 1
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert_only_user_frames(result.stderr, "failing_glob.py", "return len(files) / 0")
    assert "lightflow_filesystem" not in result.stderr, result.stderr
