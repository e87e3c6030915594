"""The process that runs one trigger run on the embedded engine.

Started by :class:`~lightflow.triggers.launcher.EmbeddedLauncher` before it is
needed: it loads the configuration and the workflow, then waits on stdin for its one
job (a 4-byte length and a pickled ``(run id, arguments)``). End of input without a
job ends it quietly (the launcher retired it). Before it runs the workflow it creates
the run's start marker exclusively; if the marker exists, an earlier process started
this run, and this one ends without running it (exactly-once after a crash).

Exit status: 0 the run succeeded (or there was nothing to do), 1 it did not, 2 the
workflow or its arguments are invalid (one line on stderr). SIGINT and SIGTERM stop
the run as they stop ``lightflow run``.
"""

from __future__ import annotations

import argparse
import os
import pickle
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO


def read_job(stream: BinaryIO) -> tuple[str, dict[str, Any]] | None:
    """The job written by the launcher, or ``None`` at end of input."""
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack("!I", header)
    run_id, arguments = pickle.loads(stream.read(size))
    return run_id, arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightflow.triggers.child")
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--markers", required=True, type=Path)
    parser.add_argument("--config")
    options = parser.parse_args(argv)

    from .. import api
    from ..config import Config
    from ..exceptions import LightflowError
    from ..local.engine import stop_on_signals

    try:
        config = Config.load(options.config)
        workflow = api.load(options.workflow, config)
    except LightflowError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    job = read_job(sys.stdin.buffer)
    if job is None:
        return 0
    run_id, arguments = job
    try:
        os.close(os.open(options.markers / run_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return 0  # an earlier process started this run
    with stop_on_signals():
        try:
            result = api.run_workflow(workflow, arguments, config=config, run_id=run_id)
        except LightflowError as error:
            print(f"Error: run {run_id}: {error}", file=sys.stderr)
            return 2
    if not result.succeeded:
        print(
            f"Run {run_id} of {result.workflow} {result.outcome}: {result.error or ''}".rstrip(),
            file=sys.stderr,
        )
    return 0 if result.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
