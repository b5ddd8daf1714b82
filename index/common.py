"""What both backends share besides analysis: time conversion, the cursor format, calendar
buckets in a time zone, and how a post's facet values are read. Keeping these in one place is
what makes the two backends return the same ids, counts and order.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from index.base import Query, SortKey, TermsField
from yuqing.records import Post

INTERVALS_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "1d": 86_400_000}
DAY_MS = 86_400_000
UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(t: datetime) -> int:
    """Milliseconds since the epoch, truncated. Both backends compare times at millisecond
    precision (Elasticsearch's `date` type), so a filter or a sort never disagrees on a
    microsecond the other backend cannot see."""
    if t.tzinfo is None:
        raise ValueError("times must carry a time zone")
    # aware subtraction, not t.astimezone(UTC): that overflows for year 1 east of UTC
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int, tz: ZoneInfo | timezone = UTC) -> datetime:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)).astimezone(tz)


def time_range_ms(q: Query) -> tuple[int | None, int | None]:
    """[start, end) of the query in epoch ms (None: open)."""
    return (to_ms(q.start) if q.start else None, to_ms(q.end) if q.end else None)


def engagement_of(p: Post) -> int:
    return p.engagement.total()


def rumor_sort_of(p: Post) -> float:
    """Sort value for `sort="rumor"`: unclassified posts sort after every classified one."""
    return p.classification.rumor if p.classification else -1.0


def facet_values(p: Post, field: TermsField) -> list[str]:
    """The values of `field` a post counts under in `terms` / `histogram(split_by=...)`."""
    from index.analysis import display_terms

    c = p.classification
    if field == "sentiment":
        return [c.sentiment] if c else []
    if field == "topic":
        return list(dict.fromkeys(t.topic for t in c.topics)) if c else []
    if field == "source":
        return [p.source]
    if field == "platform":
        return [p.platform]
    if field == "lang":
        return [p.lang] if p.lang else []
    if field == "author":
        return [p.author.id] if p.author.id else []
    if field == "watchlist":
        return list(dict.fromkeys(p.watchlists))
    if field == "source_tier":
        return [p.source_tier.value]
    if field == "term":
        return display_terms(p.title, p.text)
    raise ValueError(f"unknown terms field {field!r}")


# ---------------------------------------------------------------------------------------------
# cursor: base64url(JSON [version, sort, [sort values...]]); opaque to callers, checked on use


class CursorError(ValueError):
    """A cursor that is not ours, or from a query with another sort."""


def encode_cursor(sort: SortKey, values: list[Any]) -> str:
    raw = json.dumps([1, sort, values], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortKey) -> list[Any]:
    try:
        pad = "=" * (-len(cursor) % 4)
        version, csort, values = json.loads(base64.urlsafe_b64decode(cursor + pad))
    except (ValueError, TypeError) as e:
        raise CursorError("invalid cursor") from e
    if version != 1 or not isinstance(values, list):
        raise CursorError("invalid cursor")
    if csort != sort:
        raise CursorError(f"the cursor belongs to a query sorted by {csort!r}, not {sort!r}")
    return values


# ---------------------------------------------------------------------------------------------
# calendar buckets in a time zone


def offset_segments(tz: ZoneInfo, lo_ms: int, hi_ms: int) -> list[tuple[int, int, int]]:
    """Split [lo_ms, hi_ms] into (start_ms, end_ms, utc_offset_ms) pieces of constant UTC offset.
    Transitions are found by probing each day and bisecting to where the offset
    changed (to the millisecond), so DST (and any historical change of a zone's offset) is handled exactly."""

    def off(ms: int) -> int:
        o = from_ms(ms, tz).utcoffset()
        return int(o.total_seconds() * 1000) if o is not None else 0

    segs: list[tuple[int, int, int]] = []
    start = lo_ms
    cur = off(lo_ms)
    probe = lo_ms
    while probe < hi_ms:
        nxt = min(probe + DAY_MS, hi_ms)
        if off(nxt) != cur:
            a, b = probe, nxt  # off(a) == cur, off(b) != cur
            while b - a > 1:
                mid = (a + b) // 2
                if off(mid) == cur:
                    a = mid
                else:
                    b = mid
            segs.append((start, b, cur))
            start, cur, probe = b, off(b), b
            continue
        probe = nxt
    segs.append((start, hi_ms + 1, cur))
    return segs


def day_start_ms(d: date, tz: ZoneInfo) -> int:
    """First instant of local day `d`. Where midnight does not exist (a DST jump at 00:00),
    zoneinfo's fold=0 reading lands on the first instant after the gap, which is the start."""
    return to_ms(datetime(d.year, d.month, d.day, tzinfo=tz))


def local_date_of_day_index(idx: int) -> date:
    return date(1970, 1, 1) + timedelta(days=idx)


def bucket_sequence(first_ms: int, last_ms: int, interval: str, tz: ZoneInfo) -> Iterator[int]:
    """Every bucket start from the bucket `first_ms` starts to the one `last_ms` starts, both
    already bucket starts. Sub-day buckets step in elapsed time (a repeated DST hour is two
    buckets, a skipped one none); days step in calendar days (23 h or 25 h across DST)."""
    if interval == "1d":
        d = from_ms(first_ms, tz).date()
        end = from_ms(last_ms, tz).date()
        while d <= end:
            yield day_start_ms(d, tz)
            d += timedelta(days=1)
        return
    step = INTERVALS_MS[interval]
    t = first_ms
    while t <= last_ms:
        yield t
        t += step


def bucket_start_ms(ms: int, interval: str, tz: ZoneInfo) -> int:
    """Start of the bucket holding instant `ms`, for callers that bucket single instants the
    way `histogram` does (the alert detector's own slots, for instance)."""
    o = from_ms(ms, tz).utcoffset()
    off = int(o.total_seconds() * 1000) if o is not None else 0
    iv = INTERVALS_MS[interval]
    if interval == "1d":
        return day_start_ms(from_ms(ms, tz).date(), tz)
    return math.floor((ms + off) / iv) * iv - off
