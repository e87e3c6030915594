"""PV values as plain data (whole, or brief for a status), and when two are the same.

pyepics gives waveforms as numpy arrays and p4p numpy scalars; workflow arguments, a
trigger's status and log lines want plain Python (lists, ints, floats, strings), and
comparing two arrays with ``==`` gives an array, not an answer. So values are made
plain before they leave the extension, and compared plain.
"""

from __future__ import annotations

import math
from typing import Any

#: A trigger's status shows a longer waveform (an image) by its length, not whole: the
#: status is published every few seconds.
BRIEF_LENGTH = 16


def plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and Python numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def brief(value: Any) -> Any:
    """``value`` as plain data for a status line; a long waveform as ``'N elements'``."""
    if not isinstance(value, (str, bytes)) and hasattr(value, "__len__"):
        if len(value) > BRIEF_LENGTH:
            return f"{len(value)} elements"
    return plain(value)


def same(first: Any, second: Any) -> bool:
    """Whether two PV values are equal (a PV that stays NaN has not changed)."""
    first, second = plain(first), plain(second)
    if first == second:
        return True
    return _is_nan(first) and _is_nan(second)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
