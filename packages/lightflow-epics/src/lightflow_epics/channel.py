"""PV channels: one way to watch, read and write a PV, over Channel Access or PV Access.

A PV is named as operators write it: ``BL:ENERGY`` goes through Channel Access
(pyepics), ``pva://BL:IMAGE`` through PV Access (p4p, the optional ``pva`` extra). The
rest of the extension (trigger source, tasks, CLI) calls only the three functions here:

* :func:`subscribe` reports a PV's updates and its connection changes to callbacks, on
  the protocol library's threads, in the order the library delivers them. Each update
  is a dict of monitor keywords: pyepics' own (``pvname``, ``value``, ``char_value``,
  ``timestamp``, ``severity``, ``status``, ``host``, ...) for CA, the same core names
  for PVA; ``pvname`` is the name as written here (with ``pva://``). A subscription
  never gives up: the library reconnects when the IOC comes back.
* :func:`read` reads PVs once, :func:`write` writes one, both bounded by a timeout: a
  PV that does not connect in time, refuses access or does not confirm a write raises
  :class:`PvError` with one line naming the PV and the EPICS address settings in
  force (:func:`address_settings`), never hangs.

Which IOCs a process can reach is fixed by the EPICS environment variables when the
protocol library starts (the first call in the process); this module reads them only
to report them.
"""

from __future__ import annotations

import os
import reprlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from lightflow.exceptions import ConfigError, LightflowError

#: The prefix that sends a PV through PV Access.
PVA_SCHEME = "pva://"

#: The environment variables that decide where each protocol searches for PVs.
ADDRESS_VARIABLES = {
    "ca": (
        "EPICS_CA_ADDR_LIST",
        "EPICS_CA_AUTO_ADDR_LIST",
        "EPICS_CA_NAME_SERVERS",
        "EPICS_CA_SERVER_PORT",
    ),
    "pva": (
        "EPICS_PVA_ADDR_LIST",
        "EPICS_PVA_AUTO_ADDR_LIST",
        "EPICS_PVA_NAME_SERVERS",
        "EPICS_PVA_BROADCAST_PORT",
    ),
}

#: What :func:`read` gives per PV.
READ_KEYS = ("pvname", "value", "timestamp", "severity", "status")

OnValue = Callable[[dict[str, Any]], None]
OnConnection = Callable[[bool], None]


class PvError(LightflowError):
    """A PV could not be reached, read or written; the message names the PV."""


class Subscription(Protocol):
    """A running monitor of one PV (see :func:`subscribe`)."""

    def close(self) -> None:
        """Stop the monitor: no callback is called once this returns."""


def protocol(pv: str) -> str:
    """``'pva'`` for a ``pva://`` name, else ``'ca'``.

    Raises:
        PvError: ``pv`` is not a usable PV name (empty, or with blanks).
    """
    if not isinstance(pv, str):
        raise PvError(f"a PV name is text such as 'BL:ENERGY', got {type(pv).__name__} {pv!r}")
    name = bare_name(pv)
    if not name or any(character.isspace() for character in name):
        raise PvError(
            f"{pv!r} is not a PV name: write it as 'BL:ENERGY' (Channel Access) or "
            "'pva://BL:ENERGY' (PV Access), without blanks"
        )
    return "pva" if pv.startswith(PVA_SCHEME) else "ca"


def bare_name(pv: str) -> str:
    """The name the IOC serves (``pva://X`` -> ``X``)."""
    return pv[len(PVA_SCHEME) :] if pv.startswith(PVA_SCHEME) else pv


def address_settings(pv: str) -> str:
    """The EPICS address settings in force for ``pv``'s protocol, for error lines."""
    variables = ADDRESS_VARIABLES[protocol(pv)]
    given = [f"{name}={os.environ[name]}" for name in variables if os.environ.get(name)]
    unset = [name for name in variables if not os.environ.get(name)]
    parts = given + ([f"unset: {', '.join(unset)}"] if unset else [])
    return "; ".join(parts)


def subscribe(pv: str, on_value: OnValue, on_connection: OnConnection) -> Subscription:
    """Monitor ``pv``: updates go to ``on_value``, connection changes to ``on_connection``.

    ``on_connection(True)`` comes before the first update of each connection, so the
    update after it is the value read at (re)connection. The callbacks run on the
    protocol library's threads: they must return quickly and must not call this
    module.

    Raises:
        PvError: The name is unusable, or PV Access is asked for without p4p.
    """
    if protocol(pv) == "pva":
        return _pva(pv).PvaSubscription(pv, on_value, on_connection)
    from . import ca

    return ca.CaSubscription(pv, on_value, on_connection)


def read(pvs: Sequence[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Read each PV once; return, per PV, a dict of :data:`READ_KEYS`.

    The PVs are read together within ``timeout`` seconds in all.

    Raises:
        PvError: A name is unusable, or a PV did not connect or answer in time (the
            line names every such PV and the address settings).
        ConfigError: ``timeout`` is not a number of seconds above 0.
    """
    timeout = seconds("timeout", timeout)
    by_protocol: dict[str, list[str]] = {"ca": [], "pva": []}
    for pv in pvs:
        by_protocol[protocol(pv)].append(pv)
    results: dict[str, dict[str, Any]] = {}
    if by_protocol["ca"]:
        from . import ca

        results.update(ca.read(by_protocol["ca"], timeout))
    if by_protocol["pva"]:
        results.update(_pva(by_protocol["pva"][0]).read(by_protocol["pva"], timeout))
    return {pv: results[pv] for pv in pvs}


def write(pv: str, value: Any, *, wait: bool, timeout: float) -> None:
    """Write ``value`` to ``pv``; with ``wait``, until the IOC reports the processing done.

    Raises:
        PvError: The PV did not connect within ``timeout`` seconds, is read-only for
            this client, refused the value, or did not confirm it in time.
        ConfigError: ``timeout`` is not a number of seconds above 0.
    """
    timeout = seconds("timeout", timeout)
    if protocol(pv) == "pva":
        _pva(pv).write(pv, value, wait=wait, timeout=timeout)
        return
    from . import ca

    ca.write(pv, value, wait=wait, timeout=timeout)


def unconnected_error(pvs: Sequence[str], timeout: float) -> PvError:
    """The one-line error for PVs that did not connect within ``timeout`` seconds."""
    names = ", ".join(f"'{pv}'" for pv in pvs)
    subject = f"PV {names} did" if len(pvs) == 1 else f"PVs {names} did"
    return PvError(
        f"{subject} not connect within {timeout:g} s ({address_settings(pvs[0])}): check "
        "the name, that its IOC runs, and that these settings reach it"
    )


def seconds(key: str, value: Any) -> float:
    """``value`` as a number of seconds above 0 (timeouts).

    Raises:
        ConfigError: It is not such a number; the line names ``key``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"'{key}' is a number of seconds above 0, got {value!r}")
    return float(value)


def shown(value: Any) -> str:
    """``value`` for an error line: its repr, shortened (a waveform has many elements)."""
    return reprlib.repr(value)


def _pva(pv: str) -> Any:
    """The PV Access backend, or a one-line error when p4p is not installed."""
    try:
        from . import pva
    except ImportError as error:
        if not (error.name or "").startswith("p4p"):
            raise
        raise PvError(
            f"PV '{pv}' is a PV Access channel, which needs p4p: install it with "
            "pip install 'lightflow-epics[pva]'"
        ) from None
    return pva
