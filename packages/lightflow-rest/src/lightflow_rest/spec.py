"""Operations declared once: the same declaration checks requests and writes OpenAPI.

Every endpoint is an :class:`Operation` registered with :meth:`ApiBlueprint.operation`:
its method and path, the role it needs, its parameters (:class:`Param`: query, path
or header, each with a JSON schema), its request body schema and its responses. The
decorator wraps the view so that, before the view runs, the token's role is checked
(:mod:`.auth`; the role is then ``flask.g.role``), each parameter is converted from
text and checked against its schema, and the body is parsed and checked; the view
receives the values as keyword arguments. :func:`openapi_document` writes the
OpenAPI 3.0 document from the same registry, so the document cannot drift from what
the server accepts.

Schemas use the subset of JSON Schema that :func:`check` understands: ``type`` (with
OpenAPI's ``nullable``), ``enum``, ``minimum``/``maximum``, ``minLength``/``maxLength``,
``pattern``, ``properties``/``required``/``additionalProperties``, ``items``/
``maxItems``, and ``$ref`` to a component of :mod:`.schemas`. A request that breaks
one is a 400 naming the parameter or the body field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from .errors import ApiError

#: Media types of request bodies.
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
#: Media type of event streams.
EVENT_STREAM = "text/event-stream"

_FLASK_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


@dataclass(frozen=True)
class Param:
    """A request parameter.

    Attributes:
        name: Its name in the request (and the view's keyword, with ``-`` as ``_``).
        schema: What its value must be, after conversion from text.
        description: For the OpenAPI document.
        location: ``query``, ``path`` or ``header``.
        required: Whether the request must give it (path parameters always do).
    """

    name: str
    schema: Mapping[str, Any]
    description: str
    location: str = "query"
    required: bool = False

    @property
    def keyword(self) -> str:
        return self.name.lower().replace("-", "_")

    def read(self, raw: str | list[str] | None) -> Any:
        """The parameter's value from its text (its default when not given).

        An ``array`` parameter is given by repeating it (``?queue=a&queue=b``); each
        value is read by the schema's ``items``.

        Raises:
            ApiError: 400: it is missing, cannot be converted, or breaks its schema.
        """
        where = f"{self.location} parameter '{self.name}'"
        if isinstance(raw, list):
            item = Param(self.name, self.schema.get("items", {}), "", self.location)
            values = [item.read(text) for text in raw]
            check(values, self.schema, where)
            return values
        if raw is None:
            if self.required:
                raise ApiError(400, f"the {where} is required")
            return self.schema.get("default")
        kind = self.schema.get("type")
        value: Any = raw
        if kind in ("integer", "number"):
            try:
                value = int(raw) if kind == "integer" else float(raw)
            except ValueError:
                raise ApiError(400, f"the {where} must be {_a(kind)}, got {raw!r}") from None
            if kind == "number" and not math.isfinite(value):
                raise ApiError(400, f"the {where} must be a finite number, got {raw!r}")
        elif kind == "boolean":
            if raw not in ("true", "false", "0", "1"):
                raise ApiError(400, f"the {where} must be true/false or 1/0, got {raw!r}")
            value = raw in ("true", "1")
        check(value, self.schema, where)
        return value

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.location,
            "required": self.required or self.location == "path",
            "description": self.description,
            "schema": dict(self.schema),
        }


@dataclass(frozen=True)
class Reply:
    """One documented response of an operation."""

    description: str
    schema: Mapping[str, Any] | None = None
    media: str = JSON


@dataclass
class Operation:
    """One endpoint: what it accepts, who may call it, what it answers."""

    method: str
    path: str
    name: str
    summary: str
    description: str
    role: str | None
    params: Sequence[Param]
    body: Mapping[str, Any] | None
    body_media: str
    replies: dict[int, Reply]
    tags: Sequence[str]

    @property
    def openapi_path(self) -> str:
        return _FLASK_PARAM.sub(r"{\1}", self.path)


class ApiBlueprint(Blueprint):
    """A Flask blueprint whose routes are declared :class:`Operation` s.

    Args:
        name: The blueprint's name.
        import_name: The module declaring it.
        url_prefix: Where its paths start.
        tag: The OpenAPI tag of its operations.
    """

    def __init__(self, name: str, import_name: str, url_prefix: str = "", tag: str = "") -> None:
        super().__init__(name, import_name, url_prefix=url_prefix or None)
        self.operations: list[Operation] = []
        self.tag = tag

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        role: str | None,
        replies: Mapping[int, Reply],
        params: Sequence[Param] = (),
        body: Mapping[str, Any] | None = None,
        body_media: str = JSON,
        errors: Sequence[int] = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare an endpoint and route it to the decorated view.

        Args:
            method: The HTTP method.
            path: The path below the blueprint's prefix, Flask style (``/runs/<run_id>``).
            summary: One line for the document (the view's docstring is its description).
            role: The role a token needs (``None``: no token, as for health).
            replies: The successful responses by status.
            params: Query, path and header parameters.
            body: The schema of the request body, if it takes one.
            body_media: The body's media type (JSON, or form fields for 1.x clients).
            errors: Error statuses the view itself may answer (404, 422...); those the
                checks answer (400, 401, 403, 413, 415, 503) are added by themselves.
        """

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            operation = Operation(
                method=method,
                path=(self.url_prefix or "") + path,
                name=view.__name__,
                summary=summary,
                description=_dedent(view.__doc__ or ""),
                role=role,
                params=list(params),
                body=body,
                body_media=body_media,
                replies={**_error_replies(role, params, body, errors), **dict(replies)},
                tags=[self.tag] if self.tag else [],
            )
            self.operations.append(operation)

            @wraps(view)
            def handle(**path_values: str) -> Any:
                if role is not None:
                    g.role = current_app.extensions["lightflow_rest"].auth.require(
                        request.headers.get("Authorization"), role
                    )
                values = {param.keyword: param.read(_raw(param, path_values)) for param in params}
                if body is not None:
                    values["body"] = _read_body(body, body_media)
                result = view(**values)
                if isinstance(result, Response):
                    return result
                data, status = result if isinstance(result, tuple) else (result, 200)
                response = jsonify(data)
                response.status_code = status
                return response

            self.add_url_rule(path, view.__name__, handle, methods=[method])
            return view

        return decorate


def _raw(param: Param, path_values: Mapping[str, str]) -> str | list[str] | None:
    if param.location == "path":
        return path_values.get(param.name)
    if param.location == "header":
        return request.headers.get(param.name)
    values = request.args.getlist(param.name)
    if param.schema.get("type") == "array":
        return values or None
    if len(values) > 1:
        raise ApiError(
            400, f"the query parameter '{param.name}' is given {len(values)} times; give it once"
        )
    return values[0] if values else None


def _read_body(schema: Mapping[str, Any], media: str) -> Any:
    """The request body, parsed and checked (form fields: a dict of text)."""
    if media == FORM:
        return request.form.to_dict()
    if request.mimetype != JSON:
        raise ApiError(
            415,
            f"the request body must be JSON: send 'Content-Type: {JSON}' (got "
            f"{request.mimetype or 'none'})",
        )
    text = request.get_data(cache=True)
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, f"the request body is not valid JSON: {error}") from None
    check(value, schema, "the request body")
    return value


