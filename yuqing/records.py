"""The records that flow between stages, defined once.

Every stage (crawlers, inbox, nlp worker, index, alerts, API) reads and writes `Post`; no stage
defines its own copy. Fields are optional where a source cannot give them: a missing follower
count is `None` ("unknown"), never 0 ("nobody").
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class SourceTier(str, Enum):
    """Who speaks. Alert levels weigh a story picked up by official or national media higher."""

    official = "official"  # the agency's or another authority's own account
    national_media = "national_media"
    local_media = "local_media"
    public = "public"


SENTIMENTS = ("negative", "neutral", "positive")


class Author(BaseModel):
    """The author, minimised: `id` is a keyed hash (see `yuqing.ids.pseudonymise`), never the
    platform's own user id, so the index holds no directly identifying key."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str | None = None
    followers: int | None = Field(default=None, ge=0)
    verified: bool | None = None


class Engagement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reposts: int | None = Field(default=None, ge=0)
    comments: int | None = Field(default=None, ge=0)
    likes: int | None = Field(default=None, ge=0)
    views: int | None = Field(default=None, ge=0)

    def total(self) -> int:
        """Interactions known so far; used to sort by engagement and to estimate reach."""
        return (self.reposts or 0) + (self.comments or 0) + (self.likes or 0)  # per post indexed: no generator


class TopicScore(BaseModel):
    topic: str
    score: float = Field(ge=0.0, le=1.0)


class Classification(BaseModel):
    """What the model said about a post. `model` is `<name>@<version>` so every figure can be
    traced to the weights that produced it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    sentiment: str
    sentiment_scores: dict[str, float]
    topics: list[TopicScore] = Field(default_factory=list)
    rumor: float = Field(ge=0.0, le=1.0)
    model: str

    @field_validator("sentiment")
    @classmethod
    def _known_sentiment(cls, v: str) -> str:
        if v not in SENTIMENTS:
            raise ValueError(f"sentiment must be one of {SENTIMENTS}, got {v!r}")
        return v


def _utc(v: datetime | None) -> datetime | None:
    """Store every time as aware UTC; a naive time is a bug upstream, so refuse it loudly."""
    if v is None:
        return None
    if v.tzinfo is None:
        raise ValueError("time must carry a time zone (convert with the source's zone first)")
    return v.astimezone(timezone.utc)


class Post(BaseModel):
    """One public post (article, forum reply, microblog post, channel message)."""

    model_config = ConfigDict(extra="forbid")

    # ids
    id: str = Field(description="canonical document id: hash of the canonical URL or platform id")
    platform_id: str | None = None
    url: str | None = None
    # where from
    source: str
    platform: str = "web"
    source_tier: SourceTier = SourceTier.public
    author: Author = Field(default_factory=Author)
    # when
    published_at: datetime
    fetched_at: datetime
    # what
    lang: str | None = None
    title: str | None = None
    text: str
    engagement: Engagement = Field(default_factory=Engagement)
    # links
    reply_to: str | None = None
    repost_of: str | None = None
    thread_id: str | None = None
    position: int | None = Field(default=None, ge=1, description="1-based place in its thread (1: the opening post)")
    # folding
    text_hash: str | None = None
    cluster_id: str | None = None
    cluster_size: int = Field(default=1, ge=1)
    # matching
    watchlists: list[str] = Field(default_factory=list)
    matched_terms: list[str] = Field(default_factory=list)
    # classification (filled by the worker)
    classification: Classification | None = None
    # evidence (issue 5, additive): when a re-crawl found the post gone (its URL answered
    # 404/410); the inbox re-queues the post with it set so the index learns it
    disappeared_at: datetime | None = None

    _norm_times = field_validator("published_at", "fetched_at", "disappeared_at")(lambda v: _utc(v))
