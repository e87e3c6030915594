"""Reading and writing PVs (lightflow_epics.channel) against a real IOC, CA and PVA."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from lightflow.exceptions import ConfigError
from lightflow_epics import channel
from lightflow_epics.channel import PvError

from .conftest import Ioc


def test_a_read_gives_value_severity_and_timestamp(ioc: Ioc) -> None:
    got = channel.read([ioc.pv("AI"), ioc.pv("SO")], timeout=10)
    assert got[ioc.pv("AI")]["value"] == 2.0
    assert got[ioc.pv("AI")]["severity"] == 0
    assert abs(got[ioc.pv("AI")]["timestamp"] - time.time()) < 3600
    assert got[ioc.pv("SO")]["pvname"] == ioc.pv("SO")


def test_a_write_is_read_back_on_both_protocols(ioc: Ioc) -> None:
    channel.write(ioc.pv("AO"), 1.25, wait=True, timeout=10)
    assert channel.read(["pva://" + ioc.pv("AO")], timeout=10)["pva://" + ioc.pv("AO")][
        "value"
    ] == pytest.approx(1.25)
    channel.write("pva://" + ioc.pv("LO"), 17, wait=True, timeout=10)
    assert channel.read([ioc.pv("LO")], timeout=10)[ioc.pv("LO")]["value"] == 17
    channel.write(ioc.pv("WF"), [1.0, 2.0, 3.0, 4.0], wait=True, timeout=10)
    assert list(channel.read([ioc.pv("WF")], timeout=10)[ioc.pv("WF")]["value"]) == [1, 2, 3, 4]


def test_reads_and_writes_work_from_any_thread(ioc: Ioc) -> None:
    # Tasks run in pool threads: each must use the process's CA context, not a new one.
    results: list[object] = []

    def read_and_write(value: int) -> None:
        channel.write(ioc.pv("LO"), value, wait=True, timeout=10)
        results.append(channel.read([ioc.pv("LO")], timeout=10)[ioc.pv("LO")]["value"])

    for value in (31, 32, 33):
        thread = threading.Thread(target=read_and_write, args=(value,))
        thread.start()
        thread.join(30)
    assert results == [31, 32, 33]


def test_an_unknown_pv_fails_within_the_timeout_naming_the_pv_and_the_settings(ioc: Ioc) -> None:
    start = time.monotonic()
    with pytest.raises(PvError) as caught:
        channel.read([ioc.pv("AI"), ioc.pv("NOPE")], timeout=1.0)
    assert time.monotonic() - start < 5
    message = str(caught.value)
    assert f"PV '{ioc.pv('NOPE')}' did not connect within 1 s" in message
    assert "EPICS_CA_ADDR_LIST=127.0.0.1:" in message
    assert "EPICS_CA_AUTO_ADDR_LIST=NO" in message
    assert ioc.pv("AI") not in message
    assert "\n" not in message


def test_an_unknown_pva_channel_fails_within_the_timeout(ioc: Ioc) -> None:
    with pytest.raises(PvError) as caught:
        channel.write("pva://" + ioc.pv("NOPE"), 1, wait=False, timeout=1.0)
    assert f"PV 'pva://{ioc.pv('NOPE')}' did not connect" in str(caught.value)
    assert "EPICS_PVA_ADDR_LIST=127.0.0.1:" in str(caught.value)


@pytest.mark.parametrize("scheme", ["", "pva://"])
def test_a_write_to_a_read_only_record_fails_and_changes_nothing(ioc: Ioc, scheme: str) -> None:
    with pytest.raises(PvError) as caught:
        channel.write(scheme + ioc.pv("RO"), 9.0, wait=False, timeout=10)
    message = str(caught.value)
    assert ioc.pv("RO") in message
    assert ("read-only" if not scheme else "Put not permitted") in message
    assert channel.read([ioc.pv("RO")], timeout=10)[ioc.pv("RO")]["value"] == 4.0


def test_a_write_waits_for_put_completion_within_its_timeout(ioc: Ioc) -> None:
    start = time.monotonic()
    channel.write(ioc.pv("SLOW"), 1.0, wait=True, timeout=10)
    assert time.monotonic() - start >= 0.4  # the record's processing takes 0.5 s
    with pytest.raises(PvError, match=r"did not report the write of 2\.0 done within 0\.2 s"):
        channel.write(ioc.pv("SLOW"), 2.0, wait=True, timeout=0.2)
    time.sleep(0.5)  # let the IOC finish processing before other tests


@pytest.mark.parametrize("scheme", ["", "pva://"])
def test_a_value_the_pv_cannot_take_is_one_line(ioc: Ioc, scheme: str) -> None:
    with pytest.raises(PvError) as caught:
        channel.write(scheme + ioc.pv("AO"), "not a number", wait=True, timeout=10)
    assert f"writing 'not a number' to PV '{scheme}{ioc.pv('AO')}' failed" in str(caught.value)


def test_bad_names_and_timeouts_are_one_line() -> None:
    with pytest.raises(PvError, match="is not a PV name"):
        channel.read(["BL:A B"], timeout=1)
    with pytest.raises(PvError, match="is not a PV name"):
        channel.read(["pva://"], timeout=1)
    with pytest.raises(ConfigError, match="'timeout' is a number of seconds above 0"):
        channel.read(["BL:A"], timeout=0)


def test_address_settings_name_what_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EPICS_CA_NAME_SERVERS", raising=False)
    monkeypatch.delenv("EPICS_CA_SERVER_PORT", raising=False)
    text = channel.address_settings("BL:X")
    assert text.startswith("EPICS_CA_ADDR_LIST=")
    assert text.endswith("unset: EPICS_CA_NAME_SERVERS, EPICS_CA_SERVER_PORT")


def test_pv_access_without_p4p_asks_to_install_the_extra() -> None:
    script = (
        "import sys; sys.modules['p4p'] = None  # as if it were not installed\n"
        "from lightflow_epics import channel, PvSource\n"
        "try:\n"
        "    channel.read(['pva://BL:X'], timeout=1)\n"
        "except channel.PvError as error:\n"
        "    print(error)\n"
        "source = PvSource('pva://BL:X')\n"
        "try:\n"
        "    source.start(print)\n"
        "except channel.PvError as error:\n"
        "    print(source.status()['state'], error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    hint = (
        "PV 'pva://BL:X' is a PV Access channel, which needs p4p: install it with "
        "pip install 'lightflow-epics[pva]'"
    )
    assert result.stdout.splitlines() == [hint, f"stopped {hint}"], result.stderr
