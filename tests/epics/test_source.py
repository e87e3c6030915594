"""The ``pv`` trigger source against a real IOC: order, values, connection life."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from lightflow.exceptions import ConfigError
from lightflow.triggers import TriggerEvent
from lightflow_epics import PvError, PvEvent, PvSource

from .conftest import Ioc, caput, wait_for


class Events:
    """What a source emitted, checked to come one call at a time."""

    def __init__(self) -> None:
        self.received: list[PvEvent] = []
        self._busy = threading.Lock()

    def __call__(self, event: TriggerEvent) -> None:
        assert self._busy.acquire(blocking=False), "emit called twice at once"
        try:
            assert isinstance(event, PvEvent)
            self.received.append(event)
        finally:
            self._busy.release()

    def values(self) -> list[object]:
        return [event.values["value"] for event in self.received]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[object]:
        assert wait_for(lambda: len(self.received) >= count, timeout), self.values()
        return self.values()


def watching(source: PvSource, timeout: float = 10.0) -> Events:
    """Start ``source`` and wait until it has connected."""
    events = Events()
    source.start(events)
    assert wait_for(lambda: source.status()["state"] == "connected", timeout), source.status()
    return events


def test_updates_are_events_in_the_order_they_happened(ioc: Ioc) -> None:
    caput(ioc.pv("LO"), 0)
    source = PvSource(ioc.pv("LO"))
    events = watching(source)
    try:
        for value in range(1, 51):
            caput(ioc.pv("LO"), value)
        assert events.wait_for(50) == list(range(1, 51))
    finally:
        source.stop()
    received = events.received
    assert [event.previous for event in received] == list(range(0, 50))
    assert all(event.values["pvname"] == ioc.pv("LO") for event in received)
    assert all(event.values["severity"] == 0 for event in received)
    stamps = [event.time for event in received]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 60
    assert received[0].key is None
    # a 1.x callback gets pyepics' own monitor keywords
    assert {"char_value", "status", "host", "count"} <= set(received[0].keywords)
    assert "cb_info" not in received[0].keywords


def test_skip_initial_skips_exactly_the_value_read_at_connection(ioc: Ioc) -> None:
    caput(ioc.pv("AO"), 7.0)
    source = PvSource(ioc.pv("AO"))
    events = watching(source)
    try:
        time.sleep(0.3)
        assert events.values() == []
        caput(ioc.pv("AO"), 8.0)
        assert events.wait_for(1) == [8.0]
        assert events.received[0].previous == 7.0
    finally:
        source.stop()
    source = PvSource(ioc.pv("AO"), skip_initial=False)
    events = watching(source)
    try:
        assert events.wait_for(1) == [8.0]
        assert events.received[0].previous is None
        caput(ioc.pv("AO"), 9.0)
        assert events.wait_for(2) == [8.0, 9.0]
    finally:
        source.stop()


def test_accept_applies_the_condition_from_the_settings(ioc: Ioc) -> None:
    caput(ioc.pv("AO"), 0.0)
    source = PvSource.from_settings({"pv": ioc.pv("AO"), "rising": 1})
    events = watching(source)
    try:
        for value in (0.5, 1.0, 2.0, 0.0, 1.5):
            caput(ioc.pv("AO"), value)
        events.wait_for(5)
    finally:
        source.stop()
    assert [event.values["value"] for event in events.received if source.accept(event)] == [
        1.0,
        1.5,
    ]
    assert source.describe() == f"PV {ioc.pv('AO')} (rising 1)"


def test_stop_is_quick_and_nothing_is_emitted_after_it(ioc: Ioc) -> None:
    source = PvSource(ioc.pv("LO"))
    events = watching(source)
    start = time.monotonic()
    source.stop()
    assert time.monotonic() - start < 1.0
    assert source.status()["state"] == "stopped"
    caput(ioc.pv("LO"), 123)
    time.sleep(0.3)
    assert 123 not in events.values()


def test_status_reports_the_connection_and_the_last_value(ioc: Ioc) -> None:
    caput(ioc.pv("WF"), [1.0, 2.0, 3.0, 4.0])
    source = PvSource(ioc.pv("WF"), skip_initial=False)
    events = watching(source)
    try:
        events.wait_for(1)
        status = source.status()
        assert status["state"] == "connected"
        assert status["pv"] == ioc.pv("WF")
        assert status["value"] == [1.0, 2.0, 3.0, 4.0]  # plain data, not a numpy array
        assert abs(status["since"] - time.time()) < 60
        arguments = source.arguments(events.received)
        assert arguments == {
            "pvname": ioc.pv("WF"),
            "value": [1.0, 2.0, 3.0, 4.0],
            "timestamp": pytest.approx(events.received[0].time),
            "severity": 0,
        }
        assert type(arguments["value"]) is list
    finally:
        source.stop()


def test_status_shows_a_long_waveform_by_its_length(ioc: Ioc) -> None:
    source = PvSource(ioc.pv("IMAGE"), skip_initial=False)
    events = watching(source)
    try:
        events.wait_for(1)
        assert source.status()["value"] == "1000 elements"
        assert len(source.arguments(events.received)["value"]) == 1000  # the run gets it all
    finally:
        source.stop()


def test_an_unknown_pv_is_logged_once_with_the_address_settings_and_waited_for(
    ioc: Ioc, caplog: pytest.LogCaptureFixture
) -> None:
    source = PvSource(ioc.pv("NOPE"), connection_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="lightflow.triggers.pv"):
        source.start(Events())
        try:
            assert wait_for(lambda: caplog.records, 5)
            time.sleep(1.0)
            assert source.status()["state"] == "connecting"
        finally:
            source.stop()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert lines[0].startswith(f"PV {ioc.pv('NOPE')} has not connected within 0.3 s; still waiting")
    assert "EPICS_CA_ADDR_LIST=127.0.0.1:" in lines[0]


def test_an_unknown_pv_fails_the_start_when_asked_to(ioc: Ioc) -> None:
    source = PvSource(ioc.pv("NOPE"), connection_timeout=0.5, on_timeout="fail")
    start = time.monotonic()
    with pytest.raises(PvError, match=f"PV '{ioc.pv('NOPE')}' did not connect within 0.5 s"):
        source.start(Events())
    assert time.monotonic() - start < 3
    assert source.status()["state"] == "stopped"


def test_an_ioc_restart_is_logged_and_the_watch_goes_on(
    restartable_ioc: Ioc, caplog: pytest.LogCaptureFixture
) -> None:
    pv = restartable_ioc.pv("AO")
    caput(pv, 5.0)
    source = PvSource(pv)
    with caplog.at_level(logging.WARNING, logger="lightflow.triggers.pv"):
        events = watching(source)
        try:
            # The IOC dies and comes back with another value (0.0): that is news.
            restartable_ioc.kill()
            assert wait_for(lambda: source.status()["state"] == "disconnected", 10)
            restartable_ioc.start()
            assert events.wait_for(1, timeout=90) == [0.0]
            assert events.received[0].previous == 5.0
            # It dies and comes back with the value it had: nothing happened.
            restartable_ioc.kill()
            assert wait_for(lambda: source.status()["state"] == "disconnected", 10)
            restartable_ioc.start()
            assert wait_for(lambda: source.status()["state"] == "connected", 90)
            caput(pv, 2.0)
            assert events.wait_for(2) == [0.0, 2.0]
        finally:
            source.stop()
    lines = [record.getMessage() for record in caplog.records]
    disconnected = [line for line in lines if "disconnected" in line]
    reconnected = [line for line in lines if "reconnected after" in line]
    assert len(disconnected) == 2 and len(reconnected) == 2, lines
    assert disconnected[0].startswith(f"PV {pv} disconnected")


def test_a_pva_channel_is_watched_like_a_ca_one(ioc: Ioc) -> None:
    caput(ioc.pv("AO"), 1.0)
    source = PvSource.from_settings({"pv": "pva://" + ioc.pv("AO"), "when": "value > 2"})
    events = watching(source)
    try:
        time.sleep(0.3)
        assert events.values() == []  # the value read at connection is skipped
        for value in (2.0, 3.0, 4.0):
            caput(ioc.pv("AO"), value)
        assert events.wait_for(3) == [2.0, 3.0, 4.0]
    finally:
        source.stop()
    event = events.received[-1]
    assert event.values["pvname"] == "pva://" + ioc.pv("AO")
    assert event.previous == 3.0
    assert event.values["severity"] == 0 and abs(event.time - time.time()) < 60
    assert [source.accept(event) for event in events.received] == [False, True, True]
    assert event.keywords["char_value"] == "4.0"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pv": "BL:X", "colour": "red"}, "unknown setting 'colour' for a 'pv' trigger"),
        ({"when": "value > 1"}, "a 'pv' trigger needs 'pv'"),
        ({"pv": "BL X"}, "is not a PV name"),
        ({"pv": "BL:X", "on_timeout": "retry"}, "'on_timeout' is 'wait'"),
        ({"pv": "BL:X", "connection_timeout": -1}, "'connection_timeout' is a number"),
        ({"pv": "BL:X", "skip_initial": "no"}, "'skip_initial' is true or false"),
        ({"pv": "BL:X", "when": "import os"}, "is not an expression"),
        ({"pv": "BL:X", "rising": 1, "changes": True}, "one condition"),
    ],
)
def test_bad_settings_are_one_config_error_line(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PvSource.from_settings(settings)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
