"""The versioned API, ``/api/v2``: runs, events, workflows, workers, triggers, health.

Each view parses nothing itself (its :class:`~lightflow_rest.spec.Operation` did),
calls :mod:`lightflow.api` and shapes the answer (:mod:`.records`); errors are the
core's typed errors, rendered by :mod:`.errors`. The docstrings are the operations'
descriptions in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from flask import g, request, url_for
from lightflow import api
from lightflow.exceptions import LightflowError

from . import context, records, streams
from .context import config, event_stream, workflow_name
from .errors import ApiError
from .schemas import RUN_ID, START_RUN, WORKFLOW_NAME, ref
from .settings import OPERATE, READ
from .spec import EVENT_STREAM, ApiBlueprint, Param, Reply, openapi_document
from .version import __version__

v2 = ApiBlueprint("v2", __name__, url_prefix="/api/v2", tag="v2")

RUN = Param(
    "run_id",
    {"type": "string", "pattern": RUN_ID, "maxLength": 128},
    "A run id (or a unique prefix)",
    "path",
)
WORKFLOW = Param(
    "name",
    {"type": "string", "pattern": WORKFLOW_NAME, "maxLength": 200},
    "A workflow name",
    "path",
)
_EVENTS = Reply(
    "Server-Sent Events, each's data one JSON event (schema Event)",
    {"type": "string"},
    EVENT_STREAM,
)
_MAX_PAGE = 1000


def _resolved_run(run_id: str) -> dict[str, Any]:
    """The run's full record (raises the core's ``RunNotFoundError``: 404)."""
    return api.run_status(run_id, config=config())


def _stream() -> streams.Stream:
    server = context.state()
    return streams.Stream(
        server.settings.heartbeat, streams.client_watch(request.environ), server.alive
    )


# -- health and the document -------------------------------------------------------------


@v2.operation(
    "GET",
    "/health",
    summary="Whether the server and its state server answer",
    role=None,
    replies={
        200: Reply("Serving", ref("Health")),
        503: Reply("The state server cannot be reached", ref("Health")),
    },
)
def health() -> Any:
    """Needs no token, for load balancers and monitoring."""
    try:
        api.check_state_server(config())
    except LightflowError as error:
        return {"status": "unavailable", "version": __version__, "state_server": str(error)}, 503
    return {"status": "ok", "version": __version__, "state_server": "ok"}


@v2.operation(
    "GET",
    "/openapi.json",
    summary="This document",
    role=READ,
    replies={200: Reply("The OpenAPI 3 document", {"type": "object"})},
)
def openapi() -> Any:
    """The OpenAPI document of every endpoint, the 1.x ones included."""
    from .legacy import legacy

    return openapi_document([v2, legacy], __version__)


@v2.operation(
    "GET",
    "/token",
    summary="The role of the token sent",
    role=READ,
    replies={200: Reply("The token's role", ref("TokenRole"))},
)
def token_role() -> Any:
    """The dashboard asks, to offer starting and stopping only to the operate role."""
    return {"role": g.role}


# -- runs --------------------------------------------------------------------------------


@v2.operation(
    "GET",
    "/runs",
    summary="List runs, newest first",
    role=READ,
    params=[
        Param("state", {"type": "string", "enum": list(api.RUN_STATES)}, "Only runs in this state"),
        Param("workflow", {"type": "string", "maxLength": 200}, "Only runs of this workflow"),
        Param(
            "since",
            {"type": "number", "minimum": 0},
            "Only runs created at or after this time (seconds since the epoch)",
        ),
        Param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": _MAX_PAGE, "default": 100},
            "Runs per page",
        ),
        Param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Runs to skip (paging)"),
    ],
    replies={200: Reply("A page of runs", ref("RunList"))},
)
def list_runs(
    state: str | None, workflow: str | None, since: float | None, limit: int, offset: int
) -> Any:
    """Runs of every workflow, filtered and paged; a run's DAGs and tasks are at
    ``/runs/{run_id}``."""
    found = api.list_runs(
        config=config(), state=state, workflow=workflow, since=since, limit=limit, offset=offset
    )
    return {"runs": [records.run(record) for record in found], "limit": limit, "offset": offset}


@v2.operation(
    "POST",
    "/runs",
    summary="Start a run of a workflow",
    role=OPERATE,
    body=START_RUN,
    replies={201: Reply("The run is queued", ref("RunStarted"))},
    errors=(404, 422),
)
def start_run(body: dict[str, Any]) -> Any:
    """The workflow is one of the server's workflow folders, by name; its
    ``Parameters`` check the arguments (422 with the reason) before anything is queued."""
    name = workflow_name(body["workflow"])
    run_id = api.start_workflow(
        name,
        body.get("arguments") or {},
        config=config(),
        keep_data=body.get("keep_data", False),
        queue=body.get("queue", "workflow"),
    )
    return {"id": run_id, "url": url_for("v2.get_run", run_id=run_id)}, 201


@v2.operation(
    "GET",
    "/runs/<run_id>",
    summary="One run with its DAGs and tasks",
    role=READ,
    params=[RUN],
    replies={200: Reply("The run", ref("RunDetail"))},
    errors=(404,),
)
def get_run(run_id: str) -> Any:
    """Each task with its state, worker, start, end, duration, and for a failed task
    the error and the traceback of its own code."""
    return records.run_detail(_resolved_run(run_id))


@v2.operation(
    "POST",
    "/runs/<run_id>/stop",
    summary="Stop a run",
    role=OPERATE,
    params=[
        RUN,
        Param(
            "grace",
            {"type": "number", "minimum": 0},
            "Seconds running tasks get to end before their processes are terminated "
            "(default: the server's signal.stop_grace, 10)",
        ),
        Param(
            "force",
            {"type": "boolean", "default": False},
            "Terminate the processes of running tasks at once (no grace)",
        ),
    ],
    replies={200: Reply("Whether the run was asked to stop", ref("RunStopped"))},
    errors=(404,),
)
def stop_run(run_id: str, grace: float | None, force: bool) -> Any:
    """Nothing more of the run is queued and its running tasks see ``is_stopped``; a
    task still running after the grace period is recorded stopped and its worker
    terminates its process. ``stopped`` is false for a run that had already ended. The
    server needs none of the workflow's code or dependencies for this."""
    if force and grace is not None:
        raise ApiError(400, "give force or grace, not both (force is grace=0)")
    full_id = _resolved_run(run_id)["id"]
    stopped = api.stop_workflows([full_id], config=config(), grace=grace, force=force)
    return {"id": full_id, "stopped": full_id in stopped}


