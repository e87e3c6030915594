"""The API's view of workflows: listing, describing and drawing them as plain data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lightflow import api
from lightflow.config import Config
from lightflow.exceptions import WorkflowNotFoundError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "broken.py").write_text("import no_such_module_here\n")
    return Config.from_dict({"workflows": [str(EXAMPLES), str(tmp_path)]})


def test_list_workflows_describes_each_file_and_names_the_broken_one(config: Config) -> None:
    listed = {entry["name"]: entry for entry in api.list_workflows(config=config)}
    assert {"parameters", "multi_input", "broken"} <= set(listed)
    broken = listed["broken"]
    assert "No module named 'no_such_module_here'" in broken["error"]
    assert "parameters" not in broken
    parameters = listed["parameters"]
    assert parameters["summary"].startswith("Parameters: arguments a workflow accepts")
    assert parameters["dags"] == [{"name": "parameters", "autostart": True, "queue": "dag"}]
    assert parameters["parameters"] == [
        {"name": "sample", "type": "str", "default": None, "required": True,
         "help": "Name of the sample on the goniometer"},
        {"name": "exposure", "type": "float", "default": 0.5, "required": False,
         "help": "Exposure time per frame in s"},
        {"name": "frames", "type": "int", "default": 3, "required": False,
         "help": "Number of frames to take"},
        {"name": "dark", "type": "bool", "default": True, "required": False,
         "help": "Take a dark frame first"},
    ]  # fmt: skip
    json.dumps(listed)  # plain data, for the REST API


def test_an_unserialisable_default_is_described_as_text(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(
        "from pathlib import Path\n"
        "from lightflow.models import Dag, Option, Parameters\n"
        "from lightflow.tasks import PythonTask\n"
        "parameters = Parameters([Option('where', default=Path('/data'), type=Path)])\n"
        "d = Dag('d')\n"
        "d.define({PythonTask('t', lambda *a: None): None})\n"
    )
    described = api.describe(api.load(str(tmp_path / "odd.py")))
    assert described["parameters"][0]["default"] == "PosixPath('/data')"
    assert described["parameters"][0]["type"] == "Path"


def test_workflow_graph_gives_tasks_and_edges_with_their_slots(config: Config) -> None:
    graph = api.workflow_graph("multi_input", config=config)
    assert graph["name"] == "multi_input"
    (dag,) = graph["dags"]
    names = [task["name"] for task in dag["tasks"]]
    assert names == ["read_left", "stitch", "read_right", "save"]  # first mentioned first
    assert {"from": "read_left", "to": "stitch", "slot": "left"} in dag["edges"]
    assert {"from": "read_right", "to": "stitch", "slot": "right"} in dag["edges"]
    assert all(task["type"] == "PythonTask" for task in dag["tasks"])
    json.dumps(graph)


def test_render_graph_draws_mermaid_and_refuses_an_unknown_workflow(config: Config) -> None:
    assert api.render_graph("multi_input", "mermaid", config=config).startswith("flowchart")
    with pytest.raises(WorkflowNotFoundError, match="no workflow named 'nope'"):
        api.workflow_graph("nope", config=config)


def test_config_redacted_hides_passwords_in_keys_and_urls() -> None:
    config = Config.from_dict(
        {
            "celery": {"broker_url": "redis://:s3cret@host:6379/0"},
            "store": {"password": "mongo-pw", "username": "lf"},
            "signal": {"password": ""},
        }
    )
    shown = config.redacted()
    assert shown["celery"]["broker_url"] == "redis://:********@host:6379/0"
    assert shown["store"]["password"] == "********"
    assert shown["store"]["username"] == "lf"
    assert shown["signal"]["password"] == ""  # nothing to hide
    assert config.to_dict()["store"]["password"] == "mongo-pw"  # a copy was masked
