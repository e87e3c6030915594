"""docs/cluster.md's "One machine, step by step", done as the page says.

The page's own snippets are run: the private redis-server line (with its append-only
file), the secantus line, its lightflow.cfg and workflow, its two worker commands and
its `workflow start --wait`, on free ports instead of 6379 and 27017.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.cli import clean_environment, lightflow_command, run_lightflow
from tests.servers import ServerProcess, WorkerProcess, free_port

pytestmark = pytest.mark.slow

PAGE = Path(__file__).parents[2] / "docs" / "cluster.md"
SECTION = "## One machine, step by step"


def walkthrough() -> str:
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(SECTION)
    return text[start : text.index("\n## ", start + len(SECTION))]


def blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def line_starting(section: str, prefix: str) -> str:
    for block in blocks(section, "bash") + blocks(section, "console"):
        for line in block.splitlines():
            line = line.removeprefix("$ ").split("  #")[0].strip()
            if line.startswith(prefix):
                return line
    raise AssertionError(f"docs/cluster.md's walkthrough has no line starting {prefix!r}")


def test_the_one_machine_walkthrough_works(tmp_path: Path) -> None:
    section = walkthrough()
    redis_port, mongo_port = free_port(), free_port()

    def local(text: str) -> str:
        text = text.replace("6379", str(redis_port)).replace("27017", str(mongo_port))
        return text.replace("~/", f"{tmp_path}/")

    redis_line = shlex.split(local(line_starting(section, "redis-server ")))
    assert (
        "--appendonly" in redis_line and redis_line[redis_line.index("--appendonly") + 1] == "yes"
    )
    Path(redis_line[redis_line.index("--dir") + 1]).mkdir()
    secantus_line = shlex.split(local(line_starting(section, "python -m secantus ")))
    secantus_line[0] = sys.executable

    (config,) = blocks(section, "yaml")
    (tmp_path / "lightflow.cfg").write_text(local(config))
    (workflow,) = blocks(section, "python")
    (tmp_path / "twoqueues.py").write_text(workflow)
    env = clean_environment(tmp_path)

    workers = []
    with (
        ServerProcess(redis_line, redis_port, "redis-server"),
        ServerProcess(secantus_line, mongo_port, "secantus"),
    ):
        try:
            for name in ("main", "gpu"):
                line = line_starting(
                    section, f"lightflow worker start{' -q gpu' * (name == 'gpu')}"
                )
                command = [*lightflow_command(), *shlex.split(line)[1:]]
                worker = WorkerProcess(name, command, env=env, cwd=tmp_path, inherit_env=False)
                workers.append(worker.start())
            start = shlex.split(line_starting(section, "lightflow workflow start"))
            result = run_lightflow(start[1:], cwd=tmp_path, env=env, timeout=120)
        finally:
            for worker in workers:
                worker.stop()
    assert result.returncode == 0, result.stderr
    assert "tomo/reconstruct" in result.stdout and "Workflow twoqueues succeeded" in result.stdout
    gpu_log = workers[1].log()
    assert "reconstructing 1800 frames" in gpu_log
    assert "keeps nothing on disk" not in gpu_log + workers[0].log()
