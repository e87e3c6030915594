"""Trigger conditions: which updates of a PV start a run.

A PV trigger has at most one condition (``watch --when/--rising/--falling/--changes``,
the same keys in a ``triggers:`` entry); without one every update counts:

* ``when: EXPRESSION`` -- the update counts when the expression is true, e.g.
  ``value == 1``, ``1 < value < 5``, ``abs(value - 3) < 2 and severity < MAJOR``.
* ``rising: X`` -- the value went from below ``X`` to ``X`` or above.
* ``falling: X`` -- the value went from above ``X`` to ``X`` or below.
* ``changes: true`` -- the value differs from the previous one (an update that only
  changes the alarm severity does not count).

Edges compare with the value before the update (``previous``), including the one
read at connection, so the first value seen is never an edge.

Expressions come from config files and command lines, so they are never given to
``eval``: the text is parsed with :mod:`ast` and only a small whitelist is accepted
and interpreted here: the names in :data:`NAMES` and :data:`CONSTANTS`, numbers,
text, ``True``/``False``/``None``, tuples or lists of those, comparisons (``==``
``!=`` ``<`` ``<=`` ``>`` ``>=`` ``in`` ``not in``, chained), ``and``/``or``/``not``,
``+ - * / %`` on numbers, and the functions in :data:`FUNCTIONS`. Anything else
(attributes, subscripts, lambdas, other names, ``**``) is refused with a
:class:`~lightflow.exceptions.ConfigError` when the trigger is defined.

An update a condition cannot judge (``value > 3`` on a text PV, ``rising`` on a
waveform) does not count; the first such update is logged with the reason.
"""

from __future__ import annotations

import abc
import ast
import logging
import numbers
import operator
from collections.abc import Callable, Mapping
from typing import Any

from lightflow.exceptions import ConfigError

from .values import same

logger = logging.getLogger("lightflow.triggers.pv")

#: The names an expression may read: what the update says, and the value before it.
NAMES = ("value", "previous", "severity", "status", "timestamp")
#: Alarm severities by name (``severity >= MAJOR``).
CONSTANTS = {"NO_ALARM": 0, "MINOR": 1, "MAJOR": 2, "INVALID": 3}
#: The functions an expression may call.
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "len": len,
    "any": any,
    "all": all,
}
#: Longer expressions are refused: a condition is a line, not a program.
MAX_LENGTH = 500

_COMPARISONS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda left, right: left in right,
    ast.NotIn: lambda left, right: left not in right,
}
_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_ALLOWED = (
    "names (" + ", ".join(NAMES) + ", " + ", ".join(CONSTANTS) + "), numbers, text, "
    "comparisons (== != < <= > >= in), and/or/not, + - * / % and "
    + " ".join(f"{name}()" for name in FUNCTIONS)
)


class Condition(abc.ABC):
    """Decides whether one update of a PV counts.

    Args:
        text: How the condition was written, for logs and listings.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._reported = False

    def test(self, values: Mapping[str, Any], previous: Any) -> bool:
        """Whether the update with monitor keywords ``values`` counts.

        Args:
            values: The update's monitor keywords (``value``, ``severity``...).
            previous: The value before this update; ``None`` for the first one seen.
        """
        try:
            return bool(self._test(values, previous))
        except (TypeError, ValueError, ArithmeticError) as error:
            if not self._reported:
                self._reported = True
                logger.warning(
                    "condition '%s' cannot judge the value %s (%s); updates it cannot "
                    "judge do not count",
                    self.text,
                    repr(values.get("value"))[:80],
                    error,
                )
            return False

    @abc.abstractmethod
    def _test(self, values: Mapping[str, Any], previous: Any) -> Any:
        """The condition itself; may raise TypeError/ValueError for values it cannot judge."""

    def __str__(self) -> str:
        return self.text


class Expression(Condition):
    """``when: EXPRESSION`` (see the module docstring).

    Raises:
        ConfigError: The text is not an expression made of the whitelist.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._tree = _parse(text)

    def _test(self, values: Mapping[str, Any], previous: Any) -> Any:
        names = {name: values.get(name) for name in NAMES}
        names["previous"] = previous
        names.update(CONSTANTS)
        return _evaluate(self._tree, names)


class Crossing(Condition):
    """``rising: X`` / ``falling: X``: the value crossed ``threshold`` in one direction."""

    def __init__(self, threshold: float, *, rising: bool) -> None:
        super().__init__(f"{'rising' if rising else 'falling'} {threshold:g}")
        self.threshold = threshold
        self.rising = rising

    def _test(self, values: Mapping[str, Any], previous: Any) -> bool:
        if previous is None:
            return False
        before, now = _number(previous), _number(values.get("value"))
        if self.rising:
            return before < self.threshold <= now
        return before > self.threshold >= now


class Changes(Condition):
    """``changes: true``: the value differs from the previous one."""

    def __init__(self) -> None:
        super().__init__("changes")

    def _test(self, values: Mapping[str, Any], previous: Any) -> bool:
        return previous is not None and not same(values.get("value"), previous)


