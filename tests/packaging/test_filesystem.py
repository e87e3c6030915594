"""``pip install lightflow lightflow-filesystem`` from two wheels is the whole install.

Only that venv's ``lightflow`` runs (``filesystem_install``, see ``wheels.py``): the
extension is found through its entry point, its tasks (which import watchdog) are
listed and run a 1.x example, its watch command is there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.filesystem.conftest import EXAMPLES, write_file

from .wheels import Install, Wheel, assert_extensions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_ext_list_shows_the_filesystem_extension_only(
    filesystem_install: Install, wheels: dict[str, Wheel]
) -> None:
    assert_extensions(filesystem_install, [wheels["lightflow-filesystem"]])


def test_its_tasks_and_commands_run_from_the_wheels(
    filesystem_install: Install, tmp_path: Path
) -> None:
    tasks = filesystem_install.run("tasks")
    assert "NotifyTriggerTask" in tasks.stdout, tasks.stdout + tasks.stderr
    assert filesystem_install.run("fs", "watch", "--help").returncode == 0
    data = tmp_path / "data"
    data.mkdir()
    write_file(data / "scan.file")
    listed = filesystem_install.run("run", str(EXAMPLES / "list_files.py"), f"folder={data}")
    assert listed.returncode == 0, listed.stderr
    assert str(data / "scan.file") in listed.stdout
