"""Forums (phpBB over three pages, Discuz!, Discourse JSON), social JSON APIs (Mastodon, Reddit,
Weibo with comments) and a Telegram channel preview: real crawls in fresh processes against the
fixture site, each reply its own post linked to its thread, and incremental re-crawls."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crawlers.run import CrawlReport, crawl_in_subprocess
from tests.crawlers.site import FixtureSite, Page
from tests.crawlers.site_social import PHPBB_POSTS, _phpbb_page, _phpbb_post
from yuqing.config import load_settings
from yuqing.ids import doc_id
from yuqing.records import Post
from yuqing.state.db import connect
from yuqing.state.schema import inbox

pytestmark = pytest.mark.slow
TOKEN = {"YQ_TEST_MASTODON_TOKEN": "test-token"}


class World:
    def __init__(self, site: FixtureSite, config: Path) -> None:
        self.site = site
        self.config = config
        self.engine = connect(load_settings(config).state_url)

    def crawl(self, source: str, env: dict[str, str] | None = None) -> tuple[CrawlReport, list[str]]:
        """The report and the requests (path?query) the crawl made."""
        before = len(self.site.full_requests)
        report = crawl_in_subprocess(self.config, source, 90, env=env)
        assert report.exit_code == 0, report.messages
        return report, self.site.full_requests[before:]

    def posts(self, source: str) -> list[Post]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(inbox.c.payload).where(inbox.c.source == source).order_by(inbox.c.id)).scalars()
            return [Post.model_validate_json(r) for r in rows]


@pytest.fixture(scope="module")
def world(site: FixtureSite, make_config: Callable[..., Path]) -> Any:
    w = World(site, make_config(name="social.yaml", state_url=None))
    yield w
    w.engine.dispose()


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


def test_phpbb_thread_over_three_pages_then_resume_on_the_last_page(world: World) -> None:
    r, reqs = world.crawl("phpbb")
    assert r.ok and (r.enqueued, r.unmatched) == (8, 1)  # the fishing thread matches nothing
    assert "/phpbb/viewtopic.php?t=77&start=6" in reqs
    posts = {p.platform_id: p for p in world.posts("phpbb")}
    assert list(posts) == [str(p[0]) for p in PHPBB_POSTS]
    first = posts["1001"]
    assert first.url == world.site.base + "/phpbb/viewtopic.php?p=1001"
    assert first.title == "Is the Linhe dam really cracked?" and first.author.name == "riverwatcher"
    assert first.published_at == utc(2024, 12, 15, 7, 5) and first.thread_id == first.id and first.reply_to is None
    assert all(p.thread_id == first.id for p in posts.values())
    assert all(p.reply_to == first.id for pid, p in posts.items() if pid != "1001")
    # each reply keeps its place in the thread, across the three pages
    assert [p.position for p in posts.values()] == list(range(1, len(posts) + 1))
    # the same profile (u=52) gives the same pseudonym, and it is not the profile id
    assert posts["1004"].author.id == first.author.id != posts["1002"].author.id
    # page 3 is phpBB 3.0 markup with no <time>: "Sun Dec 15, 2024 6:15 pm" in the board's zone
    assert posts["1007"].published_at == utc(2024, 12, 15, 10, 15)

    # unchanged: the board answers 304, nothing else is fetched
    r, reqs = world.crawl("phpbb")
    assert (r.enqueued, r.not_modified) == (0, 1) and reqs == ["/robots.txt", "/phpbb/viewforum.php?f=2"]

    # a new reply on the last page (and the board page changes): only the last pages are read
    board = world.site.pages["/phpbb/viewforum.php"]
    world.site.pages["/phpbb/viewforum.php"] = Page(board.body.replace(b"</ul>", b"<li>new</li></ul>"))
    new = _phpbb_post(1009, "hydro_eng", 54, "Re: Is the Linhe dam really cracked?", "Thanks all, closing.",
                      "2024-12-15T11:00:00+00:00", "Sun Dec 15, 2024 11:00 am")
    last = [_phpbb_post(*a) for a in PHPBB_POSTS[6:8]] + [new]
    world.site.pages["/phpbb/viewtopic.php?t=77&start=6"] = Page(
        _phpbb_page(last, "./viewtopic.php?t=77&start=3", None).encode())
    r, reqs = world.crawl("phpbb")
    assert r.enqueued == 1 and r.skipped_seen == 2
    assert sorted(reqs[2:]) == ["/phpbb/viewtopic.php?t=77&start=6", "/phpbb/viewtopic.php?t=78"]
    reply = world.posts("phpbb")[-1]
    assert reply.platform_id == "1009" and reply.thread_id == first.id
    assert reply.watchlists == ["agency", "dam"]  # "closing." names nothing: it joins its thread's story


def test_discuz_thread_replies_join_the_thread(world: World) -> None:
    r, _ = world.crawl("discuz")
    assert r.ok and r.enqueued == 3
    op, reply, lurker = world.posts("discuz")
    assert op.title == "水管局到底回应了没有？" and op.author.name == "临河老张"
    assert op.published_at == utc(2024, 12, 14, 23, 5, 12)  # the title of "3 小时前"
    assert reply.published_at == utc(2024, 12, 15, 0, 30)  # "发表于 2024-12-15 08:30", Shanghai
    assert op.url.endswith("/discuz/forum.php?goto=findpost&mod=redirect&pid=5001")  # type: ignore[union-attr]
    assert lurker.text == "坐等后续" and lurker.watchlists == op.watchlists and lurker.matched_terms == []
    assert reply.thread_id == op.id == lurker.reply_to


def test_discourse_topic_with_a_chunk_and_incremental_rerun(world: World) -> None:
    r, reqs = world.crawl("discourse")
    assert r.ok and r.enqueued == 3
    assert "/t/123/posts.json?post_ids%5B%5D=9003" in reqs
    p1, p2, p3 = world.posts("discourse")
    assert p1.url == world.site.base + "/t/linhe-dam/123/1" and p1.title == "NWRA on the Linhe dam"
    assert (p1.engagement.likes, p1.engagement.views, p1.engagement.comments) == (5, 39, 1)
    assert p3.reply_to == p2.id and p2.reply_to == p1.id and p3.thread_id == p1.id
    assert p3.author.name == "skeptic" and p2.author.name == "Li Engineer"

    r, reqs = world.crawl("discourse")
    assert r.enqueued == 0 and r.skipped_seen == 2
    assert not any(q.startswith("/t/123/posts.json") for q in reqs)  # post 3 is known: not fetched


def test_mastodon_token_from_the_environment_and_since_id(world: World) -> None:
    r, reqs = world.crawl("mastodon")  # no token in the environment: fails, naming it
    assert not r.ok and r.enqueued == 0 and reqs == []
    assert r.messages == ["source mastodon: header Authorization: environment variable YQ_TEST_MASTODON_TOKEN is not set"]

    r, reqs = world.crawl("mastodon", env=TOKEN)
    assert r.ok and (r.enqueued, r.unmatched) == (1, 1)
    (post,) = world.posts("mastodon")
    assert post.url == "https://social.example/@linhe_news/113650000000000002"
    assert post.platform_id == "127.0.0.1:113650000000000002"  # ids are per instance
    assert post.id == doc_id(platform="mastodon", platform_id="127.0.0.1:113650000000000002")
    assert post.text == "The #NWRA says the Linhe dam video is old."
    assert (post.engagement.likes, post.engagement.reposts, post.engagement.comments) == (12, 30, 4)
    assert post.author.followers == 2300 and post.lang == "en"

    r, reqs = world.crawl("mastodon", env=TOKEN)
    assert r.enqueued == 0 and "since_id=113650000000000002" in reqs[1]


def test_reddit_search(world: World) -> None:
    r, _ = world.crawl("reddit")
    assert r.ok and (r.enqueued, r.unmatched) == (1, 1)
    (post,) = world.posts("reddit")
    assert post.url == world.site.base + "/r/china/comments/abc1/nwra_denies_dam_crack/"
    assert post.text == post.title == "NWRA denies Linhe dam crack rumours"  # a link post: its title
    assert post.published_at == utc(2024, 12, 15, 9, 0)  # created_utc 1734253200
    assert (post.engagement.likes, post.engagement.comments) == (321, 45)


def test_weibo_search_posts_reposts_and_comments(world: World) -> None:
    r, reqs = world.crawl("weibo")
    assert r.ok and r.enqueued == 4, r.messages
    assert any(q.startswith("/comments/hotflow?id=5112233445566") for q in reqs)
    by = {p.platform_id: p for p in world.posts("weibo")}
    original = by["5112233445566"]
    assert original.url == "https://m.weibo.cn/detail/5112233445566"
    assert original.published_at == utc(2024, 12, 14, 23, 5)  # "Sun Dec 15 07:05:00 +0800 2024"
    assert original.author.verified is True and original.author.followers == 1500000
    assert (original.engagement.reposts, original.engagement.likes) == (880, 3400)
    assert "<a" not in original.text and original.text.startswith("国家水资源管理局回应")
    repost = by["5112233445567"]  # "转发微博": joins the story of what it shares
    assert repost.repost_of == original.id and repost.watchlists == original.watchlists
    for cid in ("5112233440001", "5112233440002"):
        assert by[cid].reply_to == original.id and by[cid].thread_id == original.id
    assert by["5112233440001"].engagement.likes == 56


def test_telegram_channel_preview_two_pages(world: World) -> None:
    r, reqs = world.crawl("telegram")
    assert r.ok and (r.enqueued, r.unmatched) == (3, 1)
    assert reqs[-1] == "/s/water_news_ar?before=101"
    by = {p.platform_id: p for p in world.posts("telegram")}
    m101 = by["water_news_ar/101"]
    assert m101.id == doc_id(platform="telegram", platform_id="water_news_ar/101")
    assert m101.engagement.views == 1200 and m101.published_at == utc(2024, 12, 15, 7, 30) and m101.lang == "ar"
    assert m101.text == "نفت الهيئة الوطنية للموارد المائية\nشائعات تصدع سد لينخه."
    m102 = by["water_news_ar/102"]
    assert m102.reply_to == m101.id and m102.text == "بيان الهيئة الكامل حول سد لينخه"  # not the quoted reply
    assert by["water_news_ar/99"].repost_of == doc_id(platform="telegram", platform_id="official_nwra/55")
