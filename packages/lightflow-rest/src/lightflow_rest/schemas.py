"""The JSON schemas of what the API takes and gives: the OpenAPI components.

Request schemas (:data:`START_RUN`) are checked by :func:`lightflow_rest.spec.check`
before a view runs; response schemas describe what the views build from the core's
records (:mod:`lightflow_rest.records`) and are what ``schemathesis`` holds every
response to. Field meanings follow :mod:`lightflow.api`.
"""

from __future__ import annotations

from typing import Any

from lightflow.api import RUN_STATES
from lightflow.events import EventKind

#: A workflow name: dotted file names below a workflow folder, never a path.
WORKFLOW_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)*$"
#: A run id, or a unique prefix of one.
RUN_ID = r"^[A-Za-z0-9_.:-]+$"


def ref(name: str) -> dict[str, str]:
    """A reference to the component ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "nullable": True, **more}


def _object(
    properties: dict[str, Any], required: list[str] | None = None, **more: Any
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required if required is not None else list(properties),
        **more,
    }


def _list_of(key: str, item: dict[str, Any], **more: Any) -> dict[str, Any]:
    return _object({key: {"type": "array", "items": item}, **more})


_TIME = _nullable("number", description="Seconds since the epoch")

_RUN = {
    "id": {"type": "string"},
    "workflow": {"type": "string"},
    "state": {"type": "string", "enum": list(RUN_STATES)},
    "created": _TIME,
    "started": _TIME,
    "ended": _TIME,
    "duration": _nullable("number", description="Seconds from start to end (to now while running)"),
    "arguments": {"type": "object"},
    "queue": _nullable("string"),
    "keep_data": {"type": "boolean"},
    "error": _nullable("string"),
    "failed_dag": _nullable("string"),
    "failed_task": _nullable("string"),
}

_TASK = {
    "name": {"type": "string"},
    "state": {
        "type": "string",
        "description": "queued, started, succeeded, failed, stopped, skipped, aborted or cancelled",
    },
    "worker": _nullable("string"),
    "queue": _nullable("string", description="The queue a queued task waits on"),
    "started": _TIME,
    "ended": _TIME,
    "duration": _nullable("number"),
    "message": _nullable("string", description="Why the task failed, stopped or was aborted"),
    "traceback": _nullable("string", description="The failed task's own code"),
}

_DAG = {
    "name": {"type": "string", "description": "The DAG instance (name, name:2 for a second copy)"},
    "state": {"type": "string"},
    "started": _TIME,
    "ended": _TIME,
    "duration": _nullable("number"),
    "queue": _nullable("string", description="The queue a DAG waits on before it starts"),
    "tasks": {"type": "array", "items": ref("Task")},
}

_PARAMETER = {
    "name": {"type": "string"},
    "type": {"type": "string"},
    "default": {"description": "The default value (text when it is not JSON data)"},
    "required": {"type": "boolean"},
    "help": {"type": "string"},
}

_WORKFLOW = {
    "name": {"type": "string"},
    "path": {"type": "string"},
    "summary": {"type": "string"},
    "docstring": {"type": "string"},
    "parameters": {"type": "array", "items": ref("Parameter")},
    "dags": {
        "type": "array",
        "items": _object(
            {
                "name": {"type": "string"},
                "autostart": {"type": "boolean"},
                "queue": {"type": "string"},
            }
        ),
    },
    "error": {"type": "string", "description": "Why the file cannot be loaded"},
}

_GRAPH_DAG = _object(
    {
        "name": {"type": "string"},
        "queue": {"type": "string"},
        "autostart": {"type": "boolean"},
        "tasks": {
            "type": "array",
            "items": _object(
                {
                    "name": {"type": "string"},
                    "type": {"type": "string"},
                    "queue": {"type": "string"},
                    "force_run": {"type": "boolean"},
                    "propagate_skip": {"type": "boolean"},
                }
            ),
        },
        "edges": {
            "type": "array",
            "items": _object(
                {"from": {"type": "string"}, "to": {"type": "string"}, "slot": _nullable("string")}
            ),
        },
    }
)

_WORKER = {
    "name": {"type": "string"},
    "pid": _nullable("integer"),
    "queues": {"type": "array", "items": {"type": "string"}},
    "concurrency": _nullable("integer"),
    "state": {"type": "string", "description": "running, stopping or not answering"},
    "running": {
        "type": "array",
        "nullable": True,
        "description": "Its jobs now (null when it does not answer)",
        "items": _object({"job": _nullable("string"), "args": {"nullable": True}}),
    },
}

_EVENT = {
    "id": {"type": "string", "description": "The Last-Event-ID to resume after this event"},
    "kind": {"type": "string", "enum": [kind.value for kind in EventKind]},
    "workflow_id": {"type": "string"},
    "workflow": {"type": "string"},
    "time": {"type": "number"},
    "dag": _nullable("string"),
    "task": _nullable("string"),
    "duration": _nullable("number"),
    "outcome": _nullable("string"),
    "message": _nullable("string"),
    "traceback": _nullable("string"),
    "worker": _nullable("string"),
    "extra": {"type": "object"},
}

_LEGACY_JOB = {
    "name": {"type": "string"},
    "id": {"type": "string"},
    "type": {"type": "string", "enum": ["workflow", "dag", "task"]},
    "workflow_id": {"type": "string"},
    "state": {"type": "string"},
    "routing_key": _nullable("string"),
    "worker_name": _nullable("string"),
}

#: The request body of ``POST /api/v2/runs``.
START_RUN = _object(
    {
        "workflow": {
            "type": "string",
            "pattern": WORKFLOW_NAME,
            "maxLength": 200,
            "description": "A workflow in the server's workflow folders, by name",
        },
        "arguments": {
            "type": "object",
            "description": "Values for the workflow's parameters; text is converted by each "
            "Option's type, other JSON values reach the tasks as they are",
        },
        "keep_data": {
            "type": "boolean",
            "default": False,
            "description": "Keep the run's data store",
        },
        "queue": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "default": "workflow",
            "description": "The queue of the workflow job",
        },
    },
    required=["workflow"],
    additionalProperties=False,
)

#: Every component, by name.
COMPONENTS: dict[str, Any] = {
    "Error": _object({"error": {"type": "string"}}),
    "Health": _object(
        {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "version": {"type": "string"},
            "state_server": {"type": "string", "description": "ok, or why it cannot be reached"},
        }
    ),
    "TokenRole": _object({"role": {"type": "string", "enum": ["read", "operate"]}}),
    "Run": _object(_RUN),
    "RunDetail": _object({**_RUN, "dags": {"type": "array", "items": ref("Dag")}}),
    "Dag": _object(_DAG),
    "Task": _object(_TASK),
    "RunList": _list_of("runs", ref("Run"), limit={"type": "integer"}, offset={"type": "integer"}),
    "RunStarted": _object({"id": {"type": "string"}, "url": {"type": "string"}}),
    "RunStopped": _object({"id": {"type": "string"}, "stopped": {"type": "boolean"}}),
    "StartRun": START_RUN,
    "Logs": _object(
        {
            "lines": {"type": "array", "items": {"type": "string"}},
            "offset": {"type": "integer"},
            "next_offset": {"type": "integer"},
        }
    ),
    "StoreValue": _object(
        {
            "run": {"type": "string"},
            "section": {"type": "string", "enum": ["data", "meta"]},
            "key": _nullable("string"),
            "keys": {"type": "array", "items": {"type": "string"}},
            "value": {
                "description": "The value at the key: JSON data, else {type, repr}; null for "
                "a mapping (browse its keys)"
            },
        }
    ),
    "Event": _object(_EVENT, required=["id", "kind", "workflow_id", "workflow", "time"]),
    "Parameter": _object(_PARAMETER),
    "Workflow": _object(_WORKFLOW, required=["name", "path"]),
    "WorkflowList": _list_of("workflows", ref("Workflow")),
    "Graph": _object({"name": {"type": "string"}, "dags": {"type": "array", "items": _GRAPH_DAG}}),
    "Worker": _object(_WORKER),
    "WorkerList": _list_of("workers", ref("Worker")),
    "WorkerStopped": _object({"name": {"type": "string"}, "stopped": {"type": "boolean"}}),
    "Trigger": _object(
        {
            "name": {"type": "string"},
            "kind": _nullable("string"),
            "workflow": _nullable("string"),
            "state": {"type": "string"},
        },
        required=["name", "state"],
    ),
    "TriggerList": _object(
        {
            "triggers": {"type": "array", "items": ref("Trigger")},
            "kinds": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "LegacyStarted": _object({"id": {"type": "string"}}),
    "LegacySuccess": _object({"success": {"type": "boolean"}}),
    "LegacyJob": _object(_LEGACY_JOB, required=["name", "id", "type", "workflow_id"]),
    "LegacyJobList": _list_of(
        "workflows",
        {
            **_object(_LEGACY_JOB, required=["name", "id", "type", "workflow_id"]),
            "properties": {
                **_LEGACY_JOB,
                "dags": {"type": "array", "items": ref("LegacyJob")},
                "tasks": {"type": "array", "items": ref("LegacyJob")},
            },
        },
    ),
    "LegacyAvailable": _list_of(
        "workflows",
        _object(
            {
                "name": {"type": "string"},
                "docs": {"type": "string"},
                "arguments": {
                    "type": "array",
                    "items": _object(
                        {
                            "name": {"type": "string"},
                            "type": {"type": "string"},
                            "docs": _nullable("string"),
                            "default": {},
                        }
                    ),
                },
            }
        ),
    ),
    "LegacyWorkerList": _list_of(
        "workers",
        _object(
            {
                "name": {"type": "string"},
                "pid": _nullable("integer"),
                "concurrency": _nullable("integer"),
                "queues": {
                    "type": "array",
                    "items": _object(
                        {"name": {"type": "string"}, "routing_key": {"type": "string"}}
                    ),
                },
                "state": {"type": "string"},
                "jobs": {"type": "array", "items": ref("LegacyJob")},
            },
            required=["name", "pid", "concurrency", "queues", "state"],
        ),
    ),
    "Config": {"type": "object", "description": "The effective configuration, secrets masked"},
}
