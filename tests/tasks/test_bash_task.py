"""BashTask: streaming output, capture, stopping and never leaving a process behind.

The tasks run real bash processes. Waits are bounded and generous; the only long
sleeps are inside commands that the tests expect to be terminated early.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from lightflow.exceptions import StopTask, TaskDefinitionError
from lightflow.models import Action, MultiTaskData, TaskData, TaskStatus
from lightflow.tasks import BashTask

from .helpers import make_args


def make_args_bash(values: dict[str, Any] | None = None) -> tuple[Any, ...]:
    return make_args(values, task_name="bash")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (killed but not reaped, e.g. by PID 1) is dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    if not os.path.isdir("/proc/self"):
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            stat = stat_file.read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def gone_within(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# A command whose first line is the pid of a background grandchild that outlives bash
# unless the whole process group is terminated.
GRANDCHILD = "sleep 30 & echo $!; wait"


def test_stdout_lines_arrive_while_the_command_runs() -> None:
    data, store, signal, context = make_args_bash()
    pids: list[int] = []
    lines: list[tuple[str, float, bool]] = []

    def on_stdout(line: str, *args: Any) -> None:
        lines.append((line, time.monotonic(), alive(pids[0])))

    task = BashTask(
        "stream",
        "echo first; sleep 2; echo second",
        callback_process=lambda pid, *args: pids.append(pid),
        callback_stdout=on_stdout,
    )
    task._run(data, store, signal, context)
    ended = time.monotonic()

    assert [line for line, _, _ in lines] == ["first\n", "second\n"]
    first_seen, bash_was_running = lines[0][1], lines[0][2]
    assert bash_was_running
    assert ended - first_seen > 1.5


def test_stderr_lines_go_to_their_own_callback() -> None:
    data, store, signal, context = make_args_bash()
    out: list[str] = []
    err: list[str] = []
    task = BashTask(
        "streams",
        "echo out; echo err >&2; echo out2",
        callback_stdout=lambda line, *args: out.append(line),
        callback_stderr=lambda line, *args: err.append(line),
    )
    task._run(data, store, signal, context)
    assert out == ["out\n", "out2\n"]
    assert err == ["err\n"]


def test_callback_end_gets_return_code_and_captured_output() -> None:
    data, store, signal, context = make_args_bash()
    ends: list[tuple[Any, ...]] = []

    def on_end(returncode: int, stdout_file: Any, stderr_file: Any, *args: Any) -> None:
        ends.append((returncode, stdout_file.read(), stderr_file.read(), args))

    statuses: list[TaskStatus] = []
    task = BashTask(
        "capture",
        "printf 'a\\nb\\n'; echo e >&2; exit 3",
        capture_stdout=True,
        capture_stderr=True,
        callback_end=on_end,
        callback_finally=lambda status, *args: statuses.append(status),
    )
    result = task._run(data, store, signal, context)

    # A non-zero exit code is reported, not raised (1.x behaviour).
    assert ends == [(3, b"a\nb\n", b"e\n", (data, store, signal, context))]
    assert statuses == [TaskStatus.Success]
    assert result.data is data


def test_uncaptured_streams_reach_callback_end_as_none() -> None:
    data, store, signal, context = make_args_bash()
    ends: list[tuple[Any, ...]] = []
    lines: list[str] = []
    task = BashTask(
        "no-capture",
        "echo hi",
        callback_stdout=lambda line, *a: lines.append(line),
        callback_end=lambda code, out, err, *args: ends.append((code, out, err)),
    )
    task._run(data, store, signal, context)
    assert lines == ["hi\n"]
    assert ends == [(0, None, None)]


def test_an_action_returned_by_callback_end_is_the_result() -> None:
    data, store, signal, context = make_args_bash()
    other = MultiTaskData(dataset=TaskData({"chosen": True}))
    task = BashTask("choose", "true", callback_end=lambda *args: Action(other, limit=["next"]))
    result = task._run(data, store, signal, context)
    assert result.data["chosen"] is True
    assert result.limit == ["next"]


def test_callable_arguments_are_evaluated_with_the_data(tmp_path: Any) -> None:
    data, store, signal, context = make_args_bash({"word": "hello", "dir": str(tmp_path)})
    store.set("suffix", "!")
    outputs: list[bytes] = []
    task = BashTask(
        "params",
        lambda d, s: f"echo {d['word']}{s.get('suffix')}; pwd",
        cwd=lambda d, s: d["dir"],
        capture_stdout=lambda d, s: True,
        callback_end=lambda code, out, err, *args: outputs.append(out.read()),
    )
    task._run(data, store, signal, context)
    assert outputs == [f"hello!\n{tmp_path}\n".encode()]


def test_env_replaces_the_environment_and_cwd_is_honoured(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIGHTFLOW_TEST_OUTER", "leaked")
    data, store, signal, context = make_args_bash()
    lines: list[str] = []
    task = BashTask(
        "env",
        'echo "$GREETING"; echo "${LIGHTFLOW_TEST_OUTER:-unset}"; pwd',
        cwd=str(tmp_path),
        env={"GREETING": "hi", "PATH": os.environ["PATH"]},
        callback_stdout=lambda line, *args: lines.append(line),
    )
    task._run(data, store, signal, context)
    assert lines == ["hi\n", "unset\n", f"{tmp_path}\n"]


def test_stdin_is_fed_and_closed_and_defaults_to_empty() -> None:
    data, store, signal, context = make_args_bash()
    outputs: list[bytes] = []

    def on_end(returncode: int, stdout_file: Any, *args: Any) -> None:
        outputs.append(stdout_file.read())

    fed = BashTask("stdin", "cat", stdin="héllo\nworld\n", capture_stdout=True, callback_end=on_end)
    fed._run(data, store, signal, context)
    # Without stdin, cat sees end-of-input at once instead of hanging the worker.
    unfed = BashTask("no-stdin", "cat; echo done", capture_stdout=True, callback_end=on_end)
    unfed._run(data, store, signal, context)
    assert outputs == ["héllo\nworld\n".encode(), b"done\n"]


def test_stop_task_from_callback_stdout_kills_the_whole_group() -> None:
    data, store, signal, context = make_args_bash()
    pids: list[int] = []
    statuses: list[TaskStatus] = []

    def on_stdout(line: str, *args: Any) -> None:
        pids.append(int(line))
        raise StopTask("seen enough")

    task = BashTask(
        "stop",
        GRANDCHILD,
        callback_process=lambda pid, *args: pids.append(pid),
        callback_stdout=on_stdout,
        callback_finally=lambda status, *args: statuses.append(status),
    )
    started = time.monotonic()
    with pytest.raises(StopTask, match="seen enough"):
        task._run(data, store, signal, context)

    assert time.monotonic() - started < 5
    assert len(pids) == 2
    assert gone_within(pids, 1.0), "bash or its background sleep outlived the task"
    assert statuses == [TaskStatus.Stopped]


def test_an_error_in_a_callback_kills_the_group_and_propagates() -> None:
    data, store, signal, context = make_args_bash()
    pids: list[int] = []
    statuses: list[TaskStatus] = []

    def on_stderr(line: str, *args: Any) -> None:
        raise ValueError(f"bad line {line.strip()}")

    task = BashTask(
        "error",
        "echo $$; echo oops >&2; sleep 30",
        callback_stdout=lambda line, *args: pids.append(int(line)),
        callback_stderr=on_stderr,
        callback_finally=lambda status, *args: statuses.append(status),
    )
    with pytest.raises(ValueError, match="bad line oops"):
        task._run(data, store, signal, context)
    assert gone_within(pids, 1.0)
    assert statuses == [TaskStatus.Error]


def test_an_error_in_callback_process_kills_the_process() -> None:
    data, store, signal, context = make_args_bash()
    pids: list[int] = []

    def on_process(pid: int, *args: Any) -> None:
        pids.append(pid)
        raise RuntimeError("cannot track it")

    task = BashTask("process", "sleep 30", callback_process=on_process)
    with pytest.raises(RuntimeError, match="cannot track it"):
        task._run(data, store, signal, context)
    assert gone_within(pids, 1.0)


def test_stop_signal_kills_the_group_and_raises_stop_task() -> None:
    data, store, signal, context = make_args_bash()
    pids: list[int] = []
    statuses: list[TaskStatus] = []
    first_line = threading.Event()

    def on_stdout(line: str, *args: Any) -> None:
        pids.append(int(line))
        first_line.set()

    task = BashTask(
        "stoppable",
        GRANDCHILD,
        callback_stdout=on_stdout,
        callback_finally=lambda status, *args: statuses.append(status),
    )
    stopped_at: list[float] = []

    def stop_soon() -> None:
        assert first_line.wait(5)
        time.sleep(0.3)
        stopped_at.append(time.monotonic())
        signal.stopped = True

    stopper = threading.Thread(target=stop_soon)
    stopper.start()
    started = time.monotonic()
    with pytest.raises(StopTask, match="stopped") as raised:
        task._run(data, store, signal, context)
    returned = time.monotonic()
    stopper.join()

    assert raised.value.skip_successors is True
    assert returned - stopped_at[0] < 1.0
    assert gone_within(pids, 0.5)
    assert statuses == [TaskStatus.Stopped]
    # The signal is read at most every 0.2 s (it may cost a network round trip).
    assert signal.reads <= (returned - started) / 0.2 + 2


def test_a_group_ignoring_sigterm_is_killed_after_the_grace_period() -> None:
    data, store, signal, context = make_args_bash()
    pids: list[int] = []

    def on_stdout(line: str, *args: Any) -> None:
        pids.append(int(line))
        raise StopTask("enough")

    task = BashTask("stubborn", f"trap '' TERM; {GRANDCHILD}", callback_stdout=on_stdout)
    task.terminate_timeout = 0.5
    started = time.monotonic()
    with pytest.raises(StopTask):
        task._run(data, store, signal, context)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3
    assert gone_within(pids, 1.0)


def test_background_processes_left_by_bash_are_terminated_when_it_exits() -> None:
    data, store, signal, context = make_args_bash()
    pids: list[int] = []
    task = BashTask(
        "leftover", "sleep 30 & echo $!", callback_stdout=lambda line, *args: pids.append(int(line))
    )
    started = time.monotonic()
    task._run(data, store, signal, context)
    # The sleep holds stdout open: without terminating it the task would wait 30 s.
    assert time.monotonic() - started < 5
    assert gone_within(pids, 1.0)


def test_an_interrupted_task_kills_the_group() -> None:
    data, store, _, context = make_args_bash()
    pids: list[int] = []
    first_line = threading.Event()

    class InterruptingSignal:
        @property
        def is_stopped(self) -> bool:
            if first_line.is_set():
                raise KeyboardInterrupt
            return False

    def on_stdout(line: str, *args: Any) -> None:
        pids.append(int(line))
        first_line.set()

    task = BashTask("interrupted", GRANDCHILD, callback_stdout=on_stdout)
    with pytest.raises(KeyboardInterrupt):
        task._run(data, store, InterruptingSignal(), context)
    assert len(pids) == 1
    assert gone_within(pids, 1.0)


def test_a_command_that_is_not_a_string_is_a_clear_error() -> None:
    data, store, signal, context = make_args_bash()
    statuses: list[TaskStatus] = []
    task = BashTask(
        "typo",
        lambda d, s: ["ls", "-l"],
        callback_finally=lambda status, *args: statuses.append(status),
    )
    with pytest.raises(TaskDefinitionError) as raised:
        task._run(data, store, signal, context)
    message = str(raised.value)
    assert message == "task 'typo': command must be a str, got list (['ls', '-l'])"
    assert statuses == [TaskStatus.Error]


def test_a_command_that_cannot_start_is_a_clear_error(tmp_path: Any) -> None:
    data, store, signal, context = make_args_bash()
    missing = tmp_path / "missing"
    task = BashTask("nowhere", "true", cwd=str(missing))
    with pytest.raises(TaskDefinitionError, match="task 'nowhere' could not start its command"):
        task._run(data, store, signal, context)


def test_a_non_callable_callback_is_rejected_at_definition() -> None:
    with pytest.raises(TaskDefinitionError, match="task 'bad': callback_end must be a function"):
        BashTask("bad", "true", callback_end="print")  # type: ignore[arg-type]