@v2.operation(
    "GET",
    "/runs/<run_id>/logs",
    summary="A page of a run's log lines",
    role=READ,
    params=[
        RUN,
        Param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Lines to skip"),
        Param(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000},
            "Lines per page",
        ),
    ],
    replies={200: Reply("The lines", ref("Logs"))},
    errors=(404,),
)
def run_logs(run_id: str, offset: int, limit: int) -> Any:
    """What the run's tasks printed and logged, oldest first."""
    lines = api.run_logs(run_id, config=config(), offset=offset, limit=limit)
    return {"lines": lines, "offset": offset, "next_offset": offset + len(lines)}


@v2.operation(
    "GET",
    "/runs/<run_id>/logs/stream",
    summary="Follow a run's log live (Server-Sent Events)",
    role=READ,
    params=[
        RUN,
        Param(
            "Last-Event-ID",
            {"type": "integer", "minimum": 0},
            "The last line number received",
            "header",
        ),
    ],
    replies={
        200: Reply(
            "One event per line (id: its number), then an 'end' event",
            {"type": "string"},
            EVENT_STREAM,
        )
    },
    errors=(404,),
)
def follow_logs(run_id: str, last_event_id: int | None) -> Any:
    """The lines written so far, then each line as it is written, until the run ends."""
    full_id = _resolved_run(run_id)["id"]
    return event_stream(streams.run_log(config(), full_id, _stream(), last_event_id))


@v2.operation(
    "GET",
    "/runs/<run_id>/events",
    summary="Follow a run's events live (Server-Sent Events)",
    role=READ,
    params=[
        RUN,
        Param(
            "Last-Event-ID",
            {"type": "integer", "minimum": 0},
            "The position of the last event received",
            "header",
        ),
    ],
    replies={200: _EVENTS},
    errors=(404,),
)
def run_events(run_id: str, last_event_id: int | None) -> Any:
    """The run's past events, then the live ones; the stream ends with an 'end' event
    after the run's ``workflow_finished``. An event's id is its position in the run's
    history: reconnect with ``Last-Event-ID`` to go on after it."""
    full_id = _resolved_run(run_id)["id"]
    return event_stream(streams.one_run(config(), full_id, _stream(), last_event_id))


