"""The config's ``logging`` section: applied by the commands that run or follow work.

Every command runs in a real ``lightflow`` subprocess, so each test gets a fresh
``logging`` module and the section's handlers write real files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import clean_environment, run_lightflow

FORMAT = "%(levelname)s %(name)s :: %(message)s"

LOGGING_WORKFLOW = '''\
"""One task that logs inside and outside `lightflow.*`, at INFO and WARNING."""
import logging

from lightflow.models import Dag
from lightflow.tasks import PythonTask


def expose(data, store, signal, context):
    logging.getLogger("lightflow.beamline").info("exposure of %s done", "scan_0042")
    logging.getLogger("lightflow.beamline").warning("detector at %d C", 41)
    logging.getLogger("beamline").info("shutter closed")
    logging.getLogger("beamline").warning("beam current low")


main = Dag("main")
main.define({PythonTask("expose", expose): None})
'''

DEAD_BROKER = "redis://127.0.0.1:1/0"


def file_section(path: Path, **logger: object) -> dict[str, object]:
    """A section sending logger ``lightflow`` at INFO to ``path`` in :data:`FORMAT`."""
    return {
        "version": 1,
        "formatters": {"mine": {"format": FORMAT}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(path),
                "level": "INFO",
                "formatter": "mine",
            }
        },
        "loggers": {"lightflow": {"handlers": ["file"], "level": "INFO", **logger}},
    }


def write_config(folder: Path, **sections: object) -> Path:
    path = folder / "lightflow.cfg"
    path.write_text(yaml.safe_dump(sections))
    return path


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "expose.py"
    path.write_text(LOGGING_WORKFLOW)
    return path


def test_run_writes_the_lines_of_lightflow_loggers_to_the_sections_file(
    tmp_path: Path, workflow: Path
) -> None:
    log_file = tmp_path / "lightflow.log"
    config = write_config(tmp_path, logging=file_section(log_file))
    process = run_lightflow(
        ["-c", str(config), "run", str(workflow)], cwd=tmp_path, env=clean_environment(tmp_path)
    )
    assert process.returncode == 0, process.stderr
    assert log_file.read_text().splitlines() == [
        "INFO lightflow.beamline :: exposure of scan_0042 done",
        "WARNING lightflow.beamline :: detector at 41 C",
    ]
    # the progress lines are the command's own output, untouched
    assert "  ▸ main/expose" in process.stdout.splitlines()
    assert "Workflow expose succeeded" in process.stdout
    # a record no handler takes still goes to Python's fallback: warnings, bare
    assert process.stderr == "beam current low\n"


def test_the_default_section_keeps_todays_console_output(tmp_path: Path, workflow: Path) -> None:
    process = run_lightflow(["run", str(workflow)], cwd=tmp_path, env=clean_environment(tmp_path))
    assert process.returncode == 0, process.stderr
    # as without any logging set-up: warnings only, as they are, no INFO lines
    assert process.stderr == "detector at 41 C\nbeam current low\n"
    progress = [line for line in process.stdout.splitlines() if "main/expose" in line]
    assert progress[0] == "  ▸ main/expose" and progress[1].startswith("  ✓ main/expose  ")
    assert len(progress) == 2


def test_a_section_in_the_file_replaces_the_default_as_a_whole(tmp_path: Path) -> None:
    from lightflow.config import Config

    section = file_section(tmp_path / "x.log")
    (tmp_path / "site").mkdir()
    config = Config.load(write_config(tmp_path / "site", logging=section), {"HOME": str(tmp_path)})
    assert config.logging == section  # no disable_existing_loggers merged in
    assert Config.load(environ={"HOME": str(tmp_path)}).logging == {
        "version": 1,
        "disable_existing_loggers": False,
    }


@pytest.mark.parametrize(("disable", "still_logs"), [(None, True), (False, True), (True, False)])
def test_existing_loggers_keep_working_unless_the_section_disables_them(
    tmp_path: Path, disable: bool | None, still_logs: bool
) -> None:
    log_file = tmp_path / "root.log"
    section: dict[str, object] = {
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file)}},
        "root": {"handlers": ["file"], "level": "INFO"},
    }
    if disable is not None:
        section["disable_existing_loggers"] = disable
    config = write_config(tmp_path, logging=section)
    # A library's logger made at import time, before the section is applied.
    code = (
        "import logging\n"
        "library = logging.getLogger('detector_library')\n"
        "from lightflow.config import Config\n"
        "from lightflow.log_config import apply_logging\n"
        f"apply_logging(Config.load({str(config)!r}))\n"
        "library.info('library still logs')\n"
        "logging.getLogger('made_after').info('new logger logs')\n"
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
    assert process.returncode == 0, process.stderr
    expected = ["library still logs"] if still_logs else []
    assert log_file.read_text().splitlines() == [*expected, "new logger logs"]


BAD_SECTIONS = {
    "not a mapping": ("[console]", "section 'logging' must be a mapping of settings, got a list"),
    "no version": (
        "{handlers: {}}",
        "section 'logging' has no 'version': it is a logging.config.dictConfig dict and "
        "starts with 'version: 1'",
    ),
    "unknown handler class": (
        "{version: 1, handlers: {file: {class: logging.NoSuchHandler}}}",
        "section 'logging' cannot be applied: Unable to configure handler 'file': "
        "Cannot resolve 'logging.NoSuchHandler': No module named 'logging.NoSuchHandler'",
    ),
    "file cannot be opened": (
        "{version: 1, handlers: {file: {class: logging.FileHandler, filename: MISSING}}}",
        "section 'logging' cannot be applied: Unable to configure handler 'file': "
        "[Errno 2] No such file or directory: 'MISSING'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SECTIONS))
def test_a_broken_section_stops_run_with_one_line_naming_it(
    tmp_path: Path, workflow: Path, case: str
) -> None:
    text, message = BAD_SECTIONS[case]
    missing = str(tmp_path / "no-such-folder" / "lightflow.log")
    config = tmp_path / "lightflow.cfg"
    config.write_text(f"logging: {text.replace('MISSING', missing)}\n")
    process = run_lightflow(
        ["-c", str(config), "run", str(workflow)], cwd=tmp_path, env=clean_environment(tmp_path)
    )
    assert process.returncode == 1
    assert process.stderr == f"Error: {config}: {message.replace('MISSING', missing)}\n"
    assert process.stdout == ""  # nothing ran


@pytest.mark.parametrize(
    "command",
    [["worker", "start"], ["monitor"], ["workflow", "start", "--wait", "WORKFLOW"]],
    ids=["worker start", "monitor", "workflow start --wait"],
)
def test_commands_that_follow_work_apply_the_section_before_they_start(
    tmp_path: Path, workflow: Path, command: list[str]
) -> None:
    # Nothing listens on the broker's port: the section must be refused first.
    config = tmp_path / "lightflow.cfg"
    config.write_text(
        f"celery: {{broker_url: '{DEAD_BROKER}'}}\n"
        "logging: {version: 1, handlers: {file: {class: logging.NoSuchHandler}}}\n"
    )
    args = [str(workflow) if arg == "WORKFLOW" else arg for arg in command]
    process = run_lightflow(
        ["-c", str(config), *args], cwd=tmp_path, env=clean_environment(tmp_path), timeout=30
    )
    assert process.returncode == 1
    assert process.stderr.startswith(f"Error: {config}: section 'logging' cannot be applied: ")
    assert process.stderr.count("\n") == 1, process.stderr
    assert process.stdout == ""


def test_other_commands_leave_logging_alone_and_do_not_import_it(tmp_path: Path) -> None:
    log_file = tmp_path / "lightflow.log"
    config = write_config(tmp_path, logging=file_section(log_file))
    code = (
        "import sys\n"
        "from lightflow.cli import main\n"
        "for args in (['--help'], ['-c', sys.argv[1], 'config', 'list'],\n"
        "             ['-c', sys.argv[1], 'workflow', 'list']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exit:\n"
        "        assert not exit.code, (args, exit.code)\n"
        "sys.stderr.write(str('logging.config' in sys.modules))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        cwd=tmp_path,
        env=clean_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert process.returncode == 0, process.stderr
    assert process.stderr == "False"
    assert not log_file.exists()  # the handler was never made


def test_config_list_shows_a_section_that_cannot_be_applied(tmp_path: Path) -> None:
    config = tmp_path / "lightflow.cfg"
    config.write_text("logging: {version: 1, handlers: {file: {class: logging.NoSuchHandler}}}\n")
    process = run_lightflow(
        ["-c", str(config), "config", "list"], cwd=tmp_path, env=clean_environment(tmp_path)
    )
    assert process.returncode == 0, process.stderr
    assert "logging.NoSuchHandler" in process.stdout
