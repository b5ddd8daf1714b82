"""The alert as the API returns it (JSON), and the pieces of its evidence.

`AlertStore` hands out plain dicts made with `Model.model_dump(mode="json")` (times as ISO 8601
strings in UTC), so the API can return them, or send them as SSE data, without conversion;
`Alert.model_validate(d)` turns one back into typed values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AlertState = Literal["open", "acknowledged", "resolved"]
Level = Literal["blue", "yellow", "orange", "red"]
# opened / escalated / updated / reopened / resolved come from the detector; acknowledged,
# resolved, note and claim (a verdict on a circulating claim) from officers (AlertStore)
# paged comes from the escalation ladder (actor "escalation"), published from officers
EventKind = Literal["opened", "escalated", "updated", "reopened", "acknowledged", "resolved", "note", "claim", "paged", "published"]


class EvidencePost(BaseModel):
    """A representative post, with just enough to read it on the page without another lookup.
    `why` says which choice it is (highest_reach, earliest, most_negative, rumor_candidate)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    why: list[str]
    url: str | None = None
    source: str
    source_tier: str
    platform: str
    lang: str | None = None
    published_at: datetime
    title: str | None = None
    text: str
    followers: int | None = None
    engagement: int = 0
    reach: int = 0  # followers + interactions: the audience the post has plausibly reached
    sentiment: str | None = None
    negative_score: float | None = None
    rumor: float | None = None
    cluster_size: int = 1


class SeriesPoint(BaseModel):
    """One interval of the chart: all matching posts and the negative ones."""

    model_config = ConfigDict(extra="forbid")

    t: datetime
    total: int
    negative: int


class Evidence(BaseModel):
    """What caused the alert. Every fact a draft statement uses must be found here."""

    model_config = ConfigDict(extra="forbid")

    post_ids: list[str] = Field(default_factory=list)  # every post below, most relevant first
    posts: list[EvidencePost] = Field(default_factory=list)
    rumor_candidates: list[EvidencePost] = Field(default_factory=list)
    interval: str  # the chart's interval, e.g. "1m"
    expected_per_interval: float  # the baseline line on the chart
    series: list[SeriesPoint] = Field(default_factory=list)
    window_start: datetime
    window_end: datetime
    top_terms: list[tuple[str, int]] = Field(default_factory=list)
    sources: list[tuple[str, int]] = Field(default_factory=list)
    languages: list[tuple[str, int]] = Field(default_factory=list)
    sentiment: dict[str, int] = Field(default_factory=dict)  # mix within the window
    source_tiers: list[tuple[str, int]] = Field(default_factory=list)


class AlertEvent(BaseModel):
    """One change to an alert; `id` is the SSE event id (resume with Last-Event-ID)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    alert_id: int
    kind: EventKind
    at: datetime
    actor: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class Alert(BaseModel):
    """One incident thread. `figures` says which rule fired and with what numbers (its keys:
    observed, expected, ratio, p_value, score, negative, negative_share, growth, ..., plus
    `explain`, `reasons`, `window`); `evidence` is None in list results (fetch one with `get`)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    key: str
    state: AlertState
    level: Level
    rule: str
    watchlist: str | None = None
    title: str
    figures: dict[str, Any]
    evidence: Evidence | None = None
    opened_at: datetime
    updated_at: datetime
    deadline_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    # the holding statement, once published (AlertStore.mark_published), and the countdowns it
    # starts: the next update, and the press conference where the level requires one
    published_at: datetime | None = None
    published_by: str | None = None
    statement_url: str | None = None
    next_update_at: datetime | None = None
    press_conference_at: datetime | None = None
    events: list[AlertEvent] | None = None
