"""Fixtures for the alert tests: the real SQLite index store, a post factory, a settings object
with clean thresholds, and a scenario writer that lays down deterministic streams of posts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from yuqing.config import AlertsConfig, LevelRule, Settings, WatchlistConfig
from yuqing.records import Author, Classification, Engagement, Post, SourceTier

# a Monday 09:00 in Beijing, on a minute boundary
T0 = datetime(2025, 3, 3, 1, 0, tzinfo=timezone.utc)


@pytest.fixture
def index_store(tmp_path: Path) -> Iterator[Any]:
    from index.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "index.db")
    store.ensure_schema()
    yield store
    store.close()


def alerts_config(**overrides: Any) -> AlertsConfig:
    """Levels with wide margins between them, so a scenario lands clearly in one."""
    values: dict[str, Any] = dict(
        levels=[
            LevelRule(level="blue", min_count=5, min_ratio=2.0),
            LevelRule(level="yellow", min_count=30, min_ratio=4.0),
            LevelRule(level="orange", min_count=60, min_ratio=8.0, min_negative_share=0.4),
            LevelRule(level="red", min_count=100, min_ratio=12.0, min_negative_share=0.5),
        ],
        seasonal_days=0,
    )
    values.update(overrides)
    return AlertsConfig(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        agency="City Water Authority",
        timezone="Asia/Shanghai",
        data_dir=str(tmp_path / "data"),
        watchlists=[
            WatchlistConfig(name="water", terms=["自来水", "City Water"]),
            WatchlistConfig(name="transit", terms=["地铁", "Metro"]),
        ],
        alerts=alerts_config(),
    )


_SCORES = {
    "negative": {"negative": 0.8, "neutral": 0.15, "positive": 0.05},
    "neutral": {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
    "positive": {"negative": 0.05, "neutral": 0.15, "positive": 0.8},
}


class Posts:
    """Writes posts into the index with ids that say what they are."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.n = 0

    def make(
        self,
        at: datetime,
        *,
        watchlist: str = "water",
        sentiment: str = "neutral",
        text: str = "routine notice about the water supply schedule",
        followers: int = 100,
        reposts: int = 0,
        rumor: float = 0.05,
        negative_score: float | None = None,
        tier: SourceTier = SourceTier.public,
        lang: str = "en",
        source: str = "weibo",
        tag: str = "p",
    ) -> Post:
        self.n += 1
        scores = dict(_SCORES[sentiment])
        if negative_score is not None:
            scores["negative"] = negative_score
        return Post(
            id=f"{tag}{self.n:05d}",
            source=source,
            platform="weibo",
            source_tier=tier,
            url=f"https://example.org/{tag}/{self.n}",
            author=Author(id=f"a{self.n % 50}", followers=followers),
            published_at=at,
            fetched_at=at + timedelta(minutes=1),
            lang=lang,
            text=text,
            engagement=Engagement(reposts=reposts, comments=0, likes=0),
            watchlists=[watchlist],
            classification=Classification(sentiment=sentiment, sentiment_scores=scores, rumor=rumor, model="test@1"),
        )

    def add(self, posts: list[Post]) -> list[Post]:
        results = self.store.bulk_index(posts)
        assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
        self.store.refresh()
        return posts

    def steady(self, start: datetime, end: datetime, every: timedelta, watchlist: str = "water", offset: timedelta = timedelta(seconds=20)) -> list[Post]:
        """One ordinary post every `every` (the baseline), at a fixed offset into each slot."""
        out = []
        t = start + offset
        while t < end:
            out.append(self.make(t, watchlist=watchlist, tag="b"))
            t += every
        return self.add(out)

    def burst(
        self,
        start: datetime,
        minutes: int,
        per_minute: int,
        negative_share: float,
        *,
        watchlist: str = "water",
        text: str = "water outage in district five, taps dry since morning",
        tag: str = "s",
        **kw: Any,
    ) -> list[Post]:
        """`per_minute` posts in each of `minutes` minutes; the first `negative_share` of each
        minute's posts are negative (deterministic, no randomness)."""
        out = []
        neg_per_min = round(per_minute * negative_share)
        for m in range(minutes):
            for j in range(per_minute):
                at = start + timedelta(minutes=m, seconds=1 + j * (58 // max(per_minute, 1)))
                sentiment = "negative" if j < neg_per_min else "neutral"
                out.append(self.make(at, watchlist=watchlist, sentiment=sentiment, text=text, tag=tag, **kw))
        return self.add(out)


@pytest.fixture
def posts(index_store: Any) -> Posts:
    return Posts(index_store)
