"""Fixtures for the crawler tests: the fixture site on 127.0.0.1 and a configuration that points
sources at it, with a SQLite state database in the test's temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.crawlers.site import WATCHLISTS, FixtureSite, closed_port

# fast and deterministic against a local site: no throttling, no delay
FAST = {"autothrottle": False, "download_delay": 0, "timeout": 10, "retries": 1}


def sources(base: str) -> list[dict[str, Any]]:
    return [
        {"name": "en-feed", "kind": "feed", "url": f"{base}/feeds/en.xml", "tier": "national_media",
         "timezone": "Asia/Shanghai", "options": FAST},
        {"name": "zh-feed", "kind": "feed", "url": f"{base}/feeds/zh.xml", "tier": "local_media",
         "timezone": "Asia/Shanghai", "options": FAST},
        {"name": "tw-feed", "kind": "feed", "url": f"{base}/feeds/tw.xml", "timezone": "Asia/Taipei",
         "options": {**FAST, "follow": "never"}},
        {"name": "ar-feed", "kind": "feed", "url": f"{base}/feeds/ar.atom", "lang": "ar",
         "timezone": "Asia/Riyadh", "options": FAST},
        {"name": "rdf-feed", "kind": "feed", "url": f"{base}/feeds/rdf.xml", "tier": "official", "options": FAST},
        {"name": "empty-feed", "kind": "feed", "url": f"{base}/feeds/empty.xml", "options": FAST},
        {"name": "not-a-feed", "kind": "feed", "url": f"{base}/feeds/not-a-feed.xml", "options": FAST},
        {"name": "news", "kind": "html", "url": f"{base}/news/list.html", "timezone": "Asia/Shanghai",
         "selectors": {"link": "ul.news a.title", "next": "a.next", "title": "h1.headline",
                       "text": "div.content", "date": "span.date::text", "author": "span.author::text"},
         "max_pages": 5, "options": FAST},
        {"name": "news-sitemap", "kind": "html", "url": f"{base}/sitemap.xml", "timezone": "Asia/Shanghai",
         "selectors": {"title": "h1.headline", "text": "div.content", "date": "span.date::text",
                       "author": "span.author::text"}, "options": FAST},
        {"name": "broken-sitemap", "kind": "html", "url": f"{base}/sitemaps/broken.xml", "options": FAST},
        {"name": "blog", "kind": "html", "url": f"{base}/blog/index.html", "timezone": "America/New_York",
         "lang": "en", "selectors": {"date": "p.meta::text"}, "options": {**FAST, "link_pattern": r"/blog/posts/"}},
        {"name": "rough", "kind": "feed", "url": f"{base}/feeds/rough.xml",
         "options": {**FAST, "timeout": 1, "retries": 0, "follow": "always"}},
        # forums, social APIs, Telegram (kind "html" + a preset until the config names these kinds)
        {"name": "phpbb", "kind": "html", "url": f"{base}/phpbb/viewforum.php?f=2", "platform": "forum",
         "timezone": "Asia/Shanghai", "max_pages": 5, "options": {**FAST, "preset": "phpbb"}},
        {"name": "discuz", "kind": "html", "url": f"{base}/discuz/forum.php?mod=viewthread&tid=88",
         "platform": "forum", "timezone": "Asia/Shanghai", "options": {**FAST, "preset": "discuz"}},
        {"name": "discourse", "kind": "html", "url": f"{base}/latest.json", "platform": "discourse",
         "options": {**FAST, "preset": "discourse"}},
        {"name": "mastodon", "kind": "html", "url": f"{base}/api/v2/search?q=NWRA&type=statuses",
         "platform": "mastodon", "options": {**FAST, "preset": "mastodon",
                                             "headers": {"Authorization": "Bearer ${YQ_TEST_MASTODON_TOKEN}"}}},
        {"name": "reddit", "kind": "html", "url": f"{base}/search.json?q=NWRA&sort=new", "platform": "reddit",
         "options": {**FAST, "preset": "reddit", "base_url": base}},
        {"name": "weibo", "kind": "html", "url": f"{base}/api/container/getIndex?containerid=100103type%3D1%26q%3D水管局",
         "platform": "weibo", "timezone": "Asia/Shanghai", "lang": "zh", "options": {**FAST, "preset": "weibo"}},
        {"name": "telegram", "kind": "html", "url": f"{base}/s/water_news_ar", "platform": "telegram", "lang": "ar",
         "max_pages": 3, "options": {**FAST, "preset": "telegram"}},
        # a host that does not exist, reachable only through the proxy (the fixture site)
        {"name": "via-proxy", "kind": "feed", "url": "http://news.invalid/feeds/rdf.xml", "tier": "official",
         "options": {**FAST, "proxy": "${YQ_TEST_PROXY}"}},
        {"name": "stall", "kind": "feed", "url": f"{base}/feeds/stall.xml",
         "options": {**FAST, "timeout": 60, "retries": 0, "follow": "always"}},
        {"name": "down", "kind": "feed", "url": f"http://127.0.0.1:{closed_port()}/feed.xml", "options": FAST},
    ]


@pytest.fixture(scope="module")
def site() -> Iterator[FixtureSite]:
    s = FixtureSite().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def make_config(site: FixtureSite, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Write a configuration for the fixture site; returns its path. One state database per
    module (the tests of a module share it, in order), unless `state_url` is given."""
    root = tmp_path_factory.mktemp("crawl")

    def make(state_url: str | None = None, name: str = "config.yaml", **extra: Any) -> Path:
        cfg = {
            "agency": "National Water Resources Administration",
            "timezone": "Asia/Shanghai",
            "data_dir": str(root / "data"),
            "state": {"url": state_url or f"sqlite:///{root / 'state.db'}"},
            "privacy": {"pseudonym_key": "test-key-0123456789abcdef"},
            "sources": sources(site.base),
            "watchlists": WATCHLISTS,
            **extra,
        }
        path = root / name
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return path

    return make
