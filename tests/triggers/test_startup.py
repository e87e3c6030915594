"""``lightflow triggers run`` refuses what cannot work with one line, before starting any.

Every case is a real ``lightflow triggers run`` on a config declaring ``lines``
triggers; it must exit 1 with exactly one ``Error:`` line on stderr, nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..cli import clean_environment, run_lightflow
from .helpers import write_config


def lines_trigger(folder: Path, name: str = "t1", **settings: Any) -> dict[str, Any]:
    return {
        "source": "lines",
        "workflow": "collect",
        "path": str(folder / f"{name}.sock"),
        "arguments": {"out": str(folder / "out.txt")},
        **settings,
    }


def refused(folder: Path, plugin: Path, triggers: dict[str, Any], *args: str) -> str:
    """Run the triggers; return the one error line (asserting it is alone)."""
    config = write_config(folder / "lightflow.cfg", triggers)
    process = run_lightflow(
        ["-c", str(config), "triggers", "run", "--state-dir", str(folder / "state"), *args],
        cwd=folder,
        env=clean_environment(folder, PYTHONPATH=str(plugin)),
        timeout=30,
    )
    assert process.returncode == 1, (process.returncode, process.stderr)
    lines = process.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), process.stderr
    return lines[0].removeprefix("Error: ")


CASES: dict[str, tuple[Any, list[str], str]] = {
    "workflow declares none of the source's parameters": (
        lambda f: {"t1": lines_trigger(f, workflow="unrelated", arguments={})},
        [],
        "trigger 't1': workflow unrelated declares none of the parameters a lines trigger "
        "passes (items, first); add one to its Parameters, e.g. Option('items')",
    ),
    "unknown fixed argument": (
        lambda f: {"t1": lines_trigger(f, arguments={"out": "x", "colour": "red"})},
        [],
        "trigger 't1': workflow collect has no parameter 'colour' (it accepts: items, out, tag)",
    ),
    "missing required argument": (
        lambda f: {"t1": lines_trigger(f, arguments={})},
        [],
        "trigger 't1': workflow collect needs parameter 'out'; give it in the trigger's "
        "'arguments' (--arg out=VALUE on a watch command)",
    ),
    "fixed argument of the wrong type": (
        lambda f: {
            "t1": lines_trigger(f, workflow="strict", arguments={"out": "x", "limit": "lots"})
        },
        [],
        "trigger 't1': parameter 'limit' expects int, got 'lots'",
    ),
    "duplicate trigger names": (
        lambda f: {"t1": lines_trigger(f)},
        ["t1", "t1"],
        "two triggers are named 't1'; names must be unique",
    ),
    "unknown trigger name": (
        lambda f: {"t1": lines_trigger(f)},
        ["t2"],
        "no trigger named 't2' in the 'triggers' section of {config} (triggers: t1)",
    ),
    "unknown kind": (
        lambda f: {"t1": {**lines_trigger(f), "source": "carrier-pigeon"}},
        [],
        "triggers.t1 has an unknown source 'carrier-pigeon'; the kinds installed are: ",
    ),
    "unknown source setting": (
        lambda f: {"t1": lines_trigger(f, colour="red")},
        [],
        "triggers.t1: unknown setting 'colour' of a lines source",
    ),
    "invalid aggregate": (
        lambda f: {"t1": lines_trigger(f, aggregate=0)},
        [],
        "trigger 't1': aggregate must be a whole number of events of at least 1, got 0",
    ),
    "arguments that are no mapping": (
        lambda f: {"t1": lines_trigger(f, arguments=["out"])},
        [],
        "trigger 't1': arguments must map parameter names to values",
    ),
    "missing workflow": (
        lambda f: {"t1": lines_trigger(f, workflow="nowhere")},
        [],
        "trigger 't1': ",
    ),
    "cluster engine without a broker": (
        lambda f: {"t1": lines_trigger(f)},
        ["--cluster"],
        "triggers cannot start runs on the cluster: no broker is configured "
        "(celery.broker_url in lightflow.cfg); or run them on the embedded engine",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_with_one_line(case: str, tmp_path: Path, plugin_path: Path) -> None:
    triggers, args, expected = CASES[case]
    line = refused(tmp_path, plugin_path, triggers(tmp_path), *args)
    expected = expected.format(config=tmp_path / "lightflow.cfg")
    if expected.endswith(": "):  # the rest names what is installed or what is missing
        assert line.startswith(expected), line
    else:
        assert line == expected
    assert not (tmp_path / "t1.sock").exists()  # nothing started


def test_a_source_that_cannot_start_stops_those_started_before_it(
    tmp_path: Path, plugin_path: Path
) -> None:
    triggers = {
        "good": lines_trigger(tmp_path, "good"),
        "bad": lines_trigger(tmp_path, "bad", path=str(tmp_path / "missing" / "bad.sock")),
    }
    line = refused(tmp_path, plugin_path, triggers)
    assert line == (
        f"trigger 'bad': cannot listen on {tmp_path / 'missing' / 'bad.sock'}: "
        "No such file or directory"
    )
    assert not (tmp_path / "good.sock").exists()  # started, then stopped again
