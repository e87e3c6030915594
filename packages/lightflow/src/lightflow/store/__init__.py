"""Per-run persistent data: the store contract and its backends."""

from .base import DATA, META, DataStore, DataStoreDocument

__all__ = ["DATA", "META", "DataStore", "DataStoreDocument"]
