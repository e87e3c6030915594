"""Every workflow in examples/ runs on the embedded engine and does what it teaches.

Each example has at least one test named ``test_<example>`` or ``test_<example>_...``;
``test_every_example_has_a_test`` fails for an example added without one. Tasks report
through ``print``, so the tests read the run's output and its events.
"""

from __future__ import annotations

import ast
import io
import itertools
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from lightflow.api import RunResult, load, run_workflow
from lightflow.events import EventKind, RunEvent
from lightflow.exceptions import ParameterError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EXAMPLE_NAMES = sorted(path.stem for path in EXAMPLES.glob("*.py"))


class Output(io.TextIOBase):
    """Stands in for ``sys.stdout`` and notes when each piece of text was written."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.writes.append((time.monotonic(), text))
        return len(text)

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.writes)

    def times_of(self, prefix: str) -> list[float]:
        """When each write starting with ``prefix`` happened."""
        return [moment for moment, text in self.writes if text.startswith(prefix)]


class Run:
    """A finished example run: its result and every event it emitted."""

    def __init__(self, result: RunResult, events: list[RunEvent], output: Output) -> None:
        self.result = result
        self.events = events
        self.output = output

    def states(self, dag: str | None = None) -> dict[str, str]:
        """Task name -> final state, for one DAG instance (default: the only one)."""
        dags = {record.dag for record in self.result.tasks}
        if dag is None:
            assert len(dags) == 1, f"several DAGs ran: {dags}"
            (dag,) = dags
        return {record.task: record.state for record in self.result.tasks if record.dag == dag}

    def times(self, kind: EventKind) -> dict[str, float]:
        """Task name -> when the task had an event of ``kind``."""
        return {event.task: event.time for event in self.events if event.kind is kind}

    def started(self) -> set[str]:
        return set(self.times(EventKind.TASK_STARTED))


def run(name: str, arguments: dict[str, str] | None = None) -> Run:
    """Run an example, recording its events and what its tasks print."""
    events: list[RunEvent] = []
    output = Output()
    # Swapped here rather than in a fixture: pytest re-installs its own capture
    # between the setup and the call phase of a test.
    stdout, sys.stdout = sys.stdout, output
    try:
        result = run_workflow(str(EXAMPLES / f"{name}.py"), arguments, on_event=events.append)
    finally:
        sys.stdout = stdout
    return Run(result, events, output)


# -- the examples, one by one -------------------------------------------------------------
def test_sequence() -> None:
    run_ = run("sequence")

    assert run_.result.outcome == "succeeded"
    started = run_.times(EventKind.TASK_STARTED)
    finished = run_.times(EventKind.TASK_SUCCEEDED)
    chain = ["find_frames", "subtract_dark", "write_summary"]
    for before, after in itertools.pairwise(chain):
        assert finished[before] <= started[after], f"{after} started before {before} ended"
    # The last task sees what the first one put into the data.
    assert "write_summary: scan_0007 -> scan_0007_00003_dark.cbf" in run_.output.text


def test_parallel_lanes_overlap_in_time() -> None:
    run_ = run("parallel")

    assert run_.result.outcome == "succeeded"
    lanes = ["compress_module1", "compress_module2", "compress_module3"]
    started = run_.times(EventKind.TASK_STARTED)
    finished = run_.times(EventKind.TASK_SUCCEEDED)
    # All lanes were running at once: the last one started before the first one ended.
    assert max(started[lane] for lane in lanes) < min(finished[lane] for lane in lanes)
    assert started["publish"] >= max(finished[lane] for lane in lanes)
    # One after the other they take 1.05 s, side by side 0.4 s.
    assert run_.result.duration < 0.75, "the lanes ran one after the other"
    assert (
        "publish: 3 files ready: scan_0012_module1.h5, scan_0012_module2.h5, "
        "scan_0012_module3.h5" in run_.output.text
    )


def test_branch_runs_exactly_the_limited_lanes() -> None:
    run_ = run("branch")

    assert run_.result.outcome == "succeeded"
    assert run_.states() == {
        "inspect_scan": "succeeded",
        "integrate_saxs": "succeeded",
        "fit_fluorescence": "succeeded",
        "reconstruct_tomo": "skipped",
        "summarise": "succeeded",
    }
    assert "reconstruct_tomo" not in run_.started()
    assert "reconstruct_tomo" in run_.times(EventKind.TASK_SKIPPED)
    for line in (
        "inspect_scan: scan_0042 has data from pilatus and xspress3",
        "integrate_saxs: pilatus images -> scan_0042_saxs.dat",
        "fit_fluorescence: xspress3 spectra -> scan_0042_xrf.h5",
        "summarise: scan_0042 produced scan_0042_saxs.dat, scan_0042_xrf.h5",
    ):
        assert line in run_.output.text
    assert "reconstruct_tomo:" not in run_.output.text


@pytest.mark.parametrize(
    ("ring_current", "runs", "skipped", "line"),
    [
        ("200", "integrate", "flag_for_repeat", "integrate: scan_0108 -> scan_0108_integrated"),
        ("0.4", "flag_for_repeat", "integrate", "flag_for_repeat: scan_0108 must be measured"),
    ],
)
def test_decision_follows_the_data(ring_current: str, runs: str, skipped: str, line: str) -> None:
    run_ = run("decision", {"ring_current": ring_current})

    assert run_.result.outcome == "succeeded"
    states = run_.states()
    assert (states[runs], states[skipped]) == ("succeeded", "skipped")
    assert f"read_ring: {float(ring_current)} mA" in run_.output.text
    assert line in run_.output.text


def test_multi_input_join_sees_both_aliases() -> None:
    run_ = run("multi_input")

    assert run_.result.outcome == "succeeded"
    assert set(run_.states().values()) == {"succeeded"}
    # By alias, by the call form and by index (the first predecessor in the schema).
    assert "stitch: left=left right=right first=left" in run_.output.text
    # The successor gets the flattened data with the stitched image.
    assert "save: stitched image 2x4, first row [1, 2, 3, 4]" in run_.output.text


def test_data_store_set_get_push_extend_and_meta() -> None:
    run_ = run("data_store")

    assert run_.result.outcome == "succeeded"
    for line in (
        "report: Si(111) wafer at 12.4 keV",
        "report: frames frame_00000.h5, frame_00001.h5, frame_00002.h5",
        "report: logbook undulator gap set / shutter open / acquisition done",
        "report: missing key gives the default: n/a",
    ):
        assert line in run_.output.text
    # META holds the duration the engine measured for the task.
    (duration,) = [e.duration for e in run_.events if e.task == "acquire" and e.duration]
    assert duration >= 0.15
    assert f"report: acquire took {duration:.2f} s" in run_.output.text


def test_parameters_are_converted_to_their_types() -> None:
    run_ = run("parameters", {"sample": "lysozyme", "frames": "4", "dark": "no"})

    assert run_.result.outcome == "succeeded"
    # int * float and a real bool: the strings were converted; exposure kept its default.
    assert "plan_scan: lysozyme, 4 frames x 0.5 s = 2.0 s, dark=False" in run_.output.text


def test_parameters_defaults_apply() -> None:
    run_ = run("parameters", {"sample": "lysozyme"})

    assert "plan_scan: lysozyme, 3 frames x 0.5 s = 1.5 s, dark=True" in run_.output.text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required parameter 'sample'"),
        ({"sample": "lysozyme", "frames": "many"}, "parameter 'frames' expects int"),
    ],
)
def test_parameters_refuse_bad_arguments_before_running(
    arguments: dict[str, str], message: str
) -> None:
    events: list[RunEvent] = []
    with pytest.raises(ParameterError, match=message):
        run_workflow(str(EXAMPLES / "parameters.py"), arguments, on_event=events.append)
    assert events == [], "the run started although its arguments are invalid"


def test_sub_dag_starts_copies_and_joins_them() -> None:
    run_ = run("sub_dag")

    assert run_.result.outcome == "succeeded"
    chunks = ["reduce_chunk", "reduce_chunk:2", "reduce_chunk:3"]
    assert {record.dag for record in run_.result.tasks} == {"main", *chunks}
    for chunk in chunks:
        assert run_.states(chunk) == {"load_chunk": "succeeded", "sum_chunk": "succeeded"}
    assert run_.states("main") == {"split_scan": "succeeded", "publish": "succeeded"}
    # join_dags returned only after every copy had finished.
    chunk_ends = [
        e.time for e in run_.events if e.kind is EventKind.DAG_FINISHED and e.dag in chunks
    ]
    assert len(chunk_ends) == 3
    assert run_.times(EventKind.TASK_SUCCEEDED)["split_scan"] >= max(chunk_ends)
    assert "split_scan: started reduce_chunk, reduce_chunk:2, reduce_chunk:3" in run_.output.text
    assert "split_scan: joined 3 chunks, all succeeded: True" in run_.output.text
    assert f"publish: total counts {sum(2 * frame for frame in range(300))}" in run_.output.text


def test_stop_skip_states() -> None:
    run_ = run("stop_skip")

    assert run_.result.outcome == "succeeded"
    assert run_.states() == {
        "find_new_scans": "stopped",
        "compress_scans": "skipped",  # StopTask skips the successors by default
        "delete_raw": "skipped",  # the skip propagates
        "send_report": "succeeded",  # force_run
        "index_scans": "skipped",
        "update_catalogue": "succeeded",  # index_scans has propagate_skip=False
        "check_calibration": "stopped",
        "reload_calibration": "succeeded",  # StopTask(skip_successors=False)
    }
    assert run_.started() == {
        "find_new_scans",
        "send_report",
        "update_catalogue",
        "check_calibration",
        "reload_calibration",
    }
    stopped = {e.task: e.message for e in run_.events if e.kind is EventKind.TASK_STOPPED}
    assert stopped == {
        "find_new_scans": "no new scans since the last run",
        "check_calibration": "calibration unchanged",
    }


def test_abort_ends_the_run_aborted() -> None:
    run_ = run("abort")

    assert run_.result.outcome == "aborted"
    assert not run_.result.succeeded
    assert run_.result.failed_task == "check_interlock"
    assert run_.result.error == "hutch interlock open"
    assert run_.states() == {
        "check_interlock": "aborted",
        "acquire": "stopped",  # it saw signal.is_stopped and stopped early
        "process_frames": "cancelled",
    }
    assert "acquire: asked to stop after" in run_.output.text
    assert "all 100 frames taken" not in run_.output.text
    assert run_.result.duration < 1.5  # acquiring all frames takes 2 s


def test_bash_streams_stdout_lines_to_the_callback() -> None:
    run_ = run("bash")

    assert run_.result.outcome == "succeeded"
    assert run_.states() == {"watch_detector": "succeeded", "check": "succeeded"}
    frames = ["frame_00001.cbf", "frame_00002.cbf", "frame_00003.cbf"]
    for frame in frames:
        assert f"on_line: {frame} arrived" in run_.output.text
    # Lines arrive while the command runs (it sleeps 50 ms between them), not at its end.
    line_times = run_.output.times_of("on_line:")
    assert len(line_times) == 3
    assert line_times[-1] - line_times[0] >= 0.08
    assert max(line_times) < min(run_.output.times_of("on_end:"))
    assert "on_end: exit code 0, 3 lines captured" in run_.output.text
    assert f"check: 3 frames seen: {', '.join(frames)}" in run_.output.text


# -- the examples as a collection ---------------------------------------------------------
def test_there_are_examples() -> None:
    assert {"sequence", "parallel", "branch", "decision", "multi_input", "data_store"} <= set(
        EXAMPLE_NAMES
    )
    assert {"parameters", "sub_dag", "stop_skip", "abort", "bash"} <= set(EXAMPLE_NAMES)


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_has_a_docstring(name: str) -> None:
    workflow = load(str(EXAMPLES / f"{name}.py"))

    # The first line is what `lightflow workflow list` shows.
    assert workflow.summary, f"examples/{name}.py has no module docstring"
    assert workflow.summary.endswith("."), f"examples/{name}.py: summary is not a sentence"
    assert f"lightflow run examples/{name}.py" in workflow.docstring, "no 'Run it:' line"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_has_a_test(name: str) -> None:
    tests = [
        test for test in globals() if test == f"test_{name}" or test.startswith(f"test_{name}_")
    ]
    assert tests, f"examples/{name}.py has no test: add test_{name}... to {__file__}"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_uses_only_the_1x_import_paths(name: str) -> None:
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    ours = {module for module in imported if module and module.split(".")[0] == "lightflow"}
    assert ours <= {"lightflow.models", "lightflow.tasks"}, ours


# -- the command line ---------------------------------------------------------------------
def _lightflow_command() -> list[str]:
    """The installed `lightflow` script, or the same entry point run by this Python."""
    script = shutil.which("lightflow")
    return [script] if script else [sys.executable, "-m", "lightflow.cli"]


def _lightflow(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_lightflow_command(), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_branch_through_lightflow_run() -> None:
    finished = _lightflow("run", "examples/branch.py")

    assert finished.returncode == 0, finished.stderr
    for line in (
        "inspect_scan: scan_0042 has data from pilatus and xspress3",
        "integrate_saxs: pilatus images -> scan_0042_saxs.dat",
        "fit_fluorescence: xspress3 spectra -> scan_0042_xrf.h5",
        "summarise: scan_0042 produced scan_0042_saxs.dat, scan_0042_xrf.h5",
    ):
        assert line in finished.stdout
    assert "reconstruct_tomo:" not in finished.stdout
    # Progress lines name each task as dag/task; the skipped lane says so.
    (skip_line,) = [line for line in finished.stdout.splitlines() if "reconstruct_tomo" in line]
    assert "branch/reconstruct_tomo" in skip_line
    assert "skipped" in skip_line


def test_abort_through_lightflow_run_exits_non_zero() -> None:
    finished = _lightflow("run", "examples/abort.py")

    assert finished.returncode != 0
    assert "hutch interlock open" in finished.stdout + finished.stderr
