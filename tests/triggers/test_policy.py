"""Batching and debouncing (lightflow.triggers.policy) with an injected clock."""

from __future__ import annotations

import itertools
import queue

import pytest
from lightflow.triggers.policy import Batcher, Debouncer, Release, left_over
from lightflow.triggers.source import TriggerEvent


def event(key: str | None, value: object = None) -> TriggerEvent:
    return TriggerEvent(key, {"value": value if value is not None else key})


def keys(events: list[TriggerEvent] | None) -> list[str | None]:
    assert events is not None
    return [e.key for e in events]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- Batcher --------------------------------------------------------------------------------
def test_batches_of_three_in_arrival_order_and_the_rest_flushed() -> None:
    batcher = Batcher(3)
    results = [batcher.add(event(name)) for name in "abcdefgh"]
    assert [keys(r) for r in results if r] == [["a", "b", "c"], ["d", "e", "f"]]
    assert results[:2] == [None, None]
    assert keys(batcher.pending) == ["g", "h"]
    assert keys(batcher.flush()) == ["g", "h"]
    assert batcher.flush() == [] and batcher.pending == []


@pytest.mark.parametrize("size", [None, 1])
def test_without_aggregate_every_event_is_a_batch(size: int | None) -> None:
    batcher = Batcher(size)
    assert keys(batcher.add(event("a"))) == ["a"]
    assert keys(batcher.add(event(None, 5))) == [None]


@pytest.mark.parametrize("size", [0, -2])
def test_a_batch_holds_at_least_one_event(size: int) -> None:
    with pytest.raises(ValueError, match=f"aggregate={size}"):
        Batcher(size)


def test_skip_duplicates_drops_a_key_already_in_the_open_batch_only() -> None:
    batcher = Batcher(3, skip_duplicates=True)
    assert batcher.add(event("a")) is None
    assert batcher.add(event("a")) is None
    assert batcher.add(event(None, 1)) is None
    assert batcher.add(event(None, 1)) == [event("a"), event(None, 1), event(None, 1)]
    # the batch closed: the key may come again in the next one
    assert batcher.add(event("a")) is None
    assert keys(batcher.pending) == ["a"]


def test_duplicates_are_kept_unless_asked() -> None:
    batcher = Batcher(2)
    batcher.add(event("a"))
    assert keys(batcher.add(event("a"))) == ["a", "a"]


def test_left_over_is_the_open_batch_the_debounced_event_then_the_queue() -> None:
    batcher, clock = Batcher(3), Clock()
    debouncer = Debouncer(1.0, clock)
    batcher.add(event("a"))
    debouncer.offer(event("b"))
    debouncer.offer(event("c"))  # held back until its window ends
    waiting: queue.SimpleQueue[TriggerEvent] = queue.SimpleQueue()
    waiting.put(event("d"))
    assert keys(left_over(batcher, waiting, debouncer)) == ["a", "c", "d"]
    assert batcher.pending == [] and waiting.empty()


# -- Debouncer ------------------------------------------------------------------------------
def test_the_first_event_of_a_quiet_period_goes_at_once() -> None:
    clock = Clock()
    debouncer = Debouncer(1.0, clock)
    assert debouncer.due() is None
    assert debouncer.offer(event("a")) == Release(event("a"))
    assert debouncer.due() == pytest.approx(1.0)


def test_events_in_the_window_fold_into_the_newest_released_at_its_end() -> None:
    clock = Clock()
    debouncer = Debouncer(1.0, clock)
    debouncer.offer(event("a"))
    for offset, name in ((0.2, "b"), (0.4, "c"), (0.6, "d")):
        clock.now = 100 + offset
        assert debouncer.offer(event(name)) is None
    assert debouncer.pending == event("d")
    clock.now = 100.9
    assert debouncer.expire() is None
    assert debouncer.due() == pytest.approx(0.1)
    clock.now = 101.0
    released = debouncer.expire()
    assert released == Release(event("d"), folded=2, folded_keys=("b", "c"))
    assert debouncer.pending is None


def test_at_most_one_release_per_window() -> None:
    clock = Clock()
    debouncer = Debouncer(1.0, clock)
    releases = []
    # 100 Hz for 3.5 s, expiring as a trigger's loop would between events
    for step in range(350):
        clock.now = 100 + step / 100
        for released in (debouncer.expire(), debouncer.offer(event(None, step))):
            if released is not None:
                releases.append((clock.now, released))
    times = [t for t, _ in releases]
    assert len(releases) == 4
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(times))
    assert [r.folded for _, r in releases] == [0, 98, 99, 99]
    clock.now = 104.0
    last = debouncer.expire()
    assert last is not None and last.event.values["value"] == 349  # the last value is kept


def test_a_window_that_closed_unnoticed_releases_its_event_before_the_new_one() -> None:
    clock = Clock()
    debouncer = Debouncer(1.0, clock)
    debouncer.offer(event("a"))
    clock.now = 100.5
    debouncer.offer(event("b"))
    clock.now = 101.7  # nobody called expire() at 101.0
    assert debouncer.offer(event("c")) == Release(event("b"))
    clock.now = 102.6
    assert debouncer.expire() is None  # "c" opened no window of its own: b's ends at 102.7
    clock.now = 102.7
    assert debouncer.expire() == Release(event("c"))


def test_a_quiet_window_closes_and_the_next_event_goes_at_once() -> None:
    clock = Clock()
    debouncer = Debouncer(2.0, clock)
    debouncer.offer(event("a"))
    clock.now = 102.5
    assert debouncer.expire() is None
    assert debouncer.due() is None
    assert debouncer.offer(event("b")) == Release(event("b"))


@pytest.mark.parametrize("window", [0, -1])
def test_window_zero_lets_everything_through(window: float) -> None:
    debouncer = Debouncer(window, Clock())
    assert [debouncer.offer(event(name)) for name in "abc"] == [
        Release(event("a")),
        Release(event("b")),
        Release(event("c")),
    ]
    assert debouncer.due() is None and debouncer.pending is None
