"""The data that flows along the edges of a DAG.

A task's output is one :class:`TaskData` (a dict plus the names of the tasks it passed
through). A task's input is a :class:`MultiTaskData`: one dataset per predecessor, in
the order the predecessors appear in the DAG, reachable by index or by alias (the slot
label of ``Dag.define({a: {b: 'alias'}})``, and always the predecessor's name). One of
them is the *default* dataset, which dict-style access (``data['key']``) reads and
writes. When a task finishes, its input is flattened into one dataset so that the
successors see a single dataset per predecessor.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterator
from typing import Any


class TaskData:
    """A dict of values passed between tasks, with the history of tasks it went through.

    Args:
        data: The initial values.
        task_history: Names of the tasks that produced or passed on this data.
    """

    def __init__(
        self, data: dict[str, Any] | None = None, *, task_history: list[str] | None = None
    ) -> None:
        self._data: dict[str, Any] = data if data is not None else {}
        self._task_history: list[str] = task_history if task_history is not None else []

    @property
    def data(self) -> dict[str, Any]:
        """The underlying dictionary of values."""
        return self._data

    @property
    def task_history(self) -> list[str]:
        """Names of the tasks this data passed through, oldest first."""
        return self._task_history

    def add_task_history(self, task_name: str) -> None:
        """Record that ``task_name`` handled this data."""
        self._task_history.append(task_name)

    def merge(self, dataset: TaskData) -> None:
        """Merge another dataset into this one; its values win, nested dicts merge."""
        _deep_merge(self._data, dataset.data)
        seen = set(self._task_history)
        self._task_history.extend(name for name in dataset.task_history if name not in seen)

    def copy(self) -> TaskData:
        """Return a deep copy, so a successor's changes never reach another lane.

        The values are deep-copied; the object around them is built directly, which
        costs a fraction of deep-copying it (a fan-out copies its start's data for
        every lane).
        """
        return TaskData(_copy.deepcopy(self._data), task_history=list(self._task_history))

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def keys(self) -> Any:
        return self._data.keys()

    def items(self) -> Any:
        return self._data.items()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"TaskData({self._data!r}, task_history={self._task_history!r})"


class MultiTaskData:
    """The input of a task: one dataset per predecessor, by index and by alias.

    Args:
        dataset: A first dataset to hold (a start task gets an empty one).
        aliases: Aliases for that first dataset.
    """

    def __init__(
        self, *, dataset: TaskData | None = None, aliases: list[str] | None = None
    ) -> None:
        self._datasets: list[TaskData] = []
        self._aliases: dict[str, int] = {}
        self._default_index = 0
        if dataset is not None:
            self.add_dataset("", dataset, aliases=aliases)

    # -- building -----------------------------------------------------------------------
    def add_dataset(
        self, task_name: str, dataset: TaskData | None = None, *, aliases: list[str] | None = None
    ) -> None:
        """Append a dataset produced by ``task_name`` (a new empty one if ``None``).

        The task's name becomes an alias of the dataset unless another dataset already
        uses it; the given ``aliases`` (slot labels) always do.
        """
        if dataset is None:
            dataset = TaskData(task_history=[task_name] if task_name else [])
        self._datasets.append(dataset)
        index = len(self._datasets) - 1
        if task_name and task_name not in self._aliases:
            self._aliases[task_name] = index
        for alias in aliases or []:
            self._aliases[alias] = index

    def add_alias(self, alias: str, index: int) -> None:
        """Make ``alias`` refer to the dataset at ``index``."""
        self._check_index(index)
        self._aliases[alias] = index

    def flatten(self, in_place: bool = True) -> MultiTaskData:
        """Merge all datasets into one; the default dataset's values win on conflicts.

        Every alias then refers to the merged dataset.
        """
        if len(self._datasets) == 1 and in_place:  # already flat: the common chain hop
            self._aliases = {alias: 0 for alias in self._aliases}
            return self
        merged = TaskData()
        seen: set[str] = set()
        others = [d for i, d in enumerate(self._datasets) if i != self._default_index]
        # One pass with one history set: flattening a wide join stays linear.
        for dataset in [*others, self.default_dataset] if self._datasets else []:
            _deep_merge(merged.data, dataset.data)
            for name in dataset.task_history:
                if name not in seen:
                    seen.add(name)
                    merged.task_history.append(name)
        target = self if in_place else MultiTaskData()
        target._datasets = [merged]
        target._aliases = {alias: 0 for alias in self._aliases}
        target._default_index = 0
        return target

    def add_task_history(self, task_name: str) -> None:
        """Record ``task_name`` in the history of every dataset."""
        for dataset in self._datasets:
            dataset.add_task_history(task_name)

    def copy(self) -> MultiTaskData:
        """Return a deep copy."""
        return _copy.deepcopy(self)

    # -- selecting ----------------------------------------------------------------------
    @property
    def default_index(self) -> int:
        """Index of the dataset that dict-style access uses."""
        return self._default_index

    @property
    def default_alias(self) -> str | None:
        """An alias of the default dataset, if it has one."""
        for alias, index in self._aliases.items():
            if index == self._default_index:
                return alias
        return None

    @property
    def default_dataset(self) -> TaskData:
        """The dataset that dict-style access uses."""
        if not self._datasets:
            self.add_dataset("")
        return self._datasets[self._default_index]

    @property
    def datasets(self) -> list[TaskData]:
        """All datasets, in predecessor order."""
        return list(self._datasets)

    @property
    def aliases(self) -> dict[str, int]:
        """Alias to index mapping."""
        return dict(self._aliases)

    def set_default_by_alias(self, alias: str) -> None:
        """Make the dataset with ``alias`` the default one."""
        self._default_index = self._index_of(alias)

    def set_default_by_index(self, index: int) -> None:
        """Make the dataset at ``index`` the default one."""
        self._check_index(index)
        self._default_index = index

    def get_by_alias(self, alias: str) -> TaskData:
        """Return the dataset with the given alias (slot label or predecessor name)."""
        return self._datasets[self._index_of(alias)]

    def get_by_index(self, index: int) -> TaskData:
        """Return the dataset at ``index`` (predecessor order)."""
        self._check_index(index)
        return self._datasets[index]

    def __call__(self, alias: str) -> TaskData:
        return self.get_by_alias(alias)

    def _index_of(self, alias: str) -> int:
        if alias not in self._aliases:
            known = ", ".join(sorted(self._aliases)) or "none"
            raise KeyError(f"no dataset with alias {alias!r} (aliases: {known})")
        return self._aliases[alias]

    def _check_index(self, index: int) -> None:
        if not -len(self._datasets) <= index < len(self._datasets):
            raise IndexError(f"no dataset at index {index} ({len(self._datasets)} datasets)")

    # -- dict-style access on the default dataset ---------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.default_dataset.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.default_dataset.set(key, value)

    def __getitem__(self, key: str) -> Any:
        return self.default_dataset[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.default_dataset[key] = value

    def __delitem__(self, key: str) -> None:
        del self.default_dataset[key]

    def __contains__(self, key: object) -> bool:
        return key in self.default_dataset

    def __len__(self) -> int:
        return len(self._datasets)

    def __iter__(self) -> Iterator[TaskData]:
        return iter(self._datasets)

    def __repr__(self) -> str:
        return f"MultiTaskData({self._datasets!r}, aliases={self._aliases!r})"


def _deep_merge(target: dict[str, Any], source: dict[str, Any]) -> None:
    """Merge ``source`` into ``target``; the source's nested dicts are never aliased.

    A nested dict already in ``target`` belongs to it and is merged in place; one that
    only the source has is copied as a structure. Leaf values (possibly large arrays)
    are shared, not copied.
    """
    for key, value in source.items():
        if isinstance(value, dict):
            existing = target.get(key)
            if not isinstance(existing, dict):
                existing = target[key] = {}
            _deep_merge(existing, value)
        else:
            target[key] = value
