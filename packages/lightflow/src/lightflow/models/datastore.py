"""Names shared by every data store backend (1.x import path)."""

from __future__ import annotations


class DataStoreDocumentSection:
    """The two sections of a run's store document.

    ``META`` holds what Lightflow records about the run (``log.<dag>.tasks.<task>``);
    ``DATA`` holds what tasks and parameters put there (the default section).
    """

    Meta = "meta"
    Data = "data"
    # 1.x spelled these in upper case as well.
    META = Meta
    DATA = Data
