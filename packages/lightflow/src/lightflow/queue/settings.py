"""Where the distributed engine's servers are: the state server and the store, from the config.

The Redis state server is the ``signal`` section's (1.x layout or a URL), else the
broker when it is Redis; the store is the ``store`` section's MongoDB, whose keys are
checked on the client so that a typo fails ``workflow start`` instead of every job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..config import redact_url
from ..exceptions import ConfigError
from .app import DEFAULT_BROKER

if TYPE_CHECKING:
    from ..config import Config
    from ..store.mongo import MongoDataStore


def state_url(config: Config) -> str:
    """The Redis URL holding run state: ``signal`` settings, else a Redis broker."""
    signal = config.signal or {}
    if signal.get("url"):
        return str(signal["url"])
    if signal.get("host"):  # the 1.x layout
        password = signal.get("password")
        auth = f":{quote(str(password), safe='')}@" if password else ""
        scheme = "rediss" if signal.get("ssl") else "redis"
        return (
            f"{scheme}://{auth}{signal['host']}:{signal.get('port', 6379)}/"
            f"{signal.get('database', 0)}"
        )
    broker = str(config.celery.get("broker_url", DEFAULT_BROKER))
    if broker.startswith(("redis://", "rediss://")):
        return broker
    raise ConfigError(
        f"the broker ({redact_url(broker)}) is not Redis, so set the Redis server that "
        f"holds run state: signal.url (or signal.host/port) in {config.file_name}"
    )


def store_settings(config: Config) -> dict[str, Any]:
    """The ``store`` section checked against what the MongoDB store accepts.

    Checked on the client, so a typo fails ``workflow start`` instead of every job.

    Raises:
        ConfigError: The section has a key the store does not know.
    """
    import inspect

    from ..store.mongo import MongoDataStore

    settings = dict(config.store or {})
    accepted = [name for name in inspect.signature(MongoDataStore).parameters]
    unknown = sorted(set(settings) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown store setting '{unknown[0]}' in {config.file_name}; the store accepts: "
            f"{', '.join(accepted)}"
        )
    return settings


def create_store(config: Config) -> MongoDataStore:
    """The MongoDB store from the ``store`` section (1.x keys or a ``uri``)."""
    from ..store.mongo import MongoDataStore

    return MongoDataStore(**store_settings(config))
