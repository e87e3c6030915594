"""How the MongoDB store writes values into documents, and reads them back.

The stored forms (plain values natively, anything else as a tagged pickle, large
values as GridFS references) are described in :mod:`lightflow.store.mongo`; this
module encodes values inline, walks stored forms by dot-key parts and finds the GridFS
files they refer to, and words the driver's errors as one line.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import cloudpickle

from ..exceptions import StoreError

TAG = "__lightflow__"
"""The field that marks a subdocument as an encoded value rather than a dict."""

GRIDFS_THRESHOLD = 1 << 20
"""Values whose stored form is larger than this many bytes go to GridFS."""

MISSING = object()
"""What :func:`walk` answers for a place that holds nothing."""

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def encode_inline(value: Any, key: str) -> Any:
    """The stored form of ``value`` with every non-plain part pickled in place."""
    kind = type(value)
    if kind in (str, float, bool, type(None)):
        return value
    if kind is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    if kind is datetime and value.tzinfo is timezone.utc and value.microsecond % 1000 == 0:
        return value
    if kind is list:
        return [encode_inline(item, key) for item in value]
    if kind is dict and all(_plain_name(name) for name in value):
        return {name: encode_inline(item, key) for name, item in value.items()}
    from bson import Binary

    tag = {TAG: "pickle", "type": type_name(value), "data": Binary(dumps(value, key))}
    if kind is datetime:
        tag["at"] = value
    return tag


def _plain_name(name: Any) -> bool:
    """Whether a dict key can be a MongoDB field name that dot paths address."""
    return (
        type(name) is str
        and bool(name)
        and name != TAG
        and not name.startswith("$")
        and "." not in name
        and "\0" not in name
    )


def dumps(value: Any, key: str) -> bytes:
    try:
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        raise StoreError(
            f"cannot store the {type(value).__name__} at '{key}': it cannot be pickled "
            f"({one_line(str(error))}); store plain data instead"
        ) from error


def is_tag(value: Any) -> bool:
    return type(value) is dict and TAG in value


def walk(raw: dict[str, Any], section: str, parts: list[str]) -> Any:
    """The stored form at ``parts`` in a (projected) run document, or ``MISSING``."""
    current: Any = raw.get(section)
    for part in parts:
        if type(current) is not dict or TAG in current or part not in current:
            return MISSING
        current = current[part]
    return current


def file_ids(value: Any) -> Iterator[Any]:
    """The GridFS file ids referred to anywhere in a stored form."""
    if type(value) is list:
        for item in value:
            yield from file_ids(item)
    elif type(value) is dict:
        if value.get(TAG) == "gridfs":
            yield value["file_id"]
        elif TAG not in value:
            for item in value.values():
                yield from file_ids(item)


def type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def stored_kind(raw: Any) -> str:
    """The short type name of a stored form, as the memory store names the value."""
    if is_tag(raw):
        return str(raw.get("type", "value")).rsplit(".", 1)[-1]
    return type(raw).__name__


def too_large(action: str) -> StoreError:
    return StoreError(
        f"cannot {action}: the run's document would exceed MongoDB's 16 MB limit; store "
        f"fewer plain values per run (values above {GRIDFS_THRESHOLD // 1024} KiB each go "
        "to GridFS)"
    )


def driver_reason(error: Exception) -> str:
    """The useful part of a driver error, on one line and without the host prefix."""
    details = getattr(error, "details", None)
    text = details.get("errmsg", "") if isinstance(details, dict) else ""
    text = text or str(error).split(", Timeout:")[0]
    text = re.sub(r" \(configured timeouts:[^)]*\)", "", text)
    text = re.sub(r"^\S+:\d+: ", "", text)
    return one_line(text.removeprefix("Plan executor error during update :: caused by :: "))


def one_line(text: str) -> str:
    return " ".join(text.split())


def uri_hosts(uri: str) -> str:
    """The host list of a MongoDB URI, without credentials (for messages)."""
    match = re.match(r"mongodb(?:\+srv)?://(?:[^@/]*@)?([^/?]*)", uri)
    return match.group(1) if match else "<invalid uri>"
