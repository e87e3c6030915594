"""The process that runs one trigger run on the embedded engine.

Started by :class:`~lightflow.triggers.launcher.EmbeddedLauncher` before it is
needed: it loads the configuration (and puts its libraries on the path), then waits on
stdin for its one job: a 4-byte length and a pickled ``(run id, arguments, pickled
workflow)``. End of input without a job ends it quietly (the launcher retired it, or
died). Ctrl-C in the trigger's terminal does not end it while it waits: the trigger
closes its input when it stops.

Before it runs the workflow it creates the run's start marker exclusively and reports
on the file descriptor ``--report-fd``: ``STARTED``, or ``DUPLICATE`` if the marker
existed (an earlier process started this run, and this one ends without running it:
exactly-once after a crash); see :mod:`.launcher`. A process that ends without
reporting did not start the run; one whose trigger died meanwhile runs it all the same
(the marker says it started).

Exit status: 0 the run succeeded (or there was nothing to do), 1 it did not, 2 the
configuration, the workflow or its arguments cannot be used here (one line on
stderr). SIGINT and SIGTERM stop the run as they stop ``lightflow run``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import signal
import struct
import sys
from pathlib import Path
from typing import Any, BinaryIO


def read_job(stream: BinaryIO) -> tuple[str, dict[str, Any], bytes] | None:
    """The job written by the launcher, or ``None`` at end of input."""
    header = stream.read(4)
    if len(header) < 4:
        return None
    (size,) = struct.unpack("!I", header)
    run_id, arguments, workflow = pickle.loads(stream.read(size))
    return run_id, arguments, workflow


def main(argv: list[str] | None = None) -> int:
    # Until the run, SIGINT is ignored (see the docstring); the launcher started this
    # process with it blocked so that one sent while Python started is dropped here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parser = argparse.ArgumentParser(prog="python -m lightflow.triggers.child")
    parser.add_argument("--markers", required=True, type=Path)
    parser.add_argument("--report-fd", required=True, type=int)
    parser.add_argument("--config")
    options = parser.parse_args(argv)

    import cloudpickle

    from .. import api
    from ..config import Config
    from ..exceptions import LightflowError
    from ..local.engine import stop_on_signals
    from ..workflows import add_libraries
    from .launcher import DUPLICATE, STARTED

    try:
        config = Config.load(options.config)
    except LightflowError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2
    add_libraries(config.libraries)  # what the workflow imports by reference
    job = read_job(sys.stdin.buffer)
    if job is None:
        return 0
    run_id, arguments, blob = job
    try:
        workflow = cloudpickle.loads(blob)
    except Exception as error:  # a module it imports is not importable here
        print(
            f"Error: run {run_id}: the workflow cannot be loaded here: "
            f"{type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return 2
    try:
        os.close(os.open(options.markers / run_id, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        _report(options.report_fd, DUPLICATE)
        return 0
    _report(options.report_fd, STARTED)  # the marker exists: the run must happen now
    signal.signal(signal.SIGINT, signal.SIG_DFL)
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


def _report(fd: int, what: bytes) -> None:
    """Tell the launcher; a trigger that died meanwhile is no reason not to run."""
    with contextlib.suppress(OSError):
        os.write(fd, what)
    os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
