"""Index backends behind one interface (`index.base.Store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from index.base import Bucket, Hit, IndexResult, Query, SearchPage, Store, StoreUnavailable, StoryCount

if TYPE_CHECKING:
    from yuqing.config import Settings

__all__ = ["Bucket", "Hit", "IndexResult", "Query", "SearchPage", "Store", "StoreUnavailable", "StoryCount", "open_store"]


def open_store(settings: "Settings") -> Store:
    """The store the configuration selects."""
    if settings.index.backend == "elasticsearch":
        from index.elastic import ElasticStore

        return ElasticStore(settings.index.elasticsearch, retention_days=settings.privacy.retention_days)
    from index.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_index_path)
