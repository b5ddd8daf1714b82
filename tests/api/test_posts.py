"""Search, filters, cursor pagination, highlights, one post, export — over HTTP on a real store."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from .conftest import FORMULA_TEXT, T0, XSS_TEXT, World


def ids(page: dict) -> list[str]:
    return [h["post"]["id"] for h in page["hits"]]


def test_search_finds_a_two_character_chinese_word_with_highlights(world: World) -> None:
    r = world.client("viewer").get("/api/v1/posts", params={"q": "泄漏", "highlight": "true"})
    assert r.status_code == 200, r.text
    page = r.json()
    assert set(ids(page)) == {"p0000", "p0001", "p0002", "p0007", "p0008"}
    assert page["total"] == 5
    hl = {h["post"]["id"]: h["highlights"] for h in page["hits"]}
    assert any("<em>泄漏</em>" in f for f in hl["p0001"]["text"])
    # the hostile post's highlight is escaped by the store: no live markup survives
    xss = " ".join(hl["p0007"]["text"])
    assert "<script" not in xss and "<img" not in xss and "&lt;img src=x" in xss


def test_search_arabic_and_english(world: World) -> None:
    c = world.client("viewer")
    assert set(ids(c.get("/api/v1/posts", params={"q": "التسرب"}).json())) == {"p0005", "p0006"}
    assert set(ids(c.get("/api/v1/posts", params={"q": "leak", "lang": "en"}).json())) == {"p0003", "p0004"}


def test_filters_combine(world: World) -> None:
    c = world.client("viewer")

    def q(**params: object) -> set[str]:
        r = c.get("/api/v1/posts", params={"size": 100, **params})
        assert r.status_code == 200, r.text
        return set(ids(r.json()))

    assert q(lang="ar", sentiment="negative") == {"p0006"}
    assert q(lang="zh,en", sentiment="negative", source="weibo") == {"p0001"}
    assert q(sentiment=["negative", "positive"], platform="weibo") == {"p0001", "p0009"}
    assert q(rumor_min=0.9) == {"p0002"}
    assert q(topic="rumor") == {"p0002"}
    assert q(author="fan1") == {"p0009"}
    assert q(watchlist="air") == {p.id for p in world.posts if "air" in p.watchlists}
    start = (T0 - timedelta(hours=3, minutes=30)).isoformat()
    end = (T0 - timedelta(minutes=30)).isoformat()
    assert q(start=start, end=end) == {"p0000", "p0001", "p0002"}
    # the same instant written in another zone selects the same posts
    start8 = (T0 - timedelta(hours=3, minutes=30)).astimezone().isoformat()
    assert q(start=start8, end=end) == {"p0000", "p0001", "p0002"}


def test_cursor_walks_every_post_once_newest_first(world: World) -> None:
    c = world.client("viewer")
    seen: list[str] = []
    times: list[str] = []
    params: dict[str, object] = {"size": 7, "highlight": "false"}
    for _ in range(20):
        page = c.get("/api/v1/posts", params=params).json()
        assert page["total"] == len(world.posts)
        seen += ids(page)
        times += [h["post"]["published_at"] for h in page["hits"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) == len(world.posts)
    assert times == sorted(times, reverse=True)


def test_bad_cursor_and_out_of_range_size_are_422_problems(world: World) -> None:
    c = world.client("viewer")
    r = c.get("/api/v1/posts", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["param"] == "cursor"
    for size, bound in ((101, "≤ 100"), (0, "≥ 1")):
        r = c.get("/api/v1/posts", params={"size": size})
        assert r.status_code == 422
        err = r.json()["errors"][0]
        assert (err["param"], err["location"]) == ("size", "query") and bound in err["message"]
    r = c.get("/api/v1/posts", params={"sort": "random"})
    assert r.json()["errors"][0]["param"] == "sort" and "relevance" in r.json()["errors"][0]["message"]
    r = c.get("/api/v1/posts", params={"q": "x" * 501})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "q"


def test_times_need_a_zone_and_an_order(world: World) -> None:
    c = world.client("viewer")
    r = c.get("/api/v1/posts", params={"start": "2025-03-10T08:00:00"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["param"] == "start" and "zone" in r.json()["errors"][0]["message"]
    r = c.get("/api/v1/posts", params={"start": "2025-03-10T08:00:00Z", "end": "2025-03-10T07:00:00Z"})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "end"
    r = c.get("/api/v1/posts", params={"start": "yesterday"})
    assert r.status_code == 422 and "ISO 8601" in r.json()["errors"][0]["message"]
    r = c.get("/api/v1/posts", params={"end": "7231-02-04T03:05:31Z"})  # found by the fuzz test
    assert r.status_code == 422 and "between 1970 and 2200" in r.json()["errors"][0]["message"]
    r = c.get("/api/v1/posts", params={"rumor_min": 0.9, "rumor_max": 0.1})
    assert r.status_code == 422 and r.json()["errors"][0]["param"] == "rumor_min"


def test_one_post_with_the_post_it_replies_to(world: World) -> None:
    c = world.client("viewer")
    r = c.get("/api/v1/posts/p0009")
    assert r.status_code == 200
    body = r.json()
    assert body["post"]["id"] == "p0009" and body["reply_to"]["id"] == "p0000" and body["repost_of"] is None
    assert body["post"]["text"] == world.posts[9].text
    r = c.get("/api/v1/posts/nope-404")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    assert c.get("/api/v1/posts/bad%20id!").status_code == 422


def test_hostile_text_comes_back_verbatim_as_json(world: World) -> None:
    body = world.client("viewer").get("/api/v1/posts/p0007").json()
    assert body["post"]["text"] == XSS_TEXT  # the API returns data; escaping is the renderer's job


def test_export_jsonl_and_csv_stream_every_match(world: World) -> None:
    c = world.client("analyst")
    r = c.get("/api/v1/posts/export", params={"format": "jsonl", "lang": "zh"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in r.headers["content-disposition"]
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert {p["id"] for p in rows} == {p.id for p in world.posts if p.lang == "zh"}

    r = c.get("/api/v1/posts/export", params={"format": "csv", "q": "泄漏"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {row["id"] for row in table} == {"p0000", "p0001", "p0002", "p0007", "p0008"}
    formula = next(row for row in table if row["id"] == "p0008")
    assert formula["text"] == "'" + FORMULA_TEXT  # a spreadsheet will not run it
    with world.engine.connect() as conn:
        import sqlalchemy as sa

        from yuqing.state.schema import audit_log

        actions = conn.execute(
            sa.select(audit_log.c.actor).where(audit_log.c.action == "posts.export")
        ).scalars().all()
    assert "test-analyst" in actions


def test_export_rate_is_limited_per_token(world: World) -> None:
    """Each token may start EXPORT_PER_HOUR_PER_TOKEN exports an hour; the next gets a 429
    problem with Retry-After, and another token is not affected."""
    from api.routes.posts import EXPORT_PER_HOUR_PER_TOKEN
    from api.security import create_token

    token = create_token(world.engine, "export-rate", "analyst")
    c = world.client(token=token)
    for _ in range(EXPORT_PER_HOUR_PER_TOKEN):
        r = c.get("/api/v1/posts/export", params={"format": "jsonl", "lang": "ar"})
        assert r.status_code == 200, r.text
    r = c.get("/api/v1/posts/export", params={"format": "jsonl", "lang": "ar"})
    assert r.status_code == 429
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "per hour" in r.json()["detail"] and int(r.headers["retry-after"]) > 0
    other = world.client("analyst").get("/api/v1/posts/export", params={"format": "jsonl", "lang": "ar"})
    assert other.status_code == 200
