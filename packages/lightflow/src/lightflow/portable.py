"""Whether data can cross to a worker: pickled as the cluster pickles it, into nothing.

On a cluster a task's output goes to its successors' workers pickled with cloudpickle.
The embedded engine hands it over in memory, where a lock or a generator in the data
works; the same workflow then fails on the cluster. So ``lightflow run`` checks what
would cross (:func:`unportable`) and fails the task the way the cluster would, with
one line naming the value (:func:`refusal`).

The check pickles into a sink that discards every byte, with protocol 5 and an
out-of-band buffer callback: a numpy array's buffer is handed over as a view and
dropped, never copied, so a 100 MB array costs microseconds, not a second copy. Only
when the pickle fails is the data walked again, to find the innermost value that
cannot be pickled and the path to it.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any

import cloudpickle

from .models.task_data import MultiTaskData, TaskData

#: Said of every value that cannot cross, as the usual suspects.
KINDS = "locks, generators, open files and sockets cannot be pickled"


class _Discard:
    """A file that forgets what is written to it (the pickler's sink)."""

    def write(self, chunk: Any) -> int:
        return len(chunk)


def _fails(value: Any) -> Exception | None:
    """Why ``value`` cannot be pickled by cloudpickle, or ``None`` if it can.

    The standard pickler (in C, three times as fast) is tried first: what it pickles,
    cloudpickle does; only what it refuses (a lambda, a class of the workflow file) is
    left to cloudpickle to decide.
    """
    for pickler in (pickle.Pickler, cloudpickle.CloudPickler):
        try:
            pickler(_Discard(), protocol=5, buffer_callback=_out_of_band).dump(value)
        except Exception as error:  # pickling raises TypeError, PicklingError, ...
            failure: Exception = error
        else:
            return None
    return failure


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    """Keep a buffer (a numpy array's memory) out of the pickle: it is not copied."""
    return False


def unportable(data: Any) -> str | None:
    """What in ``data`` cannot go to a worker, or ``None`` when all of it can.

    Returns:
        ``"'guard' is a _thread.lock"``: the path to the innermost value that cannot
        be pickled (keys of a dataset, ``[i]`` for items, ``.name`` for attributes;
        none when it is a whole value) and its type.
    """
    for payload in _payloads(data):
        if _fails(payload) is not None:
            path, value = _culprit(payload, "")
            where = f"'{path}'" if path else "the value"
            return f"{where} is a {_type_name(value)}"
    return None


def _payloads(data: Any) -> list[Any]:
    """What of ``data`` the user put there: each dataset's values.

    A dataset's history (task names, text) always pickles and grows along a chain:
    pickling it at every hop would make a chain's checks cost in proportion to its
    length squared.
    """
    if isinstance(data, MultiTaskData):
        return [dataset.data for dataset in data.datasets]
    if isinstance(data, TaskData):
        return [data.data]
    return [data]


def refusal(what: str, culprit: str) -> str:
    """The one-line error for data that cannot go to a worker.

    Args:
        what: Whose data, as the sentence's subject (``"the data it returned"``).
        culprit: What :func:`unportable` answered.
    """
    return f"{what} cannot go to a worker: {culprit} ({KINDS})"


def _culprit(value: Any, path: str) -> tuple[str, Any]:
    """The innermost part of ``value`` (known not to pickle) that does not pickle."""
    for name, part in _parts(value, path):
        if _fails(part) is not None:
            return _culprit(part, name)
    return path, value


def _parts(value: Any, path: str) -> list[tuple[str, Any]]:
    """The parts a value is pickled from, each with its path."""
    if isinstance(value, Mapping):
        return [(_join(path, str(key)), item) for key, item in value.items()]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return [(f"{path}.{name}", item) for name, item in attributes.items()]
    return []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"
