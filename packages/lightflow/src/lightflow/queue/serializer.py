"""The cloudpickle message serializer, registered with kombu.

Tasks carry user callables (lambdas, closures, functions of a workflow file that the
worker never imported), which plain pickle cannot serialise by reference; cloudpickle
serialises them by value. Registering it as a kombu serializer makes every Lightflow
message use it on any broker.
"""

from __future__ import annotations

import cloudpickle
from kombu.serialization import register

NAME = "cloudpickle"
CONTENT_TYPE = "application/x-lightflow-cloudpickle"


def register_serializer() -> None:
    """Register the serializer with kombu (idempotent)."""
    register(
        NAME,
        cloudpickle.dumps,
        cloudpickle.loads,
        content_type=CONTENT_TYPE,
        content_encoding="binary",
    )
