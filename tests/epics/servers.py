"""Real IOCs for the EPICS tests and benchmark: ``ioc.py`` in a process of its own.

Each IOC serves Channel Access on its own port, on 127.0.0.1 only (and PV Access on
another port when asked), so parallel sessions never answer each other's searches.
The clients of a process must have been told those ports before their first call
(``EPICS_CA_ADDR_LIST=127.0.0.1:PORT``, ``EPICS_CA_AUTO_ADDR_LIST=NO``, and the
``EPICS_PVA_*`` equivalents: :func:`client_environment`).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid
from pathlib import Path

from tests.servers import HOST, WorkerProcess, free_port

IOC_PROGRAM = Path(__file__).resolve().parent / "ioc.py"


def free_udp_and_tcp_port() -> int:
    """A port free on 127.0.0.1 for TCP and UDP (a CA server binds both)."""
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((HOST, port))
            except OSError:
                continue
        return port


class Ioc(WorkerProcess):
    """``ioc.py PREFIX`` serving Channel Access on ``ca_port`` (and PVA on ``pva_port``)."""

    def __init__(self, ca_port: int, pva_port: int | None = None) -> None:
        self.prefix = f"LF{uuid.uuid4().hex[:6].upper()}"
        env = {
            "EPICS_CA_SERVER_PORT": str(ca_port),
            "EPICS_CAS_INTF_ADDR_LIST": HOST,
            "EPICS_CAS_BEACON_ADDR_LIST": HOST,
            "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
        }
        if pva_port is not None:
            env |= {
                "LIGHTFLOW_TEST_PVA": "1",
                "EPICS_PVAS_SERVER_PORT": str(pva_port),
                "EPICS_PVAS_BROADCAST_PORT": str(pva_port),
                "EPICS_PVAS_INTF_ADDR_LIST": HOST,
                "EPICS_PVAS_BEACON_ADDR_LIST": HOST,
                "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
            }
        super().__init__(
            f"ioc-{self.prefix}", [sys.executable, str(IOC_PROGRAM), self.prefix], env=env
        )

    def pv(self, record: str) -> str:
        """The full name of one of the IOC's records (``AO`` -> ``LFxxxx:AO``)."""
        return f"{self.prefix}:{record}"

    def kill(self) -> None:
        """SIGKILL the IOC, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def client_environment(ca_ports: list[int], pva_port: int | None = None) -> dict[str, str]:
    """The EPICS client settings that reach exactly the IOCs on these ports."""
    env = {
        "EPICS_CA_ADDR_LIST": " ".join(f"{HOST}:{port}" for port in ca_ports),
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
    }
    if pva_port is not None:
        env |= {
            "EPICS_PVA_ADDR_LIST": f"{HOST}:{pva_port}",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_BROADCAST_PORT": str(pva_port),
        }
    return env
