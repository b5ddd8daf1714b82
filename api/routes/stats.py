"""Dashboard statistics: volume over time and top values, for any query."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio.to_thread
from fastapi import APIRouter
from fastapi import Query as Q
from pydantic import BaseModel, Field

from api.deps import FiltersDep, SettingsDep, StoreDep, build_query
from api.errors import STORE_PROBLEMS, param_problem
from api.security import API, GuardedRoute
from index.base import Bucket, TermsField

router = APIRouter(prefix=f"{API}/stats", tags=["stats"], route_class=GuardedRoute, responses=STORE_PROBLEMS)

Interval = Literal["1m", "5m", "15m", "1h", "1d"]
_STEP = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "15m": timedelta(minutes=15),
         "1h": timedelta(hours=1), "1d": timedelta(days=1)}
# Without `start`, a chart covers this much before the newest matching post (about 300-700
# buckets): enough for context, and a 1-minute chart over a year of posts cannot be asked for
# by accident.
_DEFAULT_SPAN = {"1m": timedelta(hours=6), "5m": timedelta(days=1), "15m": timedelta(days=3),
                 "1h": timedelta(days=7), "1d": timedelta(days=365)}
MAX_BUCKETS = 5000
SplitField = Literal["sentiment", "topic", "source", "platform", "lang", "source_tier", "watchlist"]


class VolumeBucket(BaseModel):
    start: datetime = Field(description="bucket start, in the requested time zone")
    count: int
    split: dict[str, int] = Field(default_factory=dict)


class Volume(BaseModel):
    interval: Interval
    tz: str
    split_by: SplitField | None
    start: datetime | None = Field(description="the range's start; without `start` in the request, the default span before the newest matching post")
    end: datetime | None
    total: int
    buckets: list[VolumeBucket]


class TermCount(BaseModel):
    value: str
    count: int


class Terms(BaseModel):
    field: TermsField
    buckets: list[TermCount]


def _zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise param_problem("tz", "query", "expected an IANA time zone such as Asia/Shanghai or UTC", tz) from None
    return tz


@router.get("/volume", response_model=Volume, summary="Posts per time bucket, optionally split")
async def volume(
    filters: FiltersDep,
    store: StoreDep,
    settings: SettingsDep,
    interval: Annotated[Interval, Q(description="bucket width")] = "1h",
    tz: Annotated[str | None, Q(max_length=64, description="IANA zone for bucket boundaries; default: the configured zone")] = None,
    split_by: Annotated[SplitField | None, Q(description="count each bucket per value of this field")] = None,
) -> Volume:
    zone = _zone(tz or settings.timezone)
    step = _STEP[interval]
    if filters["start"] is not None and filters["end"] is not None:
        n = (filters["end"] - filters["start"]) / step
        if n > MAX_BUCKETS:
            raise param_problem(
                "interval", "query",
                f"the range holds {int(n)} buckets of {interval}; at most {MAX_BUCKETS}: use a wider interval or a shorter range",
                interval,
            )

    def run() -> list[Bucket]:
        if filters["start"] is None:
            # anchor the default span on the newest matching post, not on the wall clock:
            # a quiet week (or an archive) still gets a chart of its last activity
            newest = store.search(build_query(**filters, size=1, sort="time"))
            if not newest.hits:
                return []
            filters["start"] = newest.hits[0].post.published_at - _DEFAULT_SPAN[interval] + step
        query = build_query(**filters, size=0)
        return store.histogram(query, interval, zone, split_by=split_by)

    buckets = await anyio.to_thread.run_sync(run)
    if len(buckets) > MAX_BUCKETS:
        buckets = buckets[-MAX_BUCKETS:]
    return Volume(
        interval=interval, tz=zone, split_by=split_by, start=filters["start"], end=filters["end"],
        total=sum(b.count for b in buckets),
        buckets=[VolumeBucket(start=b.start, count=b.count, split=dict(b.split)) for b in buckets],
    )


@router.get("/terms", response_model=Terms, summary="Top values of a field (sentiment, topic, author, term, ...)")
async def terms(
    filters: FiltersDep,
    store: StoreDep,
    field: Annotated[TermsField, Q(description="what to count; `term` counts words of the text")],
    size: Annotated[int, Q(ge=1, le=100)] = 10,
) -> Terms:
    query = build_query(**filters, size=0)
    rows = await anyio.to_thread.run_sync(lambda: store.terms(query, field, size))
    return Terms(field=field, buckets=[TermCount(value=str(v), count=int(n)) for v, n in rows])
