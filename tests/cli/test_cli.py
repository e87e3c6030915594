"""The ``lightflow`` command line, driven through click's CliRunner and the real script."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from lightflow.cli import cli
from lightflow.cli.config_cmd import examples_folder
from lightflow.version import __version__

from tests.tasks.test_bash_task import alive, gone_within

from . import clean_environment, run_lightflow
from .test_config import ONE_X_CFG

REPO = Path(__file__).resolve().parents[2]
HELP_BUDGET_SECONDS = 0.35

GRAPH_WORKFLOW = '''\
"""Two DAGs, a slot label and queues: drawn by the graph tests.

The second line is not part of the summary.
"""
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def noop(data, store, signal, context):
    pass


load = PythonTask("load", noop)
fit = PythonTask("fit", noop, queue="gpu")
plot = PythonTask("plot", noop)
main = Dag("main")
main.define({load: {fit: "raw", plot: None}, fit: plot})
side = Dag("side", autostart=False, queue="slow")
side.define({PythonTask("alone", noop): None})
'''

FAILING_WORKFLOW = '''\
"""The middle task fails."""
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def ok(data, store, signal, context):
    pass


def explode(data, store, signal, context):
    raise ValueError("detector offline")


first, second, third = PythonTask("first", ok), PythonTask("second", explode), PythonTask(
    "third", ok)
main = Dag("main")
main.define({first: second, second: third})
'''

ABORTING_WORKFLOW = '''\
"""A task aborts the workflow."""
from lightflow.models import AbortWorkflow, Dag
from lightflow.tasks import PythonTask


def give_up(data, store, signal, context):
    raise AbortWorkflow("sample missing")


main = Dag("main")
main.define({PythonTask("check", give_up): None})
'''

SELF_STOPPING_WORKFLOW = '''\
"""A task stops its own DAG."""
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def stop(data, store, signal, context):
    signal.stop_dag()


main = Dag("main")
main.define({PythonTask("stop", stop): PythonTask("next", stop)})
'''

# {trap} and {grace} make the command ignore SIGTERM and its task wait that long for it.
INTERRUPTIBLE_WORKFLOW = '''\
"""A command that runs until the run is interrupted; sleep.pid holds its pid."""
from lightflow.models import Dag
from lightflow.tasks import BashTask, PythonTask


def after(data, store, signal, context):
    print("after ran")


# The sleep is bash's child: once bash is gone, only killing the group ends it.
sleeper = BashTask(
    "sleeper", "{trap}sleep 87.3 & echo $! > sleep.tmp && mv sleep.tmp sleep.pid; wait"
)
sleeper.terminate_timeout = {grace}
main = Dag("main")
main.define({{sleeper: PythonTask("after", after)}})
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with no config to find: clean HOME, no LIGHTFLOW_* variables."""
    for name in list(os.environ):
        if name.startswith("LIGHTFLOW_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def assert_one_error_line(
    result: Result | subprocess.CompletedProcess[str], code: int, *, traceback: bool = False
) -> str:
    """The command failed with ``code`` and printed exactly one ``Error:`` line.

    With ``traceback``, a traceback (the task's) may follow that line.
    """
    exit_code = result.exit_code if isinstance(result, Result) else result.returncode
    assert exit_code == code
    assert traceback or "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# -- the root ----------------------------------------------------------------------------
def test_version(workdir: Path) -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_lists_the_commands_and_shell_completion(workdir: Path) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("config", "workflow", "run", "ext", "tasks"):
        assert re.search(rf"^  {command}\s", result.stdout, re.MULTILINE), command
    assert "_LIGHTFLOW_COMPLETE=bash_source lightflow" in result.stdout