def check(value: Any, schema: Mapping[str, Any], where: str) -> None:
    """Check ``value`` against ``schema`` (the subset in the module docstring).

    Raises:
        ApiError: 400 naming ``where`` (and the field below it) and what was expected.
    """
    if "$ref" in schema:
        from .schemas import COMPONENTS

        schema = COMPONENTS[schema["$ref"].rsplit("/", 1)[-1]]
    if value is None:
        if schema.get("nullable") or "type" not in schema:
            return
        raise ApiError(400, f"{where} must be {_a(schema['type'])}, got null")
    kind = schema.get("type")
    if kind is not None and not _is(value, kind):
        raise ApiError(400, f"{where} must be {_a(kind)}, got {_json_kind(value)}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(choice) for choice in schema["enum"])
        raise ApiError(400, f"{where} must be one of: {choices}; got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ApiError(400, f"{where} must be at least {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ApiError(400, f"{where} must be at most {schema['maximum']}, got {value}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise ApiError(
                400, f"{where} must not be empty" if not value else f"{where} is too short"
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise ApiError(400, f"{where} must be at most {schema['maxLength']} characters long")
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            raise ApiError(400, f"{where} is malformed: {value!r}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise ApiError(400, f"{where} must hold at most {schema['maxItems']} items")
        for index, item in enumerate(value):
            check(item, schema.get("items", {}), f"{where}[{index}]")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise ApiError(400, f"{where} needs the field '{name}'")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                check(item, properties[name], f"{where}.{name}")
            elif extra is False:
                allowed = ", ".join(properties) or "none"
                raise ApiError(
                    400, f"{where} has an unknown field '{name}'; the fields are: {allowed}"
                )
            elif isinstance(extra, Mapping):
                check(item, extra, f"{where}.{name}")


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    types = {"string": str, "boolean": bool, "array": list, "object": dict}
    return isinstance(value, types[kind])


def _json_kind(value: Any) -> str:
    for kind in ("boolean", "integer", "number", "string", "array", "object"):
        if _is(value, kind):
            return _a(kind)
    return type(value).__name__


def _a(kind: str) -> str:
    return {"integer": "an integer", "array": "an array", "object": "an object"}.get(
        kind, f"a {kind}"
    )


def _dedent(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


#: What each error status means, for the document.
ERROR_MEANINGS = {
    400: "Malformed request: a parameter or the body is invalid",
    401: "No token, or not one the server accepts",
    403: "The token's role is not enough (read cannot start or stop)",
    404: "No such workflow, run or worker",
    413: "The request body is too large",
    415: "The request body is not JSON",
    422: "The workflow refused the arguments (its Parameters)",
    503: "The broker or the Redis state server cannot be reached",
}


def _error_replies(
    role: str | None, params: Sequence[Param], body: Mapping[str, Any] | None, errors: Sequence[int]
) -> dict[int, Reply]:
    statuses = set(errors) | {503}
    if params or body is not None:
        statuses.add(400)
    if role is not None:
        statuses.add(401)
        if role == "operate":
            statuses.add(403)
    if body is not None:
        statuses |= {413, 415}
    error = {"$ref": "#/components/schemas/Error"}
    return {status: Reply(ERROR_MEANINGS[status], error) for status in sorted(statuses)}


def openapi_document(blueprints: Sequence[ApiBlueprint], version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of every operation of ``blueprints``."""
    from .schemas import COMPONENTS

    paths: dict[str, dict[str, Any]] = {}
    for blueprint in blueprints:
        for op in blueprint.operations:
            entry: dict[str, Any] = {
                "operationId": op.name,
                "summary": op.summary,
                "description": op.description,
                "tags": list(op.tags),
                "parameters": [param.document() for param in op.params],
                "responses": {
                    str(status): _reply(reply) for status, reply in sorted(op.replies.items())
                },
                "security": [{"bearer": []}] if op.role else [],
            }
            if op.role:
                entry["description"] += f"\n\nNeeds a token with the `{op.role}` role."
            if op.body is not None:
                entry["requestBody"] = {
                    "required": True,
                    "content": {op.body_media: {"schema": dict(op.body)}},
                }
            paths.setdefault(op.openapi_path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Lightflow REST API",
            "version": version,
            "description": "Start, follow and stop Lightflow workflow runs. Send "
            "'Authorization: Bearer <token>'; tokens have the role read or operate.",
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _reply(reply: Reply) -> dict[str, Any]:
    if reply.schema is None:
        return {"description": reply.description}
    return {
        "description": reply.description,
        "content": {reply.media: {"schema": dict(reply.schema)}},
    }
