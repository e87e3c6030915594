"""The ``pv`` trigger source: a PV's updates as trigger events.

:class:`PvSource` watches one PV (Channel Access, or PV Access for ``pva://`` names)
and emits a :class:`PvEvent` per update, in the order the protocol library delivered
them. It decides only what an update *is*; whether it starts a run is its condition
(:meth:`PvSource.accept`, :mod:`~lightflow_epics.condition`), and debouncing,
batching and starting runs are the trigger runtime's. The 1.x ``PvTriggerTask`` runs
the same source inside a task.

Connection life, as the source reports it:

* The value read when the PV first connects is the baseline: with ``skip_initial``
  (the default) it is not an event, exactly that one value and no other. It is still
  the ``previous`` of the next update, so edges (``rising``) are measured from it.
* A PV that has not connected ``connection_timeout`` seconds after the start is
  logged once, with its name and the EPICS address settings in force; the source
  keeps waiting (``on_timeout: wait``), or :meth:`~PvSource.start` raises
  :class:`~lightflow_epics.channel.PvError` (``on_timeout: fail``).
* A lost connection (the IOC stopped) and the reconnection are logged; the protocol
  library reconnects by itself, and the value read at reconnection is an event only if
  it differs from the last one seen (it changed while the IOC was away), so an IOC
  restart does not repeat the last event.

:meth:`~PvSource.status` says ``connecting``, ``connected`` or ``disconnected``, with
the last value and since when.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from lightflow.exceptions import ConfigError
from lightflow.triggers import Emit, TriggerEvent, TriggerSource

from . import channel
from .condition import Condition, build
from .values import brief, plain, same

logger = logging.getLogger("lightflow.triggers.pv")

#: What ``on_timeout`` accepts.
ON_TIMEOUT = ("wait", "fail")
#: Seconds a PV may take to connect before it is reported (or fails the start).
DEFAULT_CONNECTION_TIMEOUT = 5.0

_NO_VALUE = object()


#: The monitor keywords an event's ``values`` hold (all of them are in ``keywords``).
EVENT_KEYS = ("pvname", "value", "timestamp", "severity", "status")


@dataclass(frozen=True)
class PvEvent(TriggerEvent):
    """One update of a PV.

    ``values`` holds :data:`EVENT_KEYS` (what conditions read and logs show).

    Attributes:
        previous: The value before this update (the one read at connection counts);
            ``None`` for the first value seen. Conditions such as ``rising`` use it.
        keywords: Every monitor keyword of the update, as the protocol library gave
            them (what a 1.x ``PvTriggerTask`` callback receives).
    """

    previous: Any = None
    keywords: Mapping[str, Any] = field(default_factory=dict)


class PvSource(TriggerSource):
    """Watches one PV; see the module docstring.

    The runs it starts get these workflow parameters (those their workflow declares):
    ``pvname`` (str, the name as configured, ``pva://`` included), ``value`` (the
    new value: a number, a string, or a list for a waveform), ``timestamp`` (float,
    seconds since the epoch, the IOC's time of the update) and ``severity`` (int, the
    alarm severity: 0 none, 1 minor, 2 major, 3 invalid).

    Args:
        pv: The PV's name; ``pva://NAME`` goes through PV Access.
        condition: Which updates count (``None``: all).
        skip_initial: Do not report the value read at the first connection.
        connection_timeout: Seconds before a PV that has not connected is reported.
        on_timeout: ``wait`` (report it once and keep waiting) or ``fail`` (the start
            fails).

    Raises:
        ConfigError: An argument is invalid (one line naming it).
    """

    kind: ClassVar[str] = "pv"
    parameters: ClassVar[tuple[str, ...]] = ("pvname", "value", "timestamp", "severity")
    noun: ClassVar[str] = "update"

    #: The keys a ``triggers:`` entry of ``source: pv`` may hold.
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "pv",
        "when",
        "rising",
        "falling",
        "changes",
        "skip_initial",
        "connection_timeout",
        "on_timeout",
    )

    def __init__(
        self,
        pv: str,
        *,
        condition: Condition | None = None,
        skip_initial: bool = True,
        connection_timeout: float = DEFAULT_CONNECTION_TIMEOUT,
        on_timeout: str = "wait",
    ) -> None:
        try:
            channel.protocol(pv)
        except channel.PvError as error:
            raise ConfigError(str(error)) from None
        if not isinstance(skip_initial, bool):
            raise ConfigError(f"'skip_initial' is true or false, got {skip_initial!r}")
        if on_timeout not in ON_TIMEOUT:
            raise ConfigError(
                f"'on_timeout' is 'wait' (log it and keep waiting) or 'fail', got {on_timeout!r}"
            )
        self.pv = pv
        self.condition = condition
        self.skip_initial = skip_initial
        self.connection_timeout = channel.seconds("connection_timeout", connection_timeout)
        self.on_timeout = on_timeout
        self._subscription: channel.Subscription | None = None
        self._timer: threading.Timer | None = None
        self._connected = threading.Event()
        # What follows is guarded by _lock: the protocol library's threads write it,
        # start, stop and status read it from others.
        self._lock = threading.Lock()
        self._emit: Emit | None = None
        self._state = "stopped"
        self._since = time.time()
        self._ever_connected = False
        self._at_connection = False
        self._last_value: Any = _NO_VALUE

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> PvSource:
        """Build a source from a ``triggers:`` entry (see :attr:`SETTINGS`).

        Raises:
            ConfigError: A key is unknown or missing, or a value is invalid.
        """
        unknown = sorted(set(settings) - set(cls.SETTINGS))
        if unknown:
            raise ConfigError(
                f"unknown setting{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(repr(key) for key in unknown)} for a 'pv' trigger; "
                f"it accepts {', '.join(cls.SETTINGS)}"
            )
        if "pv" not in settings:
            raise ConfigError("a 'pv' trigger needs 'pv', the name of the PV to watch")
        return cls(
            settings["pv"],
            condition=build(
                when=settings.get("when"),
                rising=settings.get("rising"),
                falling=settings.get("falling"),
                changes=settings.get("changes", False),
            ),
            skip_initial=settings.get("skip_initial", True),
            connection_timeout=settings.get("connection_timeout", DEFAULT_CONNECTION_TIMEOUT),
            on_timeout=settings.get("on_timeout", "wait"),
        )

    def describe(self) -> str:
        """``PV NAME`` and its condition, if any."""
        return f"PV {self.pv}" + (f" ({self.condition})" if self.condition else "")

    def start(self, emit: Emit) -> None:
        """Subscribe to the PV; with ``on_timeout='fail'``, wait for it to connect.

        Raises:
            PvError: PV Access without p4p; or, with ``on_timeout='fail'``, the PV did
                not connect within ``connection_timeout`` seconds.
        """
        with self._lock:
            self._emit = emit
            self._set_state("connecting")
        try:
            self._subscription = channel.subscribe(self.pv, self._on_value, self._on_connection)
        except BaseException:
            self.stop()
            raise
        if self.on_timeout == "fail":
            if not self._connected.wait(self.connection_timeout):
                self.stop()
                raise channel.unconnected_error([self.pv], self.connection_timeout)
            return
        self._timer = threading.Timer(self.connection_timeout, self._report_unconnected)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        """Stop watching; no event is emitted once this returns."""
        with self._lock:
            self._emit = None
            self._set_state("stopped")
        if self._timer is not None:
            self._timer.cancel()
        if self._subscription is not None:
            # Outside the lock: the library may be delivering an update that waits for it.
            self._subscription.close()
            self._subscription = None

    def accept(self, event: TriggerEvent) -> bool:
        """Whether the update counts: the source's condition (all updates without one)."""
        if self.condition is None:
            return True
        return self.condition.test(event.values, cast(PvEvent, event).previous)

    def arguments(self, events: Sequence[TriggerEvent]) -> dict[str, Any]:
        """``pvname``, ``value``, ``timestamp`` and ``severity`` of the last update."""
        values = events[-1].values
        return {
            "pvname": self.pv,
            "value": plain(values.get("value")),
            "timestamp": float(values.get("timestamp") or events[-1].time),
            "severity": int(values.get("severity") or 0),
        }

    def status(self) -> dict[str, Any]:
        """``state`` (connecting, connected, disconnected, stopped), ``pv``, ``since``
        (seconds since the epoch) and the last ``value`` seen, if any (a long waveform
        as its length)."""
        with self._lock:
            status = {"state": self._state, "pv": self.pv, "since": self._since}
            if self._last_value is not _NO_VALUE:
                status["value"] = brief(self._last_value)
        return status

    def _set_state(self, state: str) -> None:
        self._state = state
        self._since = time.time()

    def _on_connection(self, connected: bool) -> None:
        """The protocol library's connection callback."""
        with self._lock:
            if self._emit is None:
                return
            if connected:
                if self._ever_connected:
                    logger.warning(
                        "PV %s reconnected after %.1f s; watching again",
                        self.pv,
                        time.time() - self._since,
                    )
                self._ever_connected = True
                self._at_connection = True
                self._set_state("connected")
                self._connected.set()
            else:
                logger.warning(
                    "PV %s disconnected (its IOC stopped or is unreachable); waiting for it "
                    "to come back",
                    self.pv,
                )
                self._set_state("disconnected")

    def _on_value(self, values: dict[str, Any]) -> None:
        """The protocol library's monitor callback: turn the update into an event."""
        with self._lock:
            if self._emit is None:
                return
            value = values.get("value")
            previous, self._last_value = self._last_value, value
            at_connection, self._at_connection = self._at_connection, False
            if at_connection:
                if previous is _NO_VALUE and self.skip_initial:
                    return
                if previous is not _NO_VALUE and same(value, previous):
                    return  # the IOC came back with the value it had: nothing happened
            values["pvname"] = self.pv
            timestamp = values.get("timestamp")
            self._emit(
                PvEvent(
                    key=None,
                    values={key: values.get(key) for key in EVENT_KEYS},
                    time=float(timestamp) if timestamp else time.time(),
                    previous=None if previous is _NO_VALUE else previous,
                    keywords=values,
                )
            )

    def _report_unconnected(self) -> None:
        with self._lock:
            if self._emit is None or self._ever_connected:
                return
        logger.warning(
            "PV %s has not connected within %g s; still waiting for it (%s): check the "
            "name, that its IOC runs, and that these settings reach it",
            self.pv,
            self.connection_timeout,
            channel.address_settings(self.pv),
        )