def test_help_answers_within_the_time_budget(tmp_path: Path) -> None:
    env = clean_environment(tmp_path)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        process = run_lightflow(["--help"], cwd=tmp_path, env=env)
        timings.append(time.perf_counter() - start)
        assert process.returncode == 0, process.stderr
    assert min(timings) <= HELP_BUDGET_SECONDS, timings


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    heavy = ["networkx", "yaml", "celery", "pymongo", "redis", "cloudpickle", "lightflow.models"]
    code = (
        "import sys\n"
        "from lightflow.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"sys.stderr.write(' '.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0
    assert process.stderr == ""


def test_usage_errors_exit_2_with_one_error_line(workdir: Path) -> None:
    line = assert_one_error_line(invoke("config", "lst"), 2)
    assert "No such command 'lst'" in line
    assert_one_error_line(invoke("run", "x.py", "--workers", "0"), 2)


# -- config ------------------------------------------------------------------------------
def test_config_default_writes_a_commented_file_and_refuses_to_overwrite(workdir: Path) -> None:
    result = invoke("config", "default", "site")
    assert result.exit_code == 0
    written = workdir / "site" / "lightflow.cfg"
    text = written.read_text()
    assert text.startswith("#") and "broker_url" in text
    assert yaml.safe_load(text)["store"]["port"] == 27017

    written.write_text("# mine\n")
    line = assert_one_error_line(invoke("config", "default", "site"), 1)
    assert str(Path("site") / "lightflow.cfg") in line and "--force" in line
    assert written.read_text() == "# mine\n"
    assert invoke("config", "default", "site", "--force").exit_code == 0
    assert written.read_text() == text


def test_config_list_prints_the_effective_config_as_yaml(workdir: Path) -> None:
    (workdir / "lightflow.cfg").write_text(
        "workflows: [flows]\nstore:\n  host: filehost\n  password: hunter2\n"
        "celery:\n  broker_url: redis://:s3cret@broker:6379/0\n"
    )
    result = invoke("config", "list", env={"LIGHTFLOW_STORE__PORT": "27018"})
    assert result.exit_code == 0
    assert str(workdir / "lightflow.cfg") in result.stdout.splitlines()[0]
    shown = yaml.safe_load(result.stdout)
    assert shown["workflows"] == [str(workdir / "flows")]
    assert shown["store"]["host"] == "filehost"
    assert shown["store"]["port"] == 27018
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout
    assert shown["celery"]["broker_url"] == "redis://:********@broker:6379/0"
    revealed = yaml.safe_load(invoke("config", "list", "--show-secrets").stdout)
    assert revealed["store"]["password"] == "hunter2"


def test_config_list_without_a_file_shows_the_defaults(workdir: Path) -> None:
    result = invoke("config", "list")
    assert result.exit_code == 0
    assert "built-in defaults" in result.stdout.splitlines()[0]
    assert "broker_url" not in yaml.safe_load(result.stdout)["celery"]


def test_a_one_x_config_is_accepted_with_a_one_line_note(workdir: Path) -> None:
    (workdir / "old.cfg").write_text(ONE_X_CFG)
    result = invoke("-c", "old.cfg", "config", "list")
    assert result.exit_code == 0
    assert yaml.safe_load(result.stdout)["celery"]["timezone"] == "Australia/Melbourne"
    notes = result.stderr.strip().splitlines()
    assert len(notes) == 2 and all(note.startswith("Note:") for note in notes)
    assert any("'graph'" in note for note in notes)
    assert any("'signal.polling_time'" in note for note in notes)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"config file not found: .*broken\.cfg"),
        ("store: [\n", r"broken\.cfg:\d+: invalid YAML"),
        ("workflows: {a: 1}\n", r"broken\.cfg: section 'workflows' must be a list"),
    ],
)
def test_an_unusable_config_file_is_one_error_line(
    workdir: Path, content: str | None, expected: str
) -> None:
    if content is not None:
        (workdir / "broken.cfg").write_text(content)
    line = assert_one_error_line(invoke("-c", "broken.cfg", "config", "list"), 1)
    assert re.search(expected, line), line


def test_an_unusable_config_file_in_a_real_process(tmp_path: Path) -> None:
    process = run_lightflow(
        ["workflow", "list"],
        cwd=tmp_path,
        env=clean_environment(tmp_path, LIGHTFLOW_CONFIG=str(tmp_path / "missing.cfg")),
    )
    line = assert_one_error_line(process, 1)
    assert line == f"Error: config file not found: {tmp_path / 'missing.cfg'}"


def test_help_of_a_command_works_with_a_broken_config(workdir: Path) -> None:
    (workdir / "broken.cfg").write_text("store: [\n")
    result = invoke("-c", "broken.cfg", "run", "--help")
    assert result.exit_code == 0 and "--workers" in result.stdout


