"""PV Access through p4p: the PVA side of :mod:`lightflow_epics.channel`.

Importing this module fails with ``ImportError`` when p4p is missing (an optional
extra); :mod:`~lightflow_epics.channel` turns that into a one-line install hint.

One p4p client context serves the process, created at first use with the
``EPICS_PVA_*`` environment in force then. It is asked for raw structures (no
NormativeType unwrapping) and each update is turned into the keywords a Channel
Access monitor gives (``pvname``, ``value``, ``char_value``, ``timestamp``,
``severity``, ``status``), so triggers and callbacks do not care which protocol a PV
uses. An enum's ``value`` is its index and ``char_value`` its label, as in pyepics; a
structure without a ``value`` field is given whole, as a dict.

p4p reports a lost server as a ``Disconnected`` update and reconnects by itself; the
first update after a connection is the value read then, so a connection change is
reported to ``on_connection`` just before it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from p4p.client.thread import Cancelled, Context, Disconnected, RemoteError

from .channel import (
    READ_KEYS,
    OnConnection,
    OnValue,
    PvError,
    address_settings,
    bare_name,
    shown,
    unconnected_error,
)

_context: Context | None = None
_context_lock = threading.Lock()


def context() -> Context:
    """The process's p4p client context (created on first use)."""
    global _context
    with _context_lock:
        if _context is None:
            _context = Context("pva", nt=False)
        return _context


class PvaSubscription:
    """A p4p monitor of one PV (see :func:`lightflow_epics.channel.subscribe`)."""

    def __init__(self, pv: str, on_value: OnValue, on_connection: OnConnection) -> None:
        self._pv = pv
        self._on_value = on_value
        self._on_connection = on_connection
        self._connected = False
        self._subscription = context().monitor(bare_name(pv), self._update, notify_disconnect=True)

    def _update(self, update: Any) -> None:
        """p4p's callback (on one of its worker threads, in order per subscription)."""
        if isinstance(update, Cancelled):
            return
        if isinstance(update, (Disconnected, RemoteError)):
            # p4p also reports "not connected yet" at the start: only a lost
            # connection is news.
            if self._connected:
                self._connected = False
                self._on_connection(False)
            return
        if not self._connected:
            self._connected = True
            self._on_connection(True)
        self._on_value(keywords(self._pv, update))

    def close(self) -> None:
        """Cancel the monitor."""
        self._subscription.close()


def keywords(pv: str, update: Any) -> dict[str, Any]:
    """A p4p structure as Channel Access monitor keywords (see the module docstring)."""
    value: Any = update.todict()
    char_value: Any = None
    if "value" in update:
        value = update["value"]
        if hasattr(value, "todict"):  # a structure: an enum, or something of its own
            fields = value.todict()
            if "index" in fields and "choices" in fields:
                value = fields["index"]
                choices = fields["choices"]
                char_value = choices[value] if 0 <= value < len(choices) else str(value)
            else:
                value = fields
    seconds = update.get("timeStamp.secondsPastEpoch", 0)
    nanoseconds = update.get("timeStamp.nanoseconds", 0)
    return {
        "pvname": pv,
        "value": value,
        "char_value": str(value) if char_value is None else char_value,
        "timestamp": seconds + nanoseconds * 1e-9,
        "posixseconds": seconds,
        "nanoseconds": nanoseconds,
        "severity": update.get("alarm.severity", 0),
        "status": update.get("alarm.status", 0),
        "alarm_message": update.get("alarm.message", ""),
    }


def read(pvs: Sequence[str], timeout: float) -> dict[str, dict[str, Any]]:
    """See :func:`lightflow_epics.channel.read`."""
    answers = context().get([bare_name(pv) for pv in pvs], timeout=timeout, throw=False)
    unconnected = [
        pv for pv, answer in zip(pvs, answers, strict=True) if isinstance(answer, TimeoutError)
    ]
    if unconnected:
        raise unconnected_error(unconnected, timeout)
    results: dict[str, dict[str, Any]] = {}
    for pv, answer in zip(pvs, answers, strict=True):
        if isinstance(answer, Exception):
            raise PvError(f"PV '{pv}' refused the read: {answer}")
        values = keywords(pv, answer)
        results[pv] = {key: values[key] for key in READ_KEYS}
    return results


def write(pv: str, value: Any, *, wait: bool, timeout: float) -> None:
    """See :func:`lightflow_epics.channel.write`."""
    try:
        context().put(bare_name(pv), value, timeout=timeout, wait=wait)
    except TimeoutError:
        raise PvError(
            f"PV '{pv}' did not connect or confirm the write of {shown(value)} within "
            f"{timeout:g} s ({address_settings(pv)}): check the name, that its IOC runs, "
            "and that these settings reach it"
        ) from None
    except RemoteError as error:
        raise PvError(f"PV '{pv}' refused the write of {shown(value)}: {error}") from None
    except (ValueError, TypeError) as error:
        raise PvError(f"writing {shown(value)} to PV '{pv}' failed: {error}") from None
