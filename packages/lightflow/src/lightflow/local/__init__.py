"""The embedded engine: whole workflows in one process, no servers."""

from .engine import LocalRun, RunResult, TaskRecord

__all__ = ["LocalRun", "RunResult", "TaskRecord"]
