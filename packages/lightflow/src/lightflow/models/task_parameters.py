"""Task arguments that are values or callables evaluated when the task runs.

``BashTask(command=lambda data, store: f"ls {data['path']}")`` is the typical use: a
value that depends on the data arriving at the task. Each callable is called with
``(data, store)`` at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class TaskParameters(dict):
    """A dict of task arguments whose callable values are evaluated at run time.

    Values can also be read as attributes (``params.command``).
    """

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def eval(
        self, data: Any, data_store: Any, *, exclude: Iterable[str] | None = None
    ) -> TaskParameters:
        """Return a copy in which every callable value is replaced by its result.

        Args:
            data: The task's input data.
            data_store: The run's data store document.
            exclude: Keys whose values stay as they are (e.g. callbacks).
        """
        skipped = set(exclude or ())
        return TaskParameters(
            {
                key: value if key in skipped or not callable(value) else value(data, data_store)
                for key, value in self.items()
            }
        )

    def eval_single(self, key: str, data: Any, data_store: Any) -> Any:
        """Evaluate one value (``None`` if the key is absent)."""
        value = self.get(key)
        return value(data, data_store) if callable(value) else value
