"""The backend-neutral store: what the worker, the detector and the API may ask of an index.

Two backends implement `Store`: `index.sqlite.SqliteStore` (embedded default, FTS5 over tokens
analysed in Python by `index.analysis`) and `index.elastic.ElasticStore` (scaled out). Callers
build a `Query` and never see backend syntax; both backends must return the same ids, counts
and order for the same query (tests/index proves it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yuqing.records import Post

SortKey = Literal["time", "relevance", "engagement", "rumor"]
# fields that `terms` aggregations and `histogram(split_by=...)` accept
TermsField = Literal["sentiment", "topic", "source", "platform", "lang", "author", "watchlist", "source_tier", "term"]


class Query(BaseModel):
    """A search or aggregation request. Empty filters mean "no restriction"."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(default=None, max_length=2000, description="terms, \"phrases\", AND/OR/NOT")
    start: datetime | None = None  # published_at >= start
    end: datetime | None = None  # published_at < end
    sources: list[str] | None = None
    platforms: list[str] | None = None
    langs: list[str] | None = None
    sentiments: list[str] | None = None
    topics: list[str] | None = None
    watchlists: list[str] | None = None
    authors: list[str] | None = None
    rumor_min: float | None = Field(default=None, ge=0.0, le=1.0)
    rumor_max: float | None = Field(default=None, ge=0.0, le=1.0)
    sort: SortKey = "time"
    size: int = Field(default=20, ge=0, le=1000)
    cursor: str | None = None  # opaque; from SearchPage.next_cursor
    highlight: bool = False

    @model_validator(mode="after")
    def _ranges(self) -> "Query":
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        for t in (self.start, self.end):
            if t is not None and t.tzinfo is None:
                raise ValueError("times must carry a time zone")
        return self


class Hit(BaseModel):
    post: Post
    score: float | None = None
    highlights: dict[str, list[str]] = Field(default_factory=dict)


class SearchPage(BaseModel):
    total: int
    hits: list[Hit]
    next_cursor: str | None = None


@dataclass(frozen=True)
class IndexResult:
    """Outcome for one post of a bulk call. `ok` False: not indexed, `error` says why, and the
    caller keeps the post for retry (the worker leaves it in the inbox)."""

    id: str
    ok: bool
    error: str | None = None
    retryable: bool = True


@dataclass(frozen=True)
class Bucket:
    """One time bucket: `start` is the bucket's start (aware, in the requested time zone)."""

    start: datetime
    count: int
    split: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StoryCount:
    """One time range of `Store.stories`: `posts` matching posts (every copy and repost),
    `stories` distinct story clusters among them (posts sharing a `cluster_id` are one story;
    a post without one is a story of its own)."""

    start: datetime
    end: datetime
    posts: int
    stories: int


class StoreUnavailable(Exception):
    """The index cannot be reached; the caller keeps its work and retries later."""


@runtime_checkable
class Store(Protocol):
    def ensure_schema(self) -> None:
        """Create tables / index templates if missing (idempotent)."""

    def ping(self) -> bool:
        """True when the backend answers (readiness)."""

    def bulk_index(self, posts: Sequence[Post]) -> list[IndexResult]:
        """Index or replace posts by `post.id`, one result per post, same order."""

    def get(self, doc_id: str) -> Post | None: ...

    def delete_by_query(self, query: Query) -> int: ...

    def search(self, query: Query) -> SearchPage:
        """Raises ValueError (`index.analysis.QuerySyntaxError`, `index.common.CursorError`)
        for a query the user wrote wrong or a cursor that does not belong to this query."""

    def count(self, query: Query) -> int: ...

    def histogram(
        self, query: Query, interval: str, tz: str, split_by: TermsField | None = None
    ) -> list[Bucket]:
        """Counts per calendar bucket of `published_at` in time zone `tz`. `interval` is one of
        '1m', '5m', '15m', '1h', '1d'. Empty buckets between the first and last are included."""

    def stories(self, query: Query, edges: Sequence[datetime]) -> list[StoryCount]:
        """Posts and distinct story clusters in each range [edges[i], edges[i+1]) of
        `published_at` (edges aware, strictly increasing, at least two), within the query's own
        start/end. The alert detector counts stories, not rows: a thousand copies of one text
        are one story with a thousand shares. Raises ValueError for bad edges."""

    def terms(self, query: Query, field: TermsField, size: int = 10) -> list[tuple[str, int]]:
        """Top values of `field` with counts, most frequent first, ties by value. `term` means
        the words of the post text as analysed for search (Chinese bigrams without function
        characters, unstemmed words), not the watchlist terms a post matched."""

    def refresh(self) -> None:
        """Make everything indexed so far visible to search (no-op where already true)."""

    def close(self) -> None: ...


def story_ranges(query: Query, edges: Sequence[datetime]) -> list[tuple[datetime, datetime, datetime, datetime]]:
    """`Store.stories`' edges checked, each range as (start, end, clipped start, clipped end):
    the clipped pair is the range within the query's own start/end (equal when empty). Both
    backends use it, so both refuse the same bad edges with the same message."""
    if len(edges) < 2:
        raise ValueError("stories needs at least two edges (one range)")
    for i, t in enumerate(edges):
        if t.tzinfo is None:
            raise ValueError(f"edge {i} ({t.isoformat()}) carries no time zone")
        if i and t <= edges[i - 1]:
            raise ValueError(f"edges must increase: edge {i} ({t.isoformat()}) is not after edge {i - 1}")
    out = []
    for a, b in zip(edges, edges[1:]):
        lo = max(a, query.start) if query.start is not None else a
        hi = min(b, query.end) if query.end is not None else b
        out.append((a, b, lo, max(lo, hi)))
    return out
