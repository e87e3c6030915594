"""Tests of the trigger runtime (lightflow.triggers) and ``lightflow triggers``.

End to end with real processes: ``lightflow triggers run`` and ``lightflow run``
subprocesses, the fixture extension's ``lines`` source (datagrams on a Unix socket),
the runs' own processes, the session's private Redis and cluster. Shared helpers are
in ``conftest.py``, the workflows the triggers start in ``workflows/``.
"""
