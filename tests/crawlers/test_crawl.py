"""Real crawls through Scrapy against the fixture site, each in a fresh process (Twisted's
reactor cannot restart), asserting what lands in a real SQLite inbox and in the source's health
row. The tests of this module share one state database; `crawled()` runs a source once."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crawlers.run import CrawlReport, crawl_in_subprocess
from crawlers.state import SourceStore
from tests.crawlers.site import EN_NEW_ITEM, FixtureSite
from yuqing.config import load_settings
from yuqing.ids import canonical_url, text_hash
from yuqing.records import Post
from yuqing.state.db import connect
from yuqing.state.schema import inbox

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90


class World:
    def __init__(self, site: FixtureSite, config: Path) -> None:
        self.site = site
        self.config = config
        self.settings = load_settings(config)
        self.engine = connect(self.settings.state_url)
        self.reports: dict[str, CrawlReport] = {}

    def crawl(self, source: str) -> CrawlReport:
        report = crawl_in_subprocess(self.config, source, TIMEOUT)
        assert report.exit_code == 0, report.messages
        return report

    def crawled(self, source: str) -> CrawlReport:
        """The report of this module's first crawl of `source` (run on first use)."""
        if source not in self.reports:
            self.reports[source] = self.crawl(source)
        return self.reports[source]

    def posts(self, source: str) -> dict[str, Post]:
        """Posts of `source` in the inbox, by canonical path ("/en/articles/x.html")."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(inbox.c.payload).where(inbox.c.source == source)).scalars().all()
        out = {}
        for payload in rows:
            p = Post.model_validate_json(payload)
            out[p.url.removeprefix(self.site.base)] = p  # type: ignore[union-attr]
        return out

    def url(self, path: str) -> str:
        return self.site.base + path


@pytest.fixture(scope="module")
def world(site: FixtureSite, make_config: Callable[..., Path]) -> Any:
    w = World(site, make_config())
    yield w
    w.engine.dispose()


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


# -- feeds --------------------------------------------------------------------------------
def test_english_feed_full_text_teasers_errors_and_unmatched(world: World) -> None:
    r = world.crawled("en-feed")
    assert r.ok and r.exit_code == 0
    posts = world.posts("en-feed")
    assert set(posts) == {
        "/en/articles/dam-statement.html",  # full text in the feed
        "/en/articles/flood-relief.html",  # teaser: the article was fetched
        "/en/articles/broken.html",  # article answered 500: kept with the feed's text
        "/private/memo.html",  # robots.txt forbids the page: kept with the feed's text
    }
    assert (r.fetched, r.matched, r.enqueued, r.unmatched, r.duplicates) == (5, 4, 4, 1, 0)

    dam = posts["/en/articles/dam-statement.html"]
    assert dam.url == canonical_url(world.url("/en/articles/dam-statement.html"))  # utm_source dropped
    assert dam.title == "Water administration rejects dam crack rumours"
    assert "Engineers from the administration inspected the dam" in dam.text
    assert dam.published_at == utc(2024, 12, 15, 1, 30)
    assert dam.lang == "en" and dam.source_tier.value == "national_media" and dam.platform_id == "en-dam-1"
    assert dam.author.name == "Li Wei" and dam.author.id and "example.org" not in dam.author.id
    assert dam.engagement.comments == 42
    assert dam.text_hash == text_hash(dam.text)
    assert dam.watchlists == ["agency"] and dam.matched_terms == ["National Water Resources Administration"]

    flood = posts["/en/articles/flood-relief.html"]
    assert "mobile pumping units" in flood.text  # from the article page, not the teaser
    assert flood.published_at == utc(2024, 12, 14, 23, 5)  # article:published_time, +08:00
    assert flood.matched_terms == ["NWRA"]

    assert posts["/en/articles/broken.html"].text.startswith("The National Water Resources Administration moved")
    assert f"source en-feed: {world.url('/en/articles/broken.html')}: HTTP 500 Internal Server Error; kept the feed's text" in r.messages
    assert any(m.startswith(f"source en-feed: {world.url('/private/memo.html')}: forbidden by robots.txt") for m in r.messages)
    assert r.errors == 1  # the 500; robots.txt is policy, not an error
    assert world.site.requested("/private/memo.html") == []
    assert world.site.requested("/en/articles/football.html") == []  # full text in the feed: not fetched


def test_recrawl_of_unchanged_feed_is_a_304_and_enqueues_nothing(world: World) -> None:
    world.crawled("en-feed")
    before = len(world.site.requests)
    r = world.crawl("en-feed")
    assert (r.enqueued, r.fetched, r.not_modified, r.errors) == (0, 0, 1, 0)
    assert world.site.requested("/feeds/en.xml")[-1] == 304
    assert [p for p, _ in world.site.requests[before:]] == ["/robots.txt", "/feeds/en.xml"]

    # a new entry appears: only it is fetched; the old ones are known from the cursor
    world.site.set_en_feed(["dam", "football", "flood", "broken", "private"], extra=[EN_NEW_ITEM])
    before = len(world.site.requests)
    r = world.crawl("en-feed")
    assert (r.enqueued, r.skipped_seen, r.not_modified) == (1, 5, 0)
    fetched_now = [p for p, _ in world.site.requests[before:]]
    assert fetched_now == ["/robots.txt", "/feeds/en.xml", "/en/articles/levels.html"]
    assert "/en/articles/levels.html" in world.posts("en-feed")

    health = SourceStore(world.engine).get("en-feed")
    assert health is not None
    assert (health.runs, health.errors, health.items_last_run, health.items_total) == (3, 0, 1, 5)
    assert health.last_error is None and health.last_success is not None
    assert health.cursor.stats["totals"]["unmatched"] == 1
    assert health.cursor.stats["last_run"]["skipped_seen"] == 5


def test_gbk_feed_gbk_big5_and_misdeclared_pages(world: World) -> None:
    r = world.crawled("zh-feed")
    assert r.ok and (r.enqueued, r.unmatched, r.errors) == (3, 1, 0)
    posts = world.posts("zh-feed")
    assert set(posts) == {"/zh/articles/1.html", "/zh/articles/2.html", "/zh/articles/3.html"}

    gbk = posts["/zh/articles/1.html"]  # GBK feed (XML prolog only) and GBK page (HTTP header)
    assert gbk.title == "国家水资源管理局回应水库裂缝传言"
    assert "大坝结构安全，运行正常" in gbk.text
    assert gbk.published_at == utc(2024, 12, 14, 23, 5)  # "2024年12月15日 07:05" in Shanghai
    assert gbk.lang == "zh" and gbk.source_tier.value == "local_media"
    assert gbk.watchlists == ["agency", "dam"]

    wrong = posts["/zh/articles/2.html"]  # declared UTF-8, really GB18030
    assert "已按照国家水资源管理局的部署" in wrong.text
    assert (
        f"source zh-feed: {world.url('/zh/articles/2.html')}: declared charset utf-8 does not decode the page; "
        "read it as gb18030" in r.messages
    )

    big5 = posts["/zh/articles/3.html"]  # Big5, Traditional Chinese: matches the Simplified term
    assert "國家水資源管理局" in big5.text and "国家水资源管理局" not in big5.text  # original kept
    assert "国家水资源管理局" in big5.matched_terms
    assert big5.published_at == utc(2024, 12, 15, 2, 0)


def test_big5_feed_with_an_unreadable_date(world: World) -> None:
    t0 = datetime.now(timezone.utc)
    r = world.crawled("tw-feed")
    assert r.ok and (r.enqueued, r.errors) == (2, 0), r.messages
    posts = world.posts("tw-feed")
    first, second = posts["/tw/articles/1.html"], posts["/tw/articles/2.html"]
    assert first.title == "國家水資源管理局澄清臨河水庫傳言"  # Big5 decoded, Traditional kept
    assert "国家水资源管理局" in first.matched_terms  # and matched by the Simplified term
    assert first.published_at == utc(2024, 12, 15, 1, 30)  # "上午9:30" in Taipei
    # the date cannot be read: the post is kept with the fetch time, and the report says why
    assert t0 <= second.published_at <= datetime.now(timezone.utc)
    assert second.text.startswith("水資源管理局公告")
    assert (f"source tw-feed: {world.url('/tw/articles/2.html')}: unreadable date '2024年13月45日 25:61'; "
            "using the article page or the fetch time") in r.messages


def test_arabic_atom_feed(world: World) -> None:
    r = world.crawled("ar-feed")
    assert r.ok and (r.enqueued, r.unmatched) == (1, 1)
    (post,) = world.posts("ar-feed").values()
    assert post.lang == "ar" and post.title == "الهيئة تنفي شائعات تصدع السد"
    assert "منسوب المياه لا يزال دون خط الإنذار" in post.text  # article text, the feed had a teaser
    assert post.matched_terms == ["الهيئة الوطنية للموارد المائية", "سد لينخه"]  # spelt with ه and tashkeel
    assert post.published_at == utc(2024, 12, 15, 7, 30)
    assert post.author.name == "مراسل الأخبار" and post.author.id


def test_rss1_feed(world: World) -> None:
    r = world.crawled("rdf-feed")
    assert r.ok and r.enqueued == 1
    (post,) = world.posts("rdf-feed").values()
    assert post.source_tier.value == "official" and post.author.name == "Gazette desk"
    assert post.published_at == utc(2024, 12, 14, 16, 0) and post.lang == "en"


# -- HTML ---------------------------------------------------------------------------------
def test_html_listing_with_selectors_and_pagination(world: World) -> None:
    world.crawled("zh-feed")  # carries /zh/articles/1.html too, which the listing links to
    r = world.crawled("news")
    assert r.ok and (r.enqueued, r.unmatched, r.duplicates) == (2, 1, 1)
    posts = world.posts("news")
    assert set(posts) == {"/news/a1.html", "/news/a3.html"}  # a2 is about parks
    a1 = posts["/news/a1.html"]
    assert a1.title == "管理局召开新闻发布会" and a1.author.name == "记者 王芳"
    assert a1.text == "国家水资源管理局7日召开新闻发布会，通报今年汛期水库安全情况。\n发言人表示，全国大中型水库均安全度汛。"
    assert a1.published_at == utc(2019, 8, 6, 22, 56)  # "发布时间：2019年8月7日 06:56"
    a3 = posts["/news/a3.html"]  # "3小时前": three hours before the fetch
    assert abs((a3.fetched_at - a3.published_at).total_seconds() - 3 * 3600) < 120
    assert world.site.requested("/news/list2.html") == [200]


def test_sitemap_index_to_gzipped_urlset_to_articles(world: World) -> None:
    before = {p: len(world.site.requested(p)) for p in ("/news/a1.html", "/news/a2.html", "/news/a3.html")}
    r = world.crawled("news-sitemap")
    # the same articles as the listing source: matched again, and folded as duplicates if it ran first
    assert r.ok and (r.fetched, r.matched, r.unmatched) == (3, 2, 1), r.summary()
    assert r.enqueued + r.duplicates == 2, r.summary()
    assert world.site.requested("/sitemaps/news.xml.gz") == [200]
    assert all(len(world.site.requested(p)) == n + 1 for p, n in before.items())  # each article once
    again = world.crawl("news-sitemap")  # a second run: the sitemap again, no article page again
    assert again.ok and again.enqueued == 0 and again.skipped_seen == 3, again.summary()
    assert all(len(world.site.requested(p)) == n + 1 for p, n in before.items())
    broken = world.crawled("broken-sitemap")
    assert broken.enqueued == 0 and broken.exit_code == 0
    assert any("sitemap" in m for m in broken.messages), broken.messages


def test_html_without_selectors_uses_trafilatura(world: World) -> None:
    r = world.crawled("blog")
    assert r.ok and (r.enqueued, r.unmatched) == (1, 1)
    (post,) = world.posts("blog").values()
    assert post.title == "About that dam video"
    assert "same clip, mirrored and cropped" in post.text and "All rights reserved" not in post.text
    assert post.published_at == utc(2024, 12, 15, 12, 5)  # "Posted: Sun Dec 15, 2024 7:05 am", New York
    assert world.site.requested("/about.html") == []  # not under link_pattern


# -- failures: each gives a clear message and the run goes on ------------------------------
def test_empty_feed(world: World) -> None:
    r = world.crawled("empty-feed")
    assert r.ok and r.exit_code == 0 and r.enqueued == 0 and r.errors == 0
    assert r.messages == [f"source empty-feed: {world.url('/feeds/empty.xml')}: the feed has no entries"]
    h = SourceStore(world.engine).get("empty-feed")
    assert h is not None and (h.runs, h.errors, h.items_last_run) == (1, 0, 0) and h.last_success is not None


def test_unreachable_source(world: World) -> None:
    r = world.crawled("down")
    url = world.settings.source("down").url
    assert r.exit_code == 0 and not r.ok and r.errors == 1
    assert f"source down: {url}: unreachable: connection refused" in r.messages
    h = SourceStore(world.engine).get("down")
    assert h is not None and (h.runs, h.errors) == (1, 1) and h.last_success is None
    assert h.last_error == f"source down: {url}: unreachable: connection refused"


def test_a_web_page_where_the_feed_should_be(world: World) -> None:
    r = world.crawled("not-a-feed")
    assert r.exit_code == 0 and not r.ok
    assert any(m.startswith(f"source not-a-feed: {world.url('/feeds/not-a-feed.xml')}: not an RSS/Atom feed") for m in r.messages)


def test_unknown_source_and_broken_config_cannot_run(world: World, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "crawlers.run", "--config", str(world.config), "nope", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2
    assert "no source named 'nope' (known: en-feed, zh-feed" in p.stderr
    assert json.loads(p.stdout)["ok"] is False

    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  - name: x\n    kind: ftp\n    url: http://a/\n", encoding="utf-8")
    r = crawl_in_subprocess(bad, "x", 60)
    assert r.exit_code == 2 and not r.ok
    assert any(f"{bad}:3: sources[0].kind" in m for m in r.messages)


def test_crawl_killed_at_the_time_limit_is_recorded(world: World) -> None:
    r = crawl_in_subprocess(world.config, "rdf-feed", 0.05)
    assert not r.ok and r.exit_code is not None and r.exit_code < 0
    assert r.messages[0] == "source rdf-feed: crawl killed after the 0.05s time limit"
    h = SourceStore(world.engine).get("rdf-feed")
    assert h is not None and h.last_error == r.messages[0] and h.errors >= 1


def test_crawl_writes_to_each_state_backend(site: FixtureSite, make_config: Callable[..., Path], state_url: str) -> None:
    config = make_config(state_url=state_url, name=f"config-{state_url.split(':')[0]}.yaml")
    r = crawl_in_subprocess(config, "rdf-feed", TIMEOUT)
    assert r.ok and r.enqueued == 1, r.messages
    engine = connect(state_url)
    try:
        with engine.connect() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(inbox)).scalar() == 1
        assert SourceStore(engine).get("rdf-feed") is not None
    finally:
        engine.dispose()


def test_timeout_redirect_loop_data_loss_huge_and_cut_pages(world: World) -> None:
    r = world.crawled("rough")
    assert r.ok and r.exit_code == 0
    u = world.url
    assert set(r.messages) >= {
        f"source rough: {u('/rough/slow.html')}: timed out after 1s; kept the feed's text",
        f"source rough: {u('/rough/loop-a.html')}: redirect loop: gave up after 10 redirects; kept the feed's text",
        f"source rough: {u('/rough/dataloss.html')}: connection lost before the full response arrived; kept the feed's text",
        f"source rough: {u('/rough/huge.html')}: page too large (20.6 MiB, the limit is 16.0 MiB); kept the feed's text",
    }
    assert r.errors == 4
    posts = world.posts("rough")
    assert len(posts) == 5 == r.enqueued  # nothing lost: failed pages kept with the feed's text
    assert posts["/rough/slow.html"].text == "NWRA item slow."
    cut = posts["/rough/cut.html"]  # HTML cut mid-way still yields its article text
    assert "pushed the Linhe river above its seasonal average" in cut.text and cut.title


def test_proxy_from_the_environment(world: World) -> None:
    r = crawl_in_subprocess(world.config, "via-proxy", TIMEOUT)
    assert r.exit_code == 2 and "options.proxy: environment variable YQ_TEST_PROXY is not set" in r.messages[0]
    r = crawl_in_subprocess(world.config, "via-proxy", TIMEOUT, env={"YQ_TEST_PROXY": world.site.base})
    assert r.ok and r.fetched == 1 and r.errors == 0, r.messages
    # news.invalid does not resolve: the feed (and its robots.txt) came through the proxy
    assert {"http://news.invalid/robots.txt", "http://news.invalid/feeds/rdf.xml"} <= set(world.site.proxied)


def test_a_crawl_stopped_at_the_time_limit_loses_nothing(world: World) -> None:
    """The article behind the feed stalls past the time limit: the crawl is stopped (gracefully,
    or killed if it was still starting); either way the cursor does not move past the feed, so
    the next run gets the feed again (no 304) and the entry is not lost."""
    r = crawl_in_subprocess(world.config, "stall", 6, grace=2)
    assert not r.ok and r.messages[0] in {
        "source stall: crawl stopped at the 6s time limit", "source stall: crawl killed after the 6s time limit"}
    assert r.enqueued == 0
    health = SourceStore(world.engine).get("stall")
    assert health is not None and health.errors == 1 and health.last_success is None
    assert world.url("/feeds/stall.xml") not in health.cursor.http
    world.site.pages["/rough/stall.html"].delay = 0
    r = world.crawl("stall")
    assert r.ok and r.enqueued == 1 and r.not_modified == 0
