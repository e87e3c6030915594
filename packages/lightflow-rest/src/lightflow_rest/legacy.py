"""The endpoints of lightflow-rest 1.x, kept so that existing clients keep working.

Same paths, methods, form-encoded arguments and response keys as 1.x; errors are
``{"error": message}`` with a 4xx status (1.x answered some with 500). What 1.x read
from Celery's ``inspect`` is mapped onto run states (docs/rest.md has the table):

* ``/workflow/`` and ``/workflow/active``: running runs, each with its running DAGs
  and tasks (1.x: the jobs workers were executing);
* ``/workflow/reserved``: queued runs, recorded but not yet taken by a worker (1.x:
  jobs a worker had prefetched);
* ``/workflow/registered``: every run not yet ended, queued or running (1.x listed
  Celery's registered task types here, which never parsed as jobs).
"""

from __future__ import annotations

from typing import Any

from lightflow import api
from lightflow.config import SECRET
from lightflow.exceptions import RunNotFoundError

from . import records
from .context import config, workflow_name
from .errors import LEGACY_BLUEPRINT
from .schemas import RUN_ID, ref
from .settings import OPERATE, READ
from .spec import FORM, ApiBlueprint, Param, Reply

legacy = ApiBlueprint(LEGACY_BLUEPRINT, __name__, tag="1.x")

_FLAG = {"type": "string", "enum": ["0", "1"]}
_JOBS = Reply("The runs as 1.x job entries", ref("LegacyJobList"))


@legacy.operation(
    "POST",
    "/workflow/<name>",
    summary="Start a workflow (1.x)",
    role=OPERATE,
    params=[
        Param("name", {"type": "string", "maxLength": 200}, "The workflow's name", "path"),
        Param("keep_data", {**_FLAG, "default": "0"}, "1: keep the run's data store"),
    ],
    body={"type": "object", "additionalProperties": {"type": "string"}},
    body_media=FORM,
    replies={200: Reply("The run's id", ref("LegacyStarted"))},
    errors=(404,),
)
def start_workflow_1x(name: str, keep_data: str, body: dict[str, str]) -> Any:
    """The workflow's arguments are the form fields, converted by its ``Parameters``."""
    run_id = api.start_workflow(
        workflow_name(name), body, config=config(), keep_data=keep_data == "1"
    )
    return {"id": run_id}


@legacy.operation(
    "DELETE",
    "/workflow/<target>",
    summary="Stop a run, or every run of a workflow (1.x)",
    role=OPERATE,
    params=[
        Param(
            "target",
            {"type": "string", "pattern": RUN_ID, "maxLength": 200},
            "A run id or a workflow name",
            "path",
        )
    ],
    replies={200: Reply("success: whether anything was stopped", ref("LegacySuccess"))},
    errors=(404,),
)
def stop_workflow_1x(target: str) -> Any:
    """``success`` is true only if a queued or running run was stopped."""
    return {"success": bool(api.stop_workflows([target], config=config()))}


@legacy.operation(
    "GET", "/workflow/", summary="Running runs (1.x)", role=READ, replies={200: _JOBS}
)
def list_workflows_1x() -> Any:
    """The same as ``/workflow/active``."""
    return _active()


@legacy.operation(
    "GET", "/workflow/active", summary="Running runs (1.x)", role=READ, replies={200: _JOBS}
)
def active_workflows_1x() -> Any:
    """Each running run with its running DAGs and tasks."""
    return _active()


@legacy.operation(
    "GET",
    "/workflow/registered",
    summary="Queued and running runs (1.x)",
    role=READ,
    replies={200: _JOBS},
)
def registered_workflows_1x() -> Any:
    """Every run that has not ended."""
    return _jobs(api.UNFINISHED_STATES)


@legacy.operation(
    "GET", "/workflow/reserved", summary="Queued runs (1.x)", role=READ, replies={200: _JOBS}
)
def reserved_workflows_1x() -> Any:
    """Runs recorded and waiting for a worker."""
    return _jobs(("queued",))


