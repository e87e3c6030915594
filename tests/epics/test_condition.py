"""Trigger conditions: the safe expression language, edges and changes."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from lightflow.exceptions import ConfigError
from lightflow_epics.condition import build


def counts(condition: str, value: object, previous: object = None, **values: object) -> bool:
    built = build(when=condition)
    assert built is not None
    return built.test({"value": value, "severity": 0, "status": 0, **values}, previous)


@pytest.mark.parametrize(
    ("expression", "value", "expected"),
    [
        ("value == 1", 1, True),
        ("value == 1", 0, False),
        ("1 < value < 5", 2.5, True),
        ("1 < value < 5", 5, False),
        ("abs(value - 3) < 2", 1.5, True),
        ("abs(value - 3) < 2", 0.9, False),
        ("value in ('done', 'ok')", "done", True),
        ("value not in [1, 2]", 3, True),
        ("not value", 0, True),
        ("value % 2 == 0 or value > 10", 11, True),
        ("-value >= -1", 0.5, True),
        ("max(value) > 3", [1, 2, 5], True),
        ("any(value > 3)", np.array([1.0, 4.0]), True),
        ("all(value > 3)", np.array([1.0, 4.0]), False),
        ("len(value) == 2", [1, 2], True),
        ("value == None", None, True),
    ],
)
def test_expressions_are_interpreted(expression: str, value: object, expected: bool) -> None:
    assert counts(expression, value) is expected


def test_expressions_read_severity_status_previous_and_alarm_names() -> None:
    assert counts("severity >= MAJOR", 1, severity=2)
    assert not counts("severity >= MAJOR", 1, severity=1)
    assert counts("status == 3 and timestamp > 0", 1, status=3, timestamp=10.0)
    assert counts("previous < 1 <= value", 1, previous=0)
    assert not counts("previous < 1 <= value", 1, previous=None)


@pytest.mark.parametrize(
    ("expression", "refused"),
    [
        ("__import__('os').system('true')", "the call '__import__('os').system(...)'"),
        ("__import__('os')", "the call '__import__(...)'"),
        ("value.real > 1", "'value.real'"),
        ("value[0] > 1", "'value[0]'"),
        ("value ** 2 > 1", "the operator Pow"),
        ("x > 1", "the name 'x'"),
        ("(lambda: 1)() == 1", "the call"),
        ("[v for v in value]", "'[v for v in value]'"),
        ("value == b'x'", "the constant b'x'"),
        ("value := 1", "is not an expression"),
        ("abs(x=value) > 1", "keyword or * arguments"),
        ("value > 1; import os", "is not an expression"),
        ("value << 1", "the operator LShift"),
        ("value is None", "the comparison Is"),
    ],
)
def test_anything_outside_the_whitelist_is_refused_when_defined(
    expression: str, refused: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build(when=expression)
    assert refused in str(caught.value)
    assert "\n" not in str(caught.value)


def test_malformed_settings_are_one_line() -> None:
    with pytest.raises(ConfigError, match="one condition, got when and rising"):
        build(when="value > 1", rising=2)
    with pytest.raises(ConfigError, match="'rising' is a number"):
        build(rising="high")
    with pytest.raises(ConfigError, match="'falling' is a number"):
        build(falling=True)
    with pytest.raises(ConfigError, match="'changes' is true or false"):
        build(changes="yes")
    with pytest.raises(ConfigError, match="'when' is an expression"):
        build(when="  ")
    with pytest.raises(ConfigError, match="at most 500"):
        build(when="value == 1 or " * 50 + "value == 2")
    assert build() is None


def test_rising_and_falling_count_crossings_only() -> None:
    rising = build(rising=1)
    falling = build(falling="1.5")
    assert rising is not None and falling is not None
    assert rising.test({"value": 1}, 0)
    assert rising.test({"value": 3}, 0.5)
    assert not rising.test({"value": 2}, 1)  # already at or above
    assert not rising.test({"value": 0}, 2)
    assert not rising.test({"value": 1}, None)  # the first value is never an edge
    assert falling.test({"value": 1.5}, 2)
    assert not falling.test({"value": 2}, 1)
    assert str(rising) == "rising 1" and str(falling) == "falling 1.5"


def test_changes_ignores_updates_of_the_same_value() -> None:
    changes = build(changes=True)
    assert changes is not None
    assert changes.test({"value": 2}, 1)
    assert not changes.test({"value": 1}, 1)
    assert not changes.test({"value": np.array([1.0, 2.0])}, np.array([1.0, 2.0]))
    assert changes.test({"value": np.array([1.0, 3.0])}, np.array([1.0, 2.0]))
    assert not changes.test({"value": float("nan")}, float("nan"))
    assert not changes.test({"value": 1}, None)


def test_an_update_a_condition_cannot_judge_does_not_count_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    greater = build(when="value > 3")
    rising = build(rising=1)
    assert greater is not None and rising is not None
    with caplog.at_level(logging.WARNING, logger="lightflow.triggers.pv"):
        assert not greater.test({"value": "text"}, None)
        assert not greater.test({"value": "more text"}, None)
        assert not greater.test({"value": np.array([1.0, 5.0])}, None)
        assert not rising.test({"value": [1, 2]}, [0, 0])
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("condition 'value > 3' cannot judge the value 'text'")
    assert lines[1].startswith("condition 'rising 1' cannot judge the value [1, 2]")


def test_arithmetic_on_text_is_refused_at_evaluation() -> None:
    assert not counts("'x' * 1000000000 == value", "x")
