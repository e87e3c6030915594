"""Globs the workflow's own folder and fails in the callback (a user's bug)."""

from pathlib import Path

from lightflow.models import Dag
from lightflow_filesystem import GlobTask


def count(files, data, store, signal, context):
    return len(files) / 0


d = Dag("main")
d.define({GlobTask("glob", [str(Path(__file__).parent)], count, pattern="*.py"): None})
