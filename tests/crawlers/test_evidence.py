"""Evidence and disappearance through real crawls of the fixture site (fresh processes, a
SQLite state database): every matched post keeps the raw capture of its page(s), compressed and
content-addressed; a post removed from the site is found gone by the next crawl's re-check,
recorded with the crawl's time and re-queued for the index, and its capture stays."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crawlers import evidence
from crawlers.run import CrawlReport, crawl_in_subprocess
from tests.crawlers.conftest import FAST, sources
from tests.crawlers.site import FixtureSite, Page
from yuqing.config import load_settings
from yuqing.records import Post
from yuqing.state.db import connect
from yuqing.state.schema import crawled_posts, inbox

pytestmark = pytest.mark.slow


class World:
    def __init__(self, site: FixtureSite, config: Path) -> None:
        self.site = site
        self.settings = load_settings(config)
        self.config = config
        self.engine = connect(self.settings.state_url)

    def crawl(self, source: str) -> CrawlReport:
        r = crawl_in_subprocess(self.config, source, 90)
        assert r.exit_code == 0, r.messages
        return r

    def posts(self, source: str) -> dict[str, tuple[Post, str]]:
        """path -> (post, inbox status)"""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(inbox.c.payload, inbox.c.status).where(inbox.c.source == source)).all()
        out = {}
        for payload, status in rows:
            p = Post.model_validate_json(payload)
            out[p.url.removeprefix(self.site.base)] = (p, status)  # type: ignore[union-attr]
        return out


@pytest.fixture(scope="module")
def world(site: FixtureSite, make_config: Callable[..., Path]) -> Any:
    srcs = sources(site.base)
    for s in srcs:
        if s["name"] in ("news", "en-feed"):
            s["options"] = {**FAST, "recheck_after": 0}  # re-check known posts on every run
    w = World(site, make_config(name="evidence.yaml", sources=srcs))
    yield w
    w.engine.dispose()


def test_every_matched_post_keeps_its_raw_capture(world: World) -> None:
    r = world.crawl("en-feed")
    assert r.ok and r.enqueued == 4 and r.rechecked == 0
    posts = {k: p for k, (p, _) in world.posts("en-feed").items()}
    feed_body = world.site.pages["/feeds/en.xml"].body

    # full text in the feed: the feed as served is the evidence
    (cap,) = evidence.captures(world.engine, posts["/en/articles/dam-statement.html"].id)
    assert cap.body == feed_body and cap.sha256 == hashlib.sha256(feed_body).hexdigest()
    assert cap.status == 200 and cap.url == world.site.base + "/feeds/en.xml" and "rss" in (cap.content_type or "")
    # a teaser: the feed and the article page it led to
    caps = evidence.captures(world.engine, posts["/en/articles/flood-relief.html"].id)
    assert {c.body for c in caps} == {feed_body, world.site.pages["/en/articles/flood-relief.html"].body}
    # the article answered 500: kept with the feed's text; the feed and the error page it got
    caps = evidence.captures(world.engine, posts["/en/articles/broken.html"].id)
    assert sorted((c.status, c.body) for c in caps) == [(200, feed_body), (500, b"<h1>Internal Server Error</h1>")]
    # robots.txt forbade the page: nothing fetched, the feed is the evidence
    assert [c.body for c in evidence.captures(world.engine, posts["/private/memo.html"].id)] == [feed_body]
    # content-addressed: one feed capture for four posts, two article responses; compressed
    figures = evidence.stored_bytes(world.engine)
    assert figures["captures"] == 3 and figures["stored_bytes"] < figures["raw_bytes"]
    with world.engine.connect() as c:
        direct = dict(c.execute(sa.select(crawled_posts.c.url, crawled_posts.c.direct)).all())
    assert direct[world.site.base + "/en/articles/flood-relief.html"] is True  # its own page was fetched
    assert direct[world.site.base + "/en/articles/dam-statement.html"] is False  # only the feed


def test_a_removed_post_is_marked_disappeared_by_the_next_crawl_and_keeps_its_capture(world: World) -> None:
    r = world.crawl("news")
    assert r.ok and r.enqueued == 3  # a1, a3 and /zh/articles/1.html (no other source has it here)
    before = world.posts("news")
    a1, _ = before["/news/a1.html"]
    page = world.site.pages["/news/a1.html"].body
    assert [c.body for c in evidence.captures(world.engine, a1.id)] == [page]

    # the article is deleted (its link gone from the listing too)
    saved = dict(world.site.pages)
    del world.site.pages["/news/a1.html"]
    world.site.pages["/news/list.html"] = Page(saved["/news/list.html"].body.replace(
        '<li><a class="title" href="/news/a1.html">管理局召开新闻发布会</a></li>'.encode(), b""))
    try:
        t0 = datetime.now(timezone.utc)
        r = world.crawl("news")
        t1 = datetime.now(timezone.utc)
        # still gone on the next run: re-checked, the first time it was found gone is kept
        r2 = world.crawl("news")
        assert (r2.rechecked, r2.disappeared, r2.reappeared, r2.errors) == (3, 0, 0, 0), r2.messages
        with world.engine.connect() as c:  # checked again (not due again at once), not "seen"
            row = c.execute(sa.select(crawled_posts).where(crawled_posts.c.doc_id == a1.id)).one()
        assert row.checked_at > t1 and row.last_seen < t0 and row.disappeared_at < t1
    finally:
        world.site.pages.clear()
        world.site.pages.update(saved)
    assert r.ok and (r.rechecked, r.disappeared, r.enqueued, r.errors) == (3, 1, 0, 0), r.messages
    assert world.site.requested("/news/a1.html")[-1] == 404
    assert f"source news: {world.site.base}/news/a1.html: the post is gone (HTTP 404); recorded as disappeared" in r.messages

    gone = evidence.disappeared(world.engine, "news")
    assert set(gone) == {a1.id} and t0 - timedelta(seconds=1) <= gone[a1.id] <= t1
    after = world.posts("news")
    post, status = after["/news/a1.html"]
    # back in the inbox with the time, so the worker re-indexes it; nothing else changed
    assert status == "pending" and post.disappeared_at == gone[a1.id]
    assert post.model_copy(update={"disappeared_at": None}) == before["/news/a1.html"][0]
    assert after["/news/a3.html"][0].disappeared_at is None
    # the capture outlives the page
    assert [c.body for c in evidence.captures(world.engine, a1.id)] == [page]

    assert evidence.disappeared(world.engine, "news") == gone

    # the page is back (restored above): the next re-check un-marks it and re-queues it
    r = world.crawl("news")
    assert (r.rechecked, r.disappeared, r.reappeared, r.enqueued) == (3, 0, 1, 0), r.messages
    assert (f"source news: {world.site.base}/news/a1.html: the post {a1.id} was marked gone and is there again; "
            "un-marked and re-queued") in r.messages
    assert evidence.disappeared(world.engine, "news") == {}
    post, status = world.posts("news")["/news/a1.html"]
    assert status == "pending" and post == before["/news/a1.html"][0]
    with world.engine.connect() as c:
        cp = c.execute(sa.select(crawled_posts).where(crawled_posts.c.doc_id == a1.id)).one()
    assert cp.disappeared_at is None and cp.checked_at > t1
    r = world.crawl("news")  # and it stays that way
    assert (r.rechecked, r.disappeared, r.reappeared) == (3, 0, 0)


def test_retention_purges_old_captures_only(world: World) -> None:
    world.crawl("en-feed")
    n = evidence.stored_bytes(world.engine)["captures"]
    assert n >= 3
    assert evidence.purge(world.settings, world.engine, datetime.now(timezone.utc) - timedelta(days=1)) == 0
    assert evidence.purge(world.settings, world.engine, datetime.now(timezone.utc) + timedelta(seconds=1)) == n
    assert evidence.stored_bytes(world.engine)["captures"] == 0