def build(
    *,
    when: Any = None,
    rising: Any = None,
    falling: Any = None,
    changes: Any = False,
) -> Condition | None:
    """The condition the settings ask for, or ``None`` (every update counts).

    Raises:
        ConfigError: More than one condition is given, or one is malformed.
    """
    if not isinstance(changes, bool):
        raise ConfigError(f"'changes' is true or false, got {changes!r}")
    given = [
        key
        for key, value in (("when", when), ("rising", rising), ("falling", falling))
        if value is not None
    ] + (["changes"] if changes else [])
    if len(given) > 1:
        raise ConfigError(
            f"a PV trigger has one condition, got {' and '.join(given)}: keep one of "
            "when, rising, falling or changes"
        )
    if when is not None:
        return Expression(when)
    if rising is not None:
        return Crossing(_threshold("rising", rising), rising=True)
    if falling is not None:
        return Crossing(_threshold("falling", falling), rising=False)
    return Changes() if changes else None


def _threshold(key: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise ConfigError(f"'{key}' is a number (the threshold), got {raw!r}")
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"'{key}' is a number (the threshold), got {raw!r}") from None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"a crossing needs a number, the PV gave {type(value).__name__}")
    return float(value)


def _parse(text: Any) -> ast.expr:
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            f"'when' is an expression such as 'value == 1' or '1 < value < 5', got {text!r}"
        )
    if len(text) > MAX_LENGTH:
        raise ConfigError(
            f"condition '{text[:40]}...' is {len(text)} characters long; "
            f"a condition has at most {MAX_LENGTH}"
        )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ConfigError(
            f"condition '{text}' is not an expression ({error.msg}): write it like "
            "'value == 1' or '1 < value < 5'"
        ) from None
    except (RecursionError, MemoryError, ValueError):
        raise ConfigError(f"condition '{text[:40]}' is too deeply nested to read") from None
    _check(tree.body, text)
    return tree.body


def _check(node: ast.AST, text: str) -> None:
    """Refuse anything outside the whitelist (see the module docstring)."""
    if isinstance(node, ast.Constant):
        if node.value is None or isinstance(node.value, (bool, int, float, str)):
            return
        _refuse(text, f"the constant {node.value!r}")
    elif isinstance(node, ast.Name):
        if node.id not in NAMES and node.id not in CONSTANTS:
            _refuse(text, f"the name '{node.id}'")
        return
    elif isinstance(node, (ast.Tuple, ast.List)):
        children: list[ast.AST] = list(node.elts)
    elif isinstance(node, ast.BoolOp):
        children = list(node.values)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
            _refuse(text, f"the operator {type(node.op).__name__}")
        children = [node.operand]
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            _refuse(text, f"the operator {type(node.op).__name__}")
        children = [node.left, node.right]
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARISONS:
                _refuse(text, f"the comparison {type(op).__name__}")
        children = [node.left, *node.comparators]
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            _refuse(text, f"the call '{ast.unparse(node.func)}(...)'")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            _refuse(text, "keyword or * arguments")
        children = list(node.args)
    else:
        _refuse(text, f"'{ast.unparse(node)}'")
    for child in children:
        _check(child, text)


def _refuse(text: str, what: str) -> None:
    raise ConfigError(f"condition '{text}': {what} is not allowed; a condition uses {_ALLOWED}")


def _evaluate(node: ast.expr, names: dict[str, Any]) -> Any:
    """Interpret a checked tree (only the node types :func:`_check` lets through)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_evaluate(element, names) for element in node.elts)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(bool(_evaluate(value, names)) for value in node.values)
        return any(bool(_evaluate(value, names)) for value in node.values)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, names)
        if isinstance(node.op, ast.Not):
            return not operand
        _arithmetic_operand(operand)
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, names), _evaluate(node.right, names)
        _arithmetic_operand(left)
        _arithmetic_operand(right)
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        # As in Python: a chain is the comparisons joined by ``and``; a single one
        # keeps its result (an array for ``value > 3`` on a waveform, for any()).
        left = _evaluate(node.left, names)
        last = len(node.ops) - 1
        for index, (op, comparator) in enumerate(zip(node.ops, node.comparators, strict=True)):
            right = _evaluate(comparator, names)
            result = _COMPARISONS[type(op)](left, right)
            if index == last or not result:
                return result
            left = right
    if isinstance(node, ast.Call):
        function = FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
        return function(*(_evaluate(arg, names) for arg in node.args))
    raise AssertionError(f"unchecked node {ast.dump(node)}")


def _arithmetic_operand(value: Any) -> None:
    # Arithmetic is for numbers (and numpy arrays of them): "x" * 10**9 must not
    # allocate a gigabyte because a config file said so.
    if isinstance(value, (str, bytes, tuple, list, dict)) or value is None:
        raise TypeError(f"arithmetic needs numbers, got {type(value).__name__}")
