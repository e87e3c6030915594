"""``pip install lightflow lightflow-epics`` from two wheels reaches a real IOC.

Only that venv's ``lightflow`` runs (``epics_install``, see ``wheels.py``), against
the EPICS suite's test IOC (``tests/epics/ioc.py``, run by the test environment's
softioc). Reading PVs with ``lightflow epics get`` and with a ``PvGetTask`` proves
pyepics and the libca it bundles work from a plain install.

The IOC is one of this module's own, on ports of its own: the EPICS suite's ``ioc``
fixture lives in its conftest, where its session-wide client settings (set in this
process's environment) belong. Here the client settings go to the venv's commands only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.epics.servers import Ioc, client_environment, free_udp_and_tcp_port

from .wheels import ROOT, Install, Wheel, assert_extensions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

READ_PVS = ROOT / "tests" / "epics" / "workflows" / "read_pvs.py"


@pytest.fixture(scope="module")
def ca_port() -> int:
    """The Channel Access port of the module's IOC."""
    return free_udp_and_tcp_port()


@pytest.fixture(scope="module")
def ioc(ca_port: int) -> Iterator[Ioc]:
    server = Ioc(ca_port).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ioc_clients(ca_port: int) -> dict[str, str]:
    """The EPICS client settings that reach the module's IOC, and only it."""
    return client_environment([ca_port])


def test_ext_list_shows_the_epics_extension_only(
    epics_install: Install, wheels: dict[str, Wheel]
) -> None:
    assert_extensions(epics_install, [wheels["lightflow-epics"]])


def test_its_task_types_are_listed(epics_install: Install) -> None:
    tasks = epics_install.run("tasks")
    assert tasks.returncode == 0, tasks.stderr
    listed = {line.split()[0] for line in tasks.stdout.splitlines() if line.strip()}
    assert {"PvTriggerTask", "PvGetTask", "PvPutTask"} <= listed, tasks.stdout + tasks.stderr


def test_epics_get_reads_a_pv_of_a_real_ioc(
    epics_install: Install, ioc: Ioc, ioc_clients: dict[str, str]
) -> None:
    pv = ioc.pv("AI")  # an aIn record, 2.0 from the start
    result = epics_install.run("epics", "get", "--timeout", "10", pv, env=ioc_clients)
    assert result.returncode == 0, result.stdout + result.stderr
    name, value, *_ = result.stdout.split()
    assert (name, float(value)) == (pv, 2.0), result.stdout


def test_a_pv_get_task_reads_pvs_in_a_run(
    epics_install: Install, ioc: Ioc, ioc_clients: dict[str, str], tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    pvs = [ioc.pv("AI"), ioc.pv("RO")]
    result = epics_install.run(
        "run", str(READ_PVS), f"pvs={','.join(pvs)}", f"record={record}", env=ioc_clients
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(record.read_text()) == {pvs[0]: 2.0, pvs[1]: 4.0}