def test_config_examples_copies_the_example_workflows(workdir: Path) -> None:
    source = REPO / "examples"
    assert examples_folder() == source
    expected = sorted(p.name for p in source.glob("*.py"))
    assert expected, "the repository has no example workflows"
    result = invoke("config", "examples", "mine")
    assert result.exit_code == 0
    assert sorted(p.name for p in (workdir / "mine").glob("*.py")) == expected
    assert not list((workdir / "mine").rglob("__pycache__"))
    first = expected[0]
    assert (workdir / "mine" / first).read_text() == (source / first).read_text()

    (workdir / "mine" / first).write_text("# edited\n")
    line = assert_one_error_line(invoke("config", "examples", "mine"), 1)
    assert "--force" in line
    assert (workdir / "mine" / first).read_text() == "# edited\n"
    assert invoke("config", "examples", "mine", "--force").exit_code == 0
    assert (workdir / "mine" / first).read_text() == (source / first).read_text()


def test_the_wheel_ships_the_examples(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "-w", str(tmp_path),
         str(REPO / "packages" / "lightflow")],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("lightflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for example in (REPO / "examples").glob("*.py"):
        assert f"lightflow/examples/{example.name}" in names


def test_a_wheel_built_from_the_sdist_ships_the_examples(tmp_path: Path) -> None:
    """Outside the repository (pip building from PyPI's sdist) the examples still come."""
    build = (
        "import sys; from hatchling.build import build_sdist, build_wheel; "
        "print(build_sdist(sys.argv[1]) if sys.argv[2] == 'sdist' else build_wheel(sys.argv[1]))"
    )
    package = REPO / "packages" / "lightflow"
    subprocess.run(
        [sys.executable, "-c", build, str(tmp_path), "sdist"], cwd=package, check=True,
        capture_output=True, timeout=300,
    )  # fmt: skip
    (sdist,) = tmp_path.glob("lightflow-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (source,) = (tmp_path / "unpacked").iterdir()
    subprocess.run(
        [sys.executable, "-c", build, str(tmp_path / "wheel"), "wheel"], cwd=source,
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("lightflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for example in (REPO / "examples").glob("*.py"):
        assert f"lightflow/examples/{example.name}" in names


# -- environment overrides ----------------------------------------------------------------
def test_environment_overrides_reach_the_commands(workdir: Path) -> None:
    flows = workdir / "flows"
    flows.mkdir()
    (flows / "drawing.py").write_text(GRAPH_WORKFLOW)
    result = invoke("workflow", "list", env={"LIGHTFLOW_WORKFLOWS": str(flows)})
    assert result.exit_code == 0
    assert re.search(r"^drawing\s+Two DAGs, a slot label and queues", result.stdout, re.M)
    shown = yaml.safe_load(
        invoke("config", "list", env={"LIGHTFLOW_CLI__TIME_FORMAT": "%H"}).stdout
    )
    assert shown["cli"]["time_format"] == "%H"
    line = assert_one_error_line(invoke("config", "list", env={"LIGHTFLOW_STORAGE__HOST": "x"}), 1)
    assert "LIGHTFLOW_STORAGE__HOST" in line


# -- workflow ----------------------------------------------------------------------------
def test_workflow_list_shows_broken_files_with_their_error(workdir: Path) -> None:
    flows = workdir / "flows"
    (flows / "beamline").mkdir(parents=True)
    (flows / "drawing.py").write_text(GRAPH_WORKFLOW)
    (flows / "beamline" / "scan.py").write_text(GRAPH_WORKFLOW.replace("Two DAGs", "A scan"))
    (flows / "broken.py").write_text('"""Broken."""\nx = (\n')
    (flows / "empty.py").write_text('"""No DAG here."""\n')
    (workdir / "lightflow.cfg").write_text("workflows: [flows]\n")
    result = invoke("workflow", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert re.search(r"^beamline\.scan\s+A scan", lines[0])
    assert re.search(r"^broken\s+\[broken\] .*broken\.py:2: syntax error", lines[1])
    assert re.search(r"^drawing\s+Two DAGs, a slot label and queues: drawn by", lines[2])
    assert re.search(r"^empty\s+\[broken\] .*no Dag found", lines[3])
    assert len(lines) == 4


def test_workflow_list_without_workflow_folders_says_how_to_add_them(workdir: Path) -> None:
    result = invoke("workflow", "list")
    assert result.exit_code == 0
    assert "LIGHTFLOW_WORKFLOWS" in result.stdout


def test_graph_dot(workdir: Path) -> None:
    (workdir / "drawing.py").write_text(GRAPH_WORKFLOW)
    result = invoke("workflow", "graph", "drawing.py", "--format", "dot")
    assert result.exit_code == 0
    dot = result.stdout
    assert dot.startswith('digraph "drawing" {') and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    lines = [line.strip() for line in dot.splitlines()]
    for expected in [
        'subgraph "cluster_0" {',
        'label="main";',
        '"main/load" [label="load"];',
        '"main/fit" [label="fit\\nqueue: gpu"];',
        '"main/load" -> "main/fit" [label="raw"];',
        '"main/load" -> "main/plot";',
        '"main/fit" -> "main/plot";',
        'subgraph "cluster_1" {',
        'label="side (queue: slow)";',
        '"side/alone" [label="alone"];',
    ]:
        assert expected in lines, expected
    assert invoke("workflow", "graph", "drawing.py").stdout == dot  # dot is the default


def test_graph_mermaid(workdir: Path) -> None:
    (workdir / "drawing.py").write_text(GRAPH_WORKFLOW)
    result = invoke("workflow", "graph", str(workdir / "drawing.py"), "-f", "mermaid")
    assert result.exit_code == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert lines[0] == "flowchart TD"
    for expected in [
        'subgraph d0["main"]',
        'd0t0["load"]',
        'd0t1["fit<br/>queue: gpu"]',
        'd0t2["plot"]',
        'd0t0 -->|"raw"| d0t1',
        "d0t0 --> d0t2",
        "d0t1 --> d0t2",
        'subgraph d1["side (queue: slow)"]',
        'd1t0["alone"]',
    ]:
        assert expected in lines, expected
    assert lines.count("end") == 2


def test_graph_of_a_missing_workflow_is_one_error_line(workdir: Path) -> None:
    line = assert_one_error_line(invoke("workflow", "graph", "nothere.py"), 1)
    assert "nothere.py" in line


# -- run ---------------------------------------------------------------------------------
def test_run_prints_progress_and_a_summary(tmp_path: Path) -> None:
    (tmp_path / "drawing.py").write_text(GRAPH_WORKFLOW)
    process = run_lightflow(["run", "drawing.py"], cwd=tmp_path, env=clean_environment(tmp_path))
    assert process.returncode == 0, process.stderr
    lines = process.stdout.splitlines()
    for task in ("load", "fit", "plot"):
        assert f"  ▸ main/{task}" in lines
        assert [line for line in lines if re.fullmatch(rf"  ✓ main/{task}  \d+\.\d\ds", line)]
    assert re.search(
        r"^Workflow drawing succeeded in \d+\.\d+s: 3 succeeded$", process.stdout, re.M
    )
    assert re.search(r"^Run id: \w+$", process.stdout, re.M)
    assert process.stderr == ""


def test_run_falls_back_to_ascii(tmp_path: Path) -> None:
    (tmp_path / "drawing.py").write_text(GRAPH_WORKFLOW)
    env = clean_environment(tmp_path, PYTHONIOENCODING="ascii")
    process = run_lightflow(["run", "drawing.py"], cwd=tmp_path, env=env)
    assert process.returncode == 0, process.stderr
    assert "  > main/load" in process.stdout.splitlines()
    assert re.search(r"^  \+ main/load  \d+\.\d\ds$", process.stdout, re.M)


def test_run_failure_names_the_task_and_shows_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING_WORKFLOW)
    process = run_lightflow(["run", "failing.py"], cwd=tmp_path, env=clean_environment(tmp_path))
    line = assert_one_error_line(process, 1, traceback=True)
    assert process.stderr.startswith(line)
    assert line == "Error: task main/second failed: ValueError: detector offline"
    assert re.search(r"^  ✗ main/second  \d+\.\d\ds  failed: ValueError: detector offline$",
                     process.stdout, re.M)  # fmt: skip
    assert re.search(r"^Workflow failing failed in .*1 succeeded, 1 failed", process.stdout, re.M)
    traceback = process.stderr.split(line, 1)[1]
    assert 'failing.py", line 11, in explode' in traceback
    assert "ValueError: detector offline" in traceback
    assert traceback.startswith("\nTraceback (most recent call last):")
    assert "lightflow/" not in traceback and "click" not in traceback


def test_run_abort_exits_1_naming_the_task(workdir: Path) -> None:
    (workdir / "aborting.py").write_text(ABORTING_WORKFLOW)
    result = invoke("run", "aborting.py", "--quiet")
    line = assert_one_error_line(result, 1)
    assert line == "Error: task main/check aborted the workflow: sample missing"
    assert "main/check" not in result.stdout  # --quiet: the summary only
    assert "Workflow aborting aborted" in result.stdout


def test_run_by_name_with_workers(workdir: Path) -> None:
    flows = workdir / "flows"
    flows.mkdir()
    (flows / "drawing.py").write_text(GRAPH_WORKFLOW)
    result = invoke("run", "drawing", "-w", "1", env={"LIGHTFLOW_WORKFLOWS": str(flows)})
    assert result.exit_code == 0, result.stderr
    assert "Workflow drawing succeeded" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["drawing.py", "novalue"], "malformed argument 'novalue'"),
        (["drawing.py", "speed=3"], "speed"),
        (["nothere.py"], "nothere.py"),
    ],
)
def test_run_rejects_bad_input_before_running(
    workdir: Path, args: list[str], expected: str
) -> None:
    (workdir / "drawing.py").write_text(GRAPH_WORKFLOW)
    result = invoke("run", *args)
    line = assert_one_error_line(result, 1)
    assert expected in line
    assert result.stdout == ""


@contextlib.contextmanager
def interruptible_run(
    tmp_path: Path, *, ignore_sigterm: bool = False
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A real ``lightflow run`` whose BashTask runs ``sleep 87.3``, with the sleep's pid.

    Yields once the sleep runs; whatever happens, neither process outlives the test.
    """
    workflow = INTERRUPTIBLE_WORKFLOW.format(
        trap="trap '' TERM; " if ignore_sigterm else "", grace=60.0 if ignore_sigterm else 2.0
    )
    (tmp_path / "interruptible.py").write_text(workflow)
    process = subprocess.Popen(
        [sys.executable, "-m", "lightflow.cli", "run", "interruptible.py"],
        cwd=tmp_path,
        env=clean_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pid_file = tmp_path / "sleep.pid"
    group = None
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the command did not start"
            time.sleep(0.02)
        pid = int(pid_file.read_text())
        group = os.getpgid(pid)
        yield process, pid
    finally:
        process.kill()
        if group is not None and alive(pid):  # a command left behind holds the pipes
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        process.communicate()


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_an_interrupted_run_stops_and_leaves_no_command_behind(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    """Ctrl-C or SIGTERM used to end the process at once ('Aborted!'), orphaning the
    BashTask's command (its own session, so the terminal's Ctrl-C never reached it)."""
    with interruptible_run(tmp_path) as (process, pid):
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=15)
        assert process.returncode == code
        assert gone_within([pid], 5), "the command outlived lightflow run"
    assert stderr == f"Error: workflow interruptible stopped: interrupted by {signum.name}\n"
    assert re.search(r"^  ■ main/sleeper  \d+\.\d\ds  stopped: ", stdout, re.M)
    assert "  ○ main/after  cancelled" in stdout.splitlines()
    assert "after ran" not in stdout
    assert re.search(
        r"^Workflow interruptible stopped in \d+\.\d+s: 1 stopped, 1 cancelled$", stdout, re.M
    )


def test_a_ctrl_c_the_kernel_gives_to_another_thread_still_stops_the_run(tmp_path: Path) -> None:
    """A process-wide signal goes to any of its threads; Python handles it in the main
    thread only once that thread runs again. The scheduler used to wait for the next
    task event with no timeout, so under load (1 in 8 runs) Ctrl-C went unheard."""
    libc = ctypes.CDLL(None, use_errno=True)
    with interruptible_run(tmp_path) as (process, pid):
        threads = [int(tid) for tid in os.listdir(f"/proc/{process.pid}/task")]
        other = next(tid for tid in threads if tid != process.pid)
        assert libc.tgkill(process.pid, other, signal.SIGINT) == 0, ctypes.get_errno()
        stdout, stderr = process.communicate(timeout=15)
        assert process.returncode == 130, stderr
        assert gone_within([pid], 5), "the command outlived lightflow run"
    assert stderr == "Error: workflow interruptible stopped: interrupted by SIGINT\n"
    assert "  ○ main/after  cancelled" in stdout.splitlines()


def test_a_second_interrupt_ends_the_run_at_once_and_still_kills_the_command(
    tmp_path: Path,
) -> None:
    """A command ignoring SIGTERM keeps its BashTask waiting after the first Ctrl-C;
    the impatient second one must not leave the command running either."""
    with interruptible_run(tmp_path, ignore_sigterm=True) as (process, pid):
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.poll() is None  # waiting for the task to end
        assert alive(pid)  # the sleep ignored the BashTask's SIGTERM
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        stdout, stderr = process.communicate(timeout=15)
        assert time.monotonic() - sent < 3  # not the 5 s a stopping run waits
        assert process.returncode == 130
        assert gone_within([pid], 5), "the command outlived lightflow run"
    assert stderr == "Error: workflow interruptible stopped: interrupted by SIGINT\n"
    assert re.search(
        r"^  ■ main/sleeper  \d+\.\d\ds  stopped: still running when the run was "
        r"interrupted; given up$",
        stdout,
        re.M,
    )
    assert re.search(
        r"^Workflow interruptible stopped in .*: 1 stopped, 1 cancelled$", stdout, re.M
    )


def test_run_stopped_by_stop_dag_names_the_dags(workdir: Path) -> None:
    """The stop reason of signal.stop_dag() never reached the summary: 'no reason given'."""
    (workdir / "self_stop.py").write_text(SELF_STOPPING_WORKFLOW)
    line = assert_one_error_line(invoke("run", "self_stop.py"), 1)
    assert line == (
        "Error: workflow self_stop stopped: DAG 'main' stopped by signal.stop_dag() in DAG 'main'"
    )


# -- extensions and task types -----------------------------------------------------------
def test_tasks_lists_the_core_task_types(workdir: Path) -> None:
    result = invoke("tasks")
    assert result.exit_code == 0
    assert re.search(r"^PythonTask\s+lightflow\.tasks\.python_task\s+\S", result.stdout, re.M)
    assert re.search(r"^BashTask\s+lightflow\.tasks\.bash_task\s+\S", result.stdout, re.M)
    detail = invoke("tasks", "BashTask")
    assert detail.exit_code == 0 and "lightflow.tasks.bash_task" in detail.stdout
    assert len(detail.stdout.splitlines()) > 3  # the whole docstring
    line = assert_one_error_line(invoke("tasks", "NoSuchTask"), 1)
    assert "PythonTask" in line


def test_ext_list_without_extensions(workdir: Path) -> None:
    from importlib.metadata import entry_points

    installed = entry_points(group="lightflow")
    result = invoke("ext", "list")
    assert result.exit_code == 0
    if not installed:
        assert result.stdout.strip() == "No extensions installed."
    for entry_point in installed:
        assert entry_point.name in result.stdout


# -- checked configuration, repeated arguments, listing with libraries -------------------
SAMPLE_WORKFLOW = '''\
"""Takes a sample name."""
from lightflow.models import Dag, Option, Parameters
from lightflow.tasks import PythonTask

parameters = Parameters([Option("sample", default="Fe2O3")])


def noop(data, store, signal, context):
    pass


main = Dag("main")
main.define({PythonTask("expose", noop): None})
'''


def cluster_config(workdir: Path, extra: str = "", **sections: str) -> None:
    """A lightflow.cfg like QA's: broker, state server and store on ports nothing uses.

    ``sections`` replace a section's text (``signal="{url: ...}"``), ``extra`` is added.
    """
    from tests.servers import free_port

    port = free_port()
    text = {
        "workflows": "[flows]",
        "celery": f"{{broker_url: redis://127.0.0.1:{port}/0}}",
        "signal": f"{{url: redis://127.0.0.1:{port}/1}}",
        "store": f"{{uri: 'mongodb://127.0.0.1:{free_port()}/', database: lfqa}}",
    }
    text.update(sections)
    (workdir / "flows").mkdir(exist_ok=True)
    (workdir / "flows" / "sample.py").write_text(SAMPLE_WORKFLOW)
    body = "".join(f"{name}: {value}\n" for name, value in text.items())
    (workdir / "lightflow.cfg").write_text(body + extra)


@pytest.mark.parametrize(
    "args", [["workflow", "start", "sample"], ["workflow", "status"], ["workflow", "logs", "x"]]
)
def test_a_signal_url_that_is_not_redis_is_one_error_line(workdir: Path, args: list[str]) -> None:
    cluster_config(workdir, signal="{url: 'http://:hunter2@127.0.0.1:16391/1'}")
    line = assert_one_error_line(invoke(*args), 1)
    assert line == (
        "Error: signal.url must be a Redis URL starting with redis://, rediss:// (TLS) or "
        "unix:// (a socket), got 'http://:********@127.0.0.1:16391/1' "
        f"(in {workdir / 'lightflow.cfg'})"
    )


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        ("{heartbeat_timeout: abc}", "signal.heartbeat_timeout must be a positive number"),
        ("{heartbeat_timeout: -5}", "signal.heartbeat_timeout must be a positive number"),
        ("{heartbeat_timeout: 0}", "signal.heartbeat_timeout must be a positive number"),
        ("{keep_finished_runs: 7x}", "signal.keep_finished_runs: '7x' is not a duration"),
        ("{keep_finished_runs: -60}", "signal.keep_finished_runs must not be negative"),
        ("{port: seventy}", "signal.port must be a port number (1 to 65535), got 'seventy'"),
        ("{database: -1}", "signal.database must be a database number (0 or more), got -1"),
        ("{ssl: maybe}", "signal.ssl must be true or false, got 'maybe'"),
    ],
)
@pytest.mark.parametrize("args", [["workflow", "start", "sample"], ["run", "flows/sample.py"]])
def test_signal_values_are_checked_when_the_config_is_loaded(
    workdir: Path, signal: str, expected: str, args: list[str]
) -> None:
    cluster_config(workdir, signal=signal)
    line = assert_one_error_line(invoke(*args), 1)
    assert line.startswith(f"Error: {expected}"), line
    assert line.endswith(f" (in {workdir / 'lightflow.cfg'})"), line


def test_a_bad_signal_value_from_the_environment_names_the_variable(workdir: Path) -> None:
    cluster_config(workdir)
    result = invoke("workflow", "start", "sample", env={"LIGHTFLOW_SIGNAL__HEARTBEAT_TIMEOUT": "x"})
    line = assert_one_error_line(result, 1)
    assert line.startswith("Error: signal.heartbeat_timeout must be a positive number"), line
    assert line.endswith(", got 'x' (in LIGHTFLOW_SIGNAL__HEARTBEAT_TIMEOUT)"), line


@pytest.mark.parametrize(
    ("extra", "sections", "expected"),
    [
        (
            "stoer: {host: db1}\n",
            {},
            "unknown section 'stoer' (did you mean 'store'?); the sections are: workflows, "
            "libraries, celery, signal, store, cli, extensions, triggers, logging",
        ),
        ("beamline: {}\n", {}, "unknown section 'beamline'; the sections are: workflows,"),
        (
            "",
            {"signal": "{hots: db1}"},
            "unknown signal setting 'hots' (did you mean 'host'?); the signal section takes: "
            "url, host, port, password, database, ssl, heartbeat_timeout, keep_finished_runs",
        ),
    ],
)
@pytest.mark.parametrize("args", [["workflow", "list"], ["workflow", "start", "sample"]])
def test_unknown_sections_and_signal_keys_are_errors_with_a_suggestion(
    workdir: Path, extra: str, sections: dict[str, str], expected: str, args: list[str]
) -> None:
    cluster_config(workdir, extra, **sections)
    line = assert_one_error_line(invoke(*args), 1)
    assert line.startswith(f"Error: {workdir / 'lightflow.cfg'}: {expected}"), line


@pytest.mark.parametrize(
    ("celery", "expected"),
    [
        (
            "brokr_url: x",
            "'brokr_url' is not a Celery setting (did you mean 'broker_url'?); the celery "
            "section takes Celery's settings, listed at https://docs.celeryq.dev/",
        ),
        ("worker_concurrency: four", "celery.worker_concurrency must be an integer, got 'four'"),
        (
            "CELERYD_PREFETCH_MULTIPLIER: 1.5",
            "celery.CELERYD_PREFETCH_MULTIPLIER must be an integer",
        ),
        ("task_acks_late: 'yes'", "celery.task_acks_late must be true or false, got 'yes'"),
        ("task_time_limit: 1h", "celery.task_time_limit must be a number, got '1h'"),
    ],
)
def test_celery_settings_are_checked_against_celerys_own_list(
    tmp_path: Path, celery: str, expected: str
) -> None:
    from tests.servers import free_port

    config = tmp_path / "lightflow.cfg"
    config.write_text(f"celery:\n  broker_url: redis://127.0.0.1:{free_port()}/0\n  {celery}\n")
    env = clean_environment(tmp_path, LIGHTFLOW_CONFIG=str(config))
    # Checked where Celery is loaded: the worker, before it connects to anything.
    process = run_lightflow(["worker", "start"], cwd=tmp_path, env=env, timeout=30)
    line = assert_one_error_line(process, 1)
    assert expected in line and str(config) in line, line


def test_the_celery_check_does_not_import_celery_into_workflow_start(tmp_path: Path) -> None:
    from tests.servers import free_port

    (tmp_path / "sample.py").write_text(SAMPLE_WORKFLOW)
    config = tmp_path / "lightflow.cfg"
    config.write_text(f"celery: {{broker_url: 'redis://127.0.0.1:{free_port()}/0'}}\n")
    code = (
        "import sys\n"
        "from lightflow.cli import main\n"
        "try:\n"
        "    main(['workflow', 'start', 'sample.py'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'celery']\n"
        "sys.stderr.write(f'celery modules: {loaded}')\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=clean_environment(tmp_path, LIGHTFLOW_CONFIG=str(config)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.stderr.startswith("Error: cannot reach"), process.stderr  # checked, sent
    assert process.stderr.splitlines()[-1] == "celery modules: []"


@pytest.mark.parametrize("command", ["run", "workflow start"])
def test_a_parameter_given_twice_is_refused(workdir: Path, command: str) -> None:
    cluster_config(workdir)
    result = invoke(*command.split(), "sample", "sample=x", "sample=y")
    line = assert_one_error_line(result, 1)
    assert line == "Error: parameter 'sample' is given twice (sample=x, sample=y): give it once"
    assert result.stdout == ""


LIBRARY_WORKFLOW = '''\
"""Imports shared code from a libraries folder."""
from {module} import detector_name
from lightflow.models import Dag
from lightflow.tasks import PythonTask


def name_it(data, store, signal, context):
    print(detector_name(3))


main = Dag("main")
main.define({{PythonTask("name_it", name_it): None}})
'''


def test_workflow_list_puts_the_libraries_on_the_path_as_run_does(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "uses_library.py").write_text(
        (REPO / "tests" / "distributed" / "workflows" / "uses_library.py").read_text()
    )
    config = tmp_path / "lightflow.cfg"
    config.write_text(
        f"workflows: [flows]\nlibraries: [{REPO / 'tests' / 'distributed' / 'library'}]\n"
    )
    env = clean_environment(tmp_path, LIGHTFLOW_CONFIG=str(config))
    process = run_lightflow(["workflow", "list"], cwd=tmp_path, env=env)
    assert process.returncode == 0, process.stderr
    assert re.fullmatch(r"uses_library\s+A workflow importing shared code .*\n", process.stdout)


def test_list_workflows_loads_with_the_libraries_as_a_run_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightflow.workflows import list_workflows, load_workflow

    monkeypatch.setattr(sys, "path", list(sys.path))
    module = f"listing_utils_{os.getpid()}_{time.monotonic_ns()}"
    for folder, name in (("first", "first"), ("second", "second")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{module}.py").write_text(
            f"def detector_name(n):\n    return '{name}'\n"
        )
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "shared.py").write_text(LIBRARY_WORKFLOW.format(module=module))
    libraries = [tmp_path / "first", tmp_path / "second"]
    [listing] = list_workflows([tmp_path / "flows"], libraries)
    assert (
        listing.error is None and listing.summary == "Imports shared code from a libraries folder."
    )
    # the first library listed comes first on the path, as on workers
    assert sys.path[:2] == [str(tmp_path / "first"), str(tmp_path / "second")]
    workflow = load_workflow(str(tmp_path / "flows" / "shared.py"), libraries=libraries)
    assert workflow.name == "shared"
