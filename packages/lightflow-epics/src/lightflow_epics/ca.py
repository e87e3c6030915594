"""Channel Access through pyepics: the CA side of :mod:`lightflow_epics.channel`.

pyepics keeps one CA context per process and caches one channel per PV name in it,
so repeated reads and writes of a PV in a worker reuse its connection. Its callbacks
(connections, monitor updates, put completions) run on libca's threads; whatever
waits here sleeps until one of those callbacks wakes it, never in a polling loop, so a
task waiting for a slow IOC costs no CPU.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import epics
from epics import ca

from .channel import READ_KEYS, OnConnection, OnValue, PvError, shown, unconnected_error


class CaSubscription:
    """A pyepics monitor of one PV (see :func:`lightflow_epics.channel.subscribe`)."""

    def __init__(self, pv: str, on_value: OnValue, on_connection: OnConnection) -> None:
        self._on_value = on_value
        self._on_connection = on_connection
        self._pv = epics.PV(
            pv,
            callback=self._changed,
            connection_callback=self._connection_changed,
            auto_monitor=True,
            form="time",
        )

    def _changed(self, **keywords: Any) -> None:
        keywords.pop("cb_info", None)  # pyepics' (index, PV object): not plain data
        self._on_value(keywords)

    def _connection_changed(self, conn: bool = False, **_: Any) -> None:
        self._on_connection(bool(conn))

    def close(self) -> None:
        """Drop the monitor; the channel stays in pyepics' cache for later reads."""
        self._pv.disconnect()


def read(pvs: Sequence[str], timeout: float) -> dict[str, dict[str, Any]]:
    """See :func:`lightflow_epics.channel.read`."""
    deadline = time.monotonic() + timeout
    channels = _connect(pvs, deadline, timeout)
    results: dict[str, dict[str, Any]] = {}
    for pv, chid in channels.items():
        if not ca.read_access(chid):
            raise PvError(f"PV '{pv}' refuses reads from this client (IOC access security)")
        got = ca.get_with_metadata(
            chid,
            ftype=ca.promote_type(chid, use_time=True),
            timeout=max(deadline - time.monotonic(), 0.001),
        )
        if got is None:
            raise PvError(f"PV '{pv}' is connected but did not answer a read within {timeout:g} s")
        results[pv] = {key: got.get(key) for key in READ_KEYS}
        results[pv]["pvname"] = pv
    return results


def write(pv: str, value: Any, *, wait: bool, timeout: float) -> None:
    """See :func:`lightflow_epics.channel.write`."""
    deadline = time.monotonic() + timeout
    chid = _connect([pv], deadline, timeout)[pv]
    if not ca.write_access(chid):
        raise PvError(
            f"PV '{pv}' is read-only for this client: the IOC ({ca.host_name(chid)}) "
            "refuses writes (a read-only record, or access security for this user and host)"
        )
    done = threading.Event()
    try:
        ca.put(chid, value, callback=(lambda **_: done.set()) if wait else None)
    except (ca.ChannelAccessException, ValueError, TypeError) as error:
        raise PvError(f"writing {shown(value)} to PV '{pv}' failed: {error}") from None
    if wait and not done.wait(max(deadline - time.monotonic(), 0.0)):
        raise PvError(
            f"PV '{pv}' did not report the write of {shown(value)} done within {timeout:g} s "
            "(put-completion): give the processing a longer timeout, or do not wait for it"
        )


def _connect(pvs: Sequence[str], deadline: float, timeout: float) -> dict[str, Any]:
    """The channels of ``pvs``, once all are connected.

    Raises:
        PvError: Some did not connect by ``deadline``; the line names them.
    """
    # A thread that has no CA context would get a new, non-preemptive one of its own
    # from libca, whose callbacks never run: join the process's context first.
    ca.use_initial_context()
    # One module-level callback: pyepics keeps each callback once per channel, so
    # repeated reads do not pile callbacks up in its cache.
    channels = {pv: ca.create_channel(pv, auto_cb=True, callback=_changes.notify) for pv in pvs}
    ca.flush_io()  # send the searches now rather than at libca's next timer
    unconnected = list(channels)
    while True:
        seen = _changes.count
        unconnected = [pv for pv in unconnected if not ca.isConnected(channels[pv])]
        if not unconnected:
            return channels
        if not _changes.wait(seen, deadline):
            raise unconnected_error(unconnected, timeout)


class _ConnectionChanges:
    """Counts connection changes of the channels this module created, so a waiter sleeps
    until the next one without calling libca while holding a lock libca's threads need."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def notify(self, **_: Any) -> None:
        """pyepics' connection callback (on a libca thread)."""
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait(self, seen: int, deadline: float) -> bool:
        """Wait for a change after the ``seen``-th; ``False`` once ``deadline`` passed."""
        with self._changed:
            while self.count == seen:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True


_changes = _ConnectionChanges()
