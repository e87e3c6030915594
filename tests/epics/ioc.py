"""A real EPICS IOC (pythonSoftIOC) serving the records the EPICS tests use.

Run as ``python ioc.py PREFIX``, with the server environment set by the caller (see
``conftest.py``): Channel Access on ``EPICS_CA_SERVER_PORT``, loopback only, and PV
Access on ``EPICS_PVAS_SERVER_PORT`` when ``LIGHTFLOW_TEST_PVA=1``. Prints ``ready.``
once the records are served, then runs until terminated.

Records (``PREFIX:NAME``):

* ``AO`` (aOut, 0.0), ``LO`` (longOut, 0), ``SO`` (stringOut), ``WF`` (a waveform of
  4 doubles), ``IMAGE`` (a waveform of 1000 integers): writable PVs to watch and write;
* ``AI`` (aIn, 2.0): an input record;
* ``RO`` (aOut, 4.0) in the access security group READONLY: reads only, writes refused;
* ``SLOW`` (aOut): its processing takes 0.5 s, so a put that waits for completion
  waits that long.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time

from softioc import asyncio_dispatcher, builder, imports, softioc

ACCESS_SECURITY = """\
ASG(DEFAULT) {
    RULE(1, READ)
    RULE(1, WRITE)
}
ASG(READONLY) {
    RULE(1, READ)
}
"""


async def _slow_processing(value: float) -> None:
    await asyncio.sleep(0.5)


def main(prefix: str) -> None:
    dispatcher = asyncio_dispatcher.AsyncioDispatcher()
    builder.SetDeviceName(prefix)
    builder.aOut("AO", initial_value=0.0, PREC=3)
    builder.longOut("LO", initial_value=0)
    builder.stringOut("SO", initial_value="idle")
    builder.WaveformOut("WF", initial_value=[0.0, 0.0, 0.0, 0.0])
    builder.WaveformOut("IMAGE", initial_value=[0] * 1000)
    builder.aIn("AI", initial_value=2.0)
    builder.aOut("RO", initial_value=4.0, ASG="READONLY")
    builder.aOut("SLOW", initial_value=0.0, on_update=_slow_processing, blocking=True)
    with tempfile.NamedTemporaryFile("w", suffix=".acf", delete=False) as acf:
        acf.write(ACCESS_SECURITY)
    imports.install_pv_logging(acf.name)  # loads the access security file
    builder.LoadDatabase()
    softioc.iocInit(dispatcher, enable_pva=os.environ.get("LIGHTFLOW_TEST_PVA") == "1")
    os.unlink(acf.name)
    print("ready.", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1])
