"""The pure scheduling core shared by the embedded and the distributed engine."""

from .dag_run import DagRun, DagSpec, Outcome, RunState, Step, Tally, TaskState

__all__ = ["DagRun", "DagSpec", "Outcome", "RunState", "Step", "Tally", "TaskState"]