@legacy.operation(
    "GET",
    "/workflow/available",
    summary="The workflows with their arguments (1.x)",
    role=READ,
    replies={200: Reply("name, arguments and docs of each workflow", ref("LegacyAvailable"))},
)
def available_workflows_1x() -> Any:
    """Files that cannot be loaded are left out, as in 1.x."""
    described = api.list_workflows(config=config())
    return {
        "workflows": [
            {
                "name": workflow["name"],
                "arguments": [
                    {
                        "name": option["name"],
                        "type": option["type"],
                        "docs": option["help"] or None,
                        "default": records.json_data(option["default"]),
                    }
                    for option in workflow["parameters"]
                ],
                "docs": workflow["summary"],
            }
            for workflow in described
            if "error" not in workflow
        ]
    }


@legacy.operation(
    "GET",
    "/worker/",
    summary="The live workers (1.x)",
    role=READ,
    params=[
        Param(
            "queue",
            {"type": "array", "items": {"type": "string"}},
            "Only workers consuming this queue (repeat for several)",
        ),
        Param("details", {**_FLAG, "default": "0"}, "1: add each worker's running jobs"),
    ],
    replies={200: Reply("The workers", ref("LegacyWorkerList"))},
)
def list_workers_1x(queue: list[str] | None, details: str) -> Any:
    """With ``details=1`` each worker has ``jobs``: its running jobs as 1.x entries."""
    workers = []
    for entry in api.list_workers(config=config()):
        if queue and not set(queue) & set(entry.get("queues") or []):
            continue
        worker = records.worker(entry)
        shaped = {
            "name": worker["name"],
            "pid": worker["pid"],
            "concurrency": worker["concurrency"],
            "queues": [{"name": name, "routing_key": name} for name in worker["queues"]],
            "state": worker["state"],
        }
        if details == "1":
            jobs = (
                records.legacy_worker_job(job, worker["name"]) for job in worker["running"] or []
            )
            shaped["jobs"] = [job for job in jobs if job is not None]
        workers.append(shaped)
    return {"workers": workers}


@legacy.operation(
    "DELETE",
    "/worker/<name>",
    summary="Stop a worker after its current jobs (1.x)",
    role=OPERATE,
    params=[
        Param("name", {"type": "string", "maxLength": 300}, "The worker's name (name@host)", "path")
    ],
    replies={200: Reply("success: whether a live worker was told to stop", ref("LegacySuccess"))},
)
def stop_worker_1x(name: str) -> Any:
    """``success`` is false when no live worker has that name."""
    return {"success": name in api.stop_workers([name], config=config())}


@legacy.operation(
    "GET",
    "/config/",
    summary="The configuration, secrets masked (1.x)",
    role=READ,
    replies={200: Reply("The configuration", ref("Config"))},
)
def show_config_1x() -> Any:
    """Passwords in URLs, password settings and the REST tokens are shown as
    ``********``."""
    shown = records.json_data(config().redacted())
    rest = shown.get("extensions", {}).get("rest", {})
    for entry in rest.get("tokens") or []:
        if isinstance(entry, dict) and entry.get("token"):
            entry["token"] = SECRET
    return shown


def _active() -> dict[str, Any]:
    running = api.list_runs(config=config(), state="running")
    details = []
    for run in running:
        try:
            details.append(records.run_detail(api.run_status(run["id"], config=config())))
        except RunNotFoundError:  # pruned meanwhile
            continue
    return {"workflows": [records.legacy_active(detail) for detail in details]}


def _jobs(states: tuple[str, ...]) -> dict[str, Any]:
    runs = api.list_runs(config=config(), state=states)
    return {
        "workflows": [
            records.legacy_job(
                "workflow",
                run["workflow"],
                run["id"],
                state=run["state"],
                routing_key=run.get("queue"),
            )
            for run in runs
        ]
    }
