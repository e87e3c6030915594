"""Per-run persistent data: the store contract and its backends.

:class:`MongoDataStore` is loaded on first access so that importing this package (as
the embedded engine does) never imports pymongo.
"""

from typing import Any

from .base import DATA, META, DataStore, DataStoreDocument
from .memory import MemoryDataStore

__all__ = ["DATA", "META", "DataStore", "DataStoreDocument", "MemoryDataStore", "MongoDataStore"]


def __getattr__(name: str) -> Any:
    if name == "MongoDataStore":
        from .mongo import MongoDataStore

        return MongoDataStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
