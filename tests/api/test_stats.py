"""Volume over time (interval, time zone, split) and top values."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from .conftest import T0, World


def test_volume_hourly_in_shanghai_split_by_sentiment(world: World) -> None:
    start = T0 - timedelta(hours=12)
    r = world.client("viewer").get("/api/v1/stats/volume", params={
        "interval": "1h", "tz": "Asia/Shanghai", "split_by": "sentiment",
        "start": start.isoformat(), "end": T0.isoformat(),
    })
    assert r.status_code == 200, r.text
    v = r.json()
    assert v["tz"] == "Asia/Shanghai" and v["split_by"] == "sentiment"
    expected = [p for p in world.posts if start <= p.published_at < T0]
    assert v["total"] == len(expected) == sum(b["count"] for b in v["buckets"])
    for b in v["buckets"]:
        assert sum(b["split"].values()) == b["count"]
        t = datetime.fromisoformat(b["start"])
        assert t.utcoffset() == timedelta(hours=8) and t.minute == 0
    by_sentiment: Counter[str] = Counter()
    for b in v["buckets"]:
        by_sentiment.update(b["split"])
    want = Counter(p.classification.sentiment for p in expected if p.classification)
    assert +by_sentiment == want


def test_daily_buckets_follow_the_requested_zone(world: World) -> None:
    """A post at 02:00 Shanghai on the 10th is on the 9th in UTC: the zone decides the day."""
    c = world.client("viewer")
    params = {"interval": "1d", "start": (T0 - timedelta(days=3)).isoformat(), "end": T0.isoformat()}
    utc = c.get("/api/v1/stats/volume", params={**params, "tz": "UTC"}).json()
    sh = c.get("/api/v1/stats/volume", params={**params, "tz": "Asia/Shanghai"}).json()
    assert utc["total"] == sh["total"]

    def per_day(v: dict, tz_hours: int) -> dict[str, int]:
        return {b["start"][:10]: b["count"] for b in v["buckets"] if b["count"]}

    def expect(tz_hours: int) -> dict[str, int]:
        c2: Counter[str] = Counter()
        for p in world.posts:
            if T0 - timedelta(days=3) <= p.published_at < T0:
                c2[(p.published_at + timedelta(hours=tz_hours)).date().isoformat()] += 1
        return dict(c2)

    assert per_day(utc, 0) == expect(0)
    assert per_day(sh, 8) == expect(8)


def test_volume_parameter_errors(world: World) -> None:
    c = world.client("viewer")
    r = c.get("/api/v1/stats/volume", params={"tz": "Mars/Olympus"})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "tz"
    r = c.get("/api/v1/stats/volume", params={"interval": "7m"})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "interval"
    r = c.get("/api/v1/stats/volume", params={"interval": "1m", "start": "2020-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"})
    assert r.status_code == 422 and "buckets" in r.json()["errors"][0]["message"]
    r = c.get("/api/v1/stats/volume", params={"split_by": "text"})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "split_by"


def test_terms_by_field(world: World) -> None:
    c = world.client("viewer")
    r = c.get("/api/v1/stats/terms", params={"field": "lang", "size": 5})
    assert r.status_code == 200
    got = {b["value"]: b["count"] for b in r.json()["buckets"]}
    assert got == dict(Counter(p.lang for p in world.posts))
    r = c.get("/api/v1/stats/terms", params={"field": "sentiment", "q": "泄漏"})
    assert {b["value"]: b["count"] for b in r.json()["buckets"]} == {"negative": 4, "neutral": 1}
    r = c.get("/api/v1/stats/terms", params={"field": "source", "lang": "ar", "size": 1})
    assert r.json()["buckets"] == [{"value": "arabic_news", "count": sum(p.lang == "ar" for p in world.posts)}]
    r = c.get("/api/v1/stats/terms")
    assert r.status_code == 422 and r.json()["errors"][0] == {
        "param": "field", "location": "query", "message": "this parameter is required"
    }
    r = c.get("/api/v1/stats/terms", params={"field": "password"})
    assert r.status_code == 422 and "sentiment" in r.json()["errors"][0]["message"]


def test_default_span_ends_at_the_newest_matching_post(world: World) -> None:
    """No `start`: the chart covers the default span before the newest match, so an archive
    (or this corpus, dated in the past) still gets a chart instead of an empty one."""
    c = world.client("viewer")
    v = c.get("/api/v1/stats/volume", params={"interval": "1d"}).json()
    assert v["total"] == len(world.posts)
    v = c.get("/api/v1/stats/volume", params={"interval": "1m", "lang": "ar"}).json()
    newest_ar = max(p.published_at for p in world.posts if p.lang == "ar")
    assert datetime.fromisoformat(v["buckets"][-1]["start"]) <= newest_ar < datetime.fromisoformat(v["start"]) + timedelta(hours=6)
    assert 0 < v["total"] < sum(p.lang == "ar" for p in world.posts)  # 6 hours of 1-minute buckets only
    assert c.get("/api/v1/stats/volume", params={"q": "nothing-matches-this"}).json()["buckets"] == []
