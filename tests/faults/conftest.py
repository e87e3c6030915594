"""Helpers of the fault suite: a clean folder to run ``lightflow`` in, config files."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli import clean_environment, run_lightflow


class Site:
    """A working folder with its own HOME, where ``lightflow`` runs as a new user's would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = clean_environment(root)

    def write_config(self, name: str = "lightflow.cfg", **sections: Any) -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(sections))
        return path

    def lightflow(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_lightflow(list(args), cwd=self.root, env=self.env, timeout=timeout)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed (non-zero) with exactly one line on stderr, an ``Error:``."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]