@v2.operation(
    "GET",
    "/runs/<run_id>/data",
    summary="Read a run's data store",
    role=READ,
    params=[
        RUN,
        Param(
            "section",
            {"type": "string", "enum": ["data", "meta"], "default": "data"},
            "The store section",
        ),
        Param(
            "key",
            {"type": "string", "minLength": 1, "maxLength": 500},
            "A dot-notation key; without it, the section's top-level keys",
        ),
    ],
    replies={200: Reply("The value at the key", ref("StoreValue"))},
    errors=(404,),
)
def run_data(run_id: str, section: str, key: str | None) -> Any:
    """Read-only, browsed key by key: ``keys`` are the names below ``key`` (the
    section's top level without it), ``value`` the value at ``key`` when it is not a
    mapping (a value that is not JSON data is shown by its type and repr). A run's store
    outlives it only when it was started with ``keep_data``."""
    return api.run_data(run_id, config=config(), key=key, section=section)


@v2.operation(
    "GET",
    "/events",
    summary="Follow every run's events live (Server-Sent Events)",
    role=READ,
    params=[
        Param(
            "Last-Event-ID",
            {"type": "string", "pattern": r"^\d{1,15}-\d{1,9}$"},
            "The id of the last event received",
            "header",
        )
    ],
    replies={200: _EVENTS},
)
def all_events(last_event_id: str | None) -> Any:
    """What ``lightflow monitor`` shows, for every run, from now on. Each event's id
    is its entry in the state server's stream of events: reconnect with
    ``Last-Event-ID`` to receive what was missed meanwhile."""
    return event_stream(streams.all_runs(context.state().hub, _stream(), last_event_id))


# -- workflows, workers, triggers --------------------------------------------------------


@v2.operation(
    "GET",
    "/workflows",
    summary="The workflows of the workflow folders",
    role=READ,
    replies={200: Reply("Each with its parameters and DAGs", ref("WorkflowList"))},
)
def list_workflows() -> Any:
    """A file that cannot be loaded is listed with ``error`` instead of its parameters."""
    return {"workflows": records.json_data(api.list_workflows(config=config()))}


@v2.operation(
    "GET",
    "/workflows/<name>",
    summary="One workflow with its parameters",
    role=READ,
    params=[WORKFLOW],
    replies={200: Reply("The workflow", ref("Workflow"))},
    errors=(404,),
)
def get_workflow(name: str) -> Any:
    """Its docstring, its parameters (type, default, help, required) and its DAGs."""
    loaded = api.load(workflow_name(name), config())
    return records.json_data(api.describe(loaded, name=name))


@v2.operation(
    "GET",
    "/workflows/<name>/graph",
    summary="A workflow's DAGs as nodes and edges",
    role=READ,
    params=[WORKFLOW],
    replies={200: Reply("The graph", ref("Graph"))},
    errors=(404,),
)
def workflow_graph(name: str) -> Any:
    """Tasks in definition order; an edge's ``slot`` is the alias the schema gave it."""
    return api.workflow_graph(workflow_name(name), config=config())


@v2.operation(
    "GET",
    "/workers",
    summary="The live workers",
    role=READ,
    replies={200: Reply("Each with its queues and its jobs now", ref("WorkerList"))},
)
def list_workers() -> Any:
    """A worker told to stop is listed as ``stopping`` until it exits."""
    return {"workers": [records.worker(entry) for entry in api.list_workers(config=config())]}


@v2.operation(
    "POST",
    "/workers/<name>/stop",
    summary="Stop a worker after its current jobs",
    role=OPERATE,
    params=[
        Param("name", {"type": "string", "maxLength": 300}, "The worker's name (name@host)", "path")
    ],
    replies={200: Reply("The worker was told to stop", ref("WorkerStopped"))},
    errors=(404,),
)
def stop_worker(name: str) -> Any:
    """404 when no live worker has that name."""
    stopped = api.stop_workers([name], config=config())
    if name not in stopped:
        raise ApiError(404, f"no live worker is named '{name}'; GET /api/v2/workers lists them")
    return {"name": name, "stopped": True}


@v2.operation(
    "GET",
    "/triggers",
    summary="The triggers, declared and running",
    role=READ,
    replies={200: Reply("Each with its state and counts", ref("TriggerList"))},
)
def list_triggers() -> Any:
    """Triggers of the configuration's ``triggers`` section and those running (see
    ``lightflow triggers list``), and the kinds of trigger source installed."""
    triggers = api.list_triggers(config=config())
    return {"triggers": records.json_data(triggers), "kinds": api.trigger_kinds()}
