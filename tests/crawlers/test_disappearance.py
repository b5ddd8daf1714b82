"""Disappearance without a page of its own, reappearance and soft 404s, through real crawls of
the fixture site (fresh processes, one SQLite state database for the module): a forum reply,
a Telegram message, Discourse posts and a Reddit post are found gone from the listings they
were seen in, only where the listing provably covers them; news articles are found gone when
their URL redirects to the listing or their page no longer holds their text, and not when the
article was merely edited; a post that comes back is un-marked. The rules themselves are also
tested on their own (`crawlers.disappearance`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from crawlers import evidence
from crawlers.disappearance import (
    Listing,
    due_containers,
    json_gone_reason,
    prune,
    redirected_away,
    remember,
    text_replaced,
    vanished,
)
from crawlers.run import CrawlReport, crawl_in_subprocess
from tests.crawlers.conftest import FAST, sources
from tests.crawlers.site import EN_FEED_ITEMS, FixtureSite, Page, _html, _news
from tests.crawlers.site_social import PHPBB_POSTS, _j, _phpbb_page, _phpbb_post, _tg_message, telegram_pages
from crawlers.spiders.api import ApiSpider
from yuqing.config import ConfigError, SourceConfig, load_settings
from yuqing.ids import doc_id
from yuqing.records import Post
from yuqing.state.db import connect
from yuqing.state.schema import inbox

RECHECK = {**FAST, "recheck_after": 0}  # re-check on every run


class World:
    def __init__(self, site: FixtureSite, config: Path) -> None:
        self.site = site
        self.config = config
        self.engine = connect(load_settings(config).state_url)

    def crawl(self, source: str) -> CrawlReport:
        r = crawl_in_subprocess(self.config, source, 90)
        assert r.exit_code == 0 and r.ok, r.messages
        return r

    def posts(self, source: str) -> dict[str, Post]:
        """platform id (or URL path) -> post, as the inbox holds it now"""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(inbox.c.payload).where(inbox.c.source == source)).scalars()
            posts = [Post.model_validate_json(r) for r in rows]
        return {p.platform_id or (p.url or "").removeprefix(self.site.base): p for p in posts}

    @contextmanager
    def changed(self, pages: dict[str, Page | None]) -> Iterator[None]:
        """The site with some pages replaced (None: removed), restored afterwards."""
        saved = dict(self.site.pages)
        for path, page in pages.items():
            if page is None:
                self.site.pages.pop(path, None)
            else:
                self.site.pages[path] = page
        try:
            yield
        finally:
            self.site.pages.clear()
            self.site.pages.update(saved)


@pytest.fixture(scope="module")
def world(site: FixtureSite, make_config: Callable[..., Path]) -> Any:
    srcs = sources(site.base)
    for s in srcs:
        if s["name"] in ("phpbb", "telegram", "news", "en-feed", "discourse"):
            s["options"] = {**s["options"], **RECHECK}
    # a subreddit's newest-first timeline: a listing in a fixed order
    # a Mastodon tag timeline, its posts re-checked through the preset's status endpoint
    srcs.append({"name": "mastodon-tag", "kind": "html", "url": f"{site.base}/api/v1/timelines/tag/NWRA",
                 "platform": "mastodon", "options": {**RECHECK, "preset": "mastodon"}})
    srcs.append({"name": "reddit-new", "kind": "html", "url": f"{site.base}/r/linhe/new.json", "platform": "reddit",
                 "options": {**FAST, "preset": "reddit", "base_url": site.base, "listing_ordered": True}})
    w = World(site, make_config(name="disappearance.yaml", sources=srcs))
    yield w
    w.engine.dispose()


pytestmark = pytest.mark.slow


def test_a_forum_reply_deleted_from_an_earlier_thread_page(world: World) -> None:
    r = world.crawl("phpbb")
    assert r.enqueued == 8
    posts = world.posts("phpbb")
    # 1005 is deleted: phpBB shifts the later posts, 1007 moves up from page 3 to page 2
    p = {a[0]: _phpbb_post(*a) for a in PHPBB_POSTS}
    page2 = _phpbb_page([p[1004], p[1006], p[1007]], "./viewtopic.php?t=77", "./viewtopic.php?t=77&start=6")
    page3 = _phpbb_page([p[1008]], "./viewtopic.php?t=77&start=3", None)
    with world.changed({"/phpbb/viewtopic.php?t=77&start=3": Page(page2.encode()),
                        "/phpbb/viewtopic.php?t=77&start=6": Page(page3.encode())}):
        r = world.crawl("phpbb")
    # the board is unchanged (304), so only the re-checks of the thread pages look again
    assert (r.not_modified, r.rechecked, r.disappeared, r.enqueued, r.errors) == (1, 4, 1, 0, 0), r.messages
    gone = evidence.disappeared(world.engine, "phpbb")
    assert set(gone) == {posts["1005"].id}  # not 1007: it left page 3 without a neighbour on both sides
    assert world.posts("phpbb")["1005"].disappeared_at == gone[posts["1005"].id]
    assert any("no longer listed in" in m and "viewtopic.php?t=77&start=3" in m for m in r.messages)


def test_telegram_messages_that_scroll_off_are_not_gone_a_deleted_one_is_and_comes_back(world: World) -> None:
    r = world.crawl("telegram")
    assert r.enqueued == 3
    ch = "water_news_ar"
    base = telegram_pages()[f"/s/{ch}"].body.decode()
    newer = "".join(_tg_message(ch, n, "2024-12-15T09:00:00+00:00", f"خبر رقم {n}", "10") for n in (104, 105, 106))
    start = base.index('<div class="tgme_widget_message_wrap')
    end = base.index("</section>")
    # three newer messages: 99-103 scroll out of the preview (no "more" link): nothing is gone
    window = base[:start].replace(f'href="/s/{ch}?before=101"', "") + newer + base[end:]
    with world.changed({f"/s/{ch}": Page(window.encode())}):
        r = world.crawl("telegram")
    assert (r.disappeared, r.errors) == (0, 0), r.messages
    # 102 deleted: 101 and 103 are still shown, so its id is inside the page's range
    wrap = '<div class="tgme_widget_message_wrap'
    without = wrap.join(part for part in base.split(wrap) if f'data-post="{ch}/102"' not in part)
    assert 'data-post="water_news_ar/102"' not in without and 'data-post="water_news_ar/101"' in without
    with world.changed({f"/s/{ch}": Page(without.encode())}):
        r = world.crawl("telegram")
    m102 = doc_id(platform="telegram", platform_id=f"{ch}/102")
    assert r.disappeared == 1 and set(evidence.disappeared(world.engine, "telegram")) == {m102}, r.messages
    assert world.posts("telegram")[f"{ch}/102"].disappeared_at is not None
    # shown again (an edit war, a mistaken report): un-marked, re-queued without the time
    r = world.crawl("telegram")
    assert (r.disappeared, r.reappeared) == (0, 1), r.messages
    assert evidence.disappeared(world.engine, "telegram") == {}
    assert world.posts("telegram")[f"{ch}/102"].disappeared_at is None


def test_discourse_posts_gone_from_the_stream_or_marked_deleted(world: World) -> None:
    r = world.crawl("discourse")
    assert r.enqueued == 3
    topic = json.loads(world.site.pages["/t/linhe-dam/123.json"].body)
    p1, p2 = topic["post_stream"]["posts"]
    # the topic left the topic list, and staff deleted post 3: the topic's re-check sees it
    topic["post_stream"] = {"posts": [p1, p2], "stream": [9001, 9002]}
    with world.changed({"/latest.json": _j({"topic_list": {"topics": []}}), "/t/linhe-dam/123.json": _j(topic)}):
        r = world.crawl("discourse")
    posts = world.posts("discourse")
    assert (r.rechecked, r.disappeared, r.enqueued, r.errors) == (1, 1, 0, 0), r.messages
    assert set(evidence.disappeared(world.engine, "discourse")) == {posts["9003"].id}
    # post 2 withdrawn by its author: still in the stream, with Discourse's marker
    p2 = {**p2, "cooked": "<p>(post withdrawn by author, will be automatically deleted in 24 hours unless flagged)</p>",
          "user_deleted": True}
    topic["post_stream"] = {"posts": [p1, p2], "stream": [9001, 9002]}
    with world.changed({"/t/linhe-dam/123.json": _j(topic)}):
        r = world.crawl("discourse")
    posts = world.posts("discourse")
    assert (r.disappeared, r.enqueued, r.errors) == (1, 0, 0), r.messages
    assert set(evidence.disappeared(world.engine, "discourse")) == {posts["9002"].id, posts["9003"].id}
    assert posts["9002"].text == "Yes, they published inspection photos."  # the withdrawn text is not taken
    assert posts["9001"].disappeared_at is None


def test_a_reddit_post_the_platform_marks_removed(world: World) -> None:
    r = world.crawl("reddit")
    assert r.enqueued == 1
    data = json.loads(world.site.pages["/search.json"].body)
    removed = data["data"]["children"][0]["data"]
    removed.update({"removed_by_category": "deleted", "selftext": "[deleted]", "author": "[deleted]"})
    with world.changed({"/search.json": _j(data)}):
        r = world.crawl("reddit")
    assert (r.disappeared, r.enqueued) == (1, 0), r.messages
    assert set(evidence.disappeared(world.engine, "reddit")) == {world.posts("reddit")["t3_abc1"].id}


def _reddit(*names: str) -> Page:
    children = [{"kind": "t3", "data": {"name": n, "permalink": f"/r/linhe/comments/{n}/", "title": f"NWRA update {n}",
                                        "selftext": f"The NWRA posted update {n} about the Linhe dam.",
                                        "created_utc": 1734253200.0, "author": "u", "ups": 1, "num_comments": 0}}
                for n in names]
    return _j({"data": {"after": None, "children": children}})


def test_an_ordered_api_timeline_gap_is_a_deletion_a_moved_window_is_not(world: World) -> None:
    with world.changed({"/r/linhe/new.json": _reddit("t3_n3", "t3_n2", "t3_n1")}):
        assert world.crawl("reddit-new").enqueued == 3
    with world.changed({"/r/linhe/new.json": _reddit("t3_n4", "t3_n3", "t3_n1")}):
        r = world.crawl("reddit-new")
    assert (r.enqueued, r.disappeared) == (1, 1), r.messages
    with world.changed({"/r/linhe/new.json": _reddit("t3_n6", "t3_n5", "t3_n4")}):  # n3, n1 scrolled off
        r = world.crawl("reddit-new")
    assert (r.enqueued, r.disappeared) == (2, 0), r.messages
    assert set(evidence.disappeared(world.engine, "reddit-new")) == {world.posts("reddit-new")["t3_n2"].id}


def test_soft_404s_redirect_to_the_listing_and_a_page_without_the_post(world: World) -> None:
    r = world.crawl("news")
    assert r.enqueued == 3
    posts = world.posts("news")
    a1, a3, zh1 = posts["/news/a1.html"], posts["/news/a3.html"], posts["/zh/articles/1.html"]
    a3_text = "水资源管理局部署今冬明春城乡供水保障工作，要求各地做好管网防冻。"
    edited = _news("水管局部署冬季供水", "3小时前", "记者 赵强", [a3_text, "（本文已更新：补充了各地联系电话。）"])
    # a1 now redirects to the news listing; a3 was edited (still the post); zh1 unchanged
    with world.changed({"/news/a1.html": Page(b"", location="/news/list.html"),
                        "/news/a3.html": Page(edited.encode())}):
        r = world.crawl("news")
    assert (r.rechecked, r.disappeared, r.errors) == (3, 1, 0), r.messages
    assert set(evidence.disappeared(world.engine, "news")) == {a1.id}
    assert f"source news: {world.site.base}/news/a1.html: the post is gone (its URL now redirects to " \
           f"{world.site.base}/news/list.html); recorded as disappeared" in r.messages

    # a3 now says it was removed (HTTP 200), zh1 has no article text left; a1 is back
    notice = _news("页面不存在", "", "", ["抱歉，您访问的文章已被删除或不存在。"])
    with world.changed({"/news/a3.html": Page(notice.encode()),
                        "/zh/articles/1.html": Page(_html("临河日报", "", lang="zh-CN").encode())}):
        r = world.crawl("news")
    assert (r.rechecked, r.disappeared, r.reappeared, r.errors) == (3, 2, 1, 0), r.messages
    assert set(evidence.disappeared(world.engine, "news")) == {a3.id, zh1.id}
    assert any("the page no longer holds the post's text" in m for m in r.messages)
    assert world.posts("news")["/news/a1.html"].disappeared_at is None

    # all three pages lose their text at once: a layout change, not three deletions
    blank = _news("新闻", "", "", ["欢迎访问临河日报"])
    with world.changed({p: Page(blank.encode()) for p in ("/news/a1.html", "/news/a3.html", "/zh/articles/1.html")}):
        r = world.crawl("news")
    assert (r.rechecked, r.disappeared, r.reappeared) == (3, 0, 0), r.messages
    assert any("the site's layout probably changed" in m for m in r.messages)
    assert set(evidence.disappeared(world.engine, "news")) == {a3.id, zh1.id}


def test_a_page_that_never_held_the_post_text_is_not_gone(world: World) -> None:
    # a feed entry whose page has no article text: kept with the feed's text, its page captured
    photo = ("<item><title>NWRA photo of the day</title><link>{base}/en/photo.html</link><guid>en-photo</guid>"
             "<description>NWRA photo: the Linhe dam at dawn.</description></item>").format(base=world.site.base)
    page = Page(_html("Photo", "<figure><img src='/dam.jpg' alt=''></figure>", lang="en").encode())
    world.site.set_en_feed(list(EN_FEED_ITEMS), extra=[photo])
    try:
        with world.changed({"/en/photo.html": page}):
            r = world.crawl("en-feed")
            (post,) = [p for k, p in world.posts("en-feed").items() if k.endswith("en-photo")]  # guid made absolute
            assert post.text == "NWRA photo: the Linhe dam at dawn."
            r = world.crawl("en-feed")  # unchanged: the feed answers 304, the re-checks look again
    finally:
        world.site.set_en_feed(list(EN_FEED_ITEMS))
    assert (r.not_modified, r.rechecked, r.disappeared) == (1, 2, 0), r.messages  # flood-relief and the photo


def test_a_deleted_thread_takes_its_known_posts_with_it_a_failing_one_does_not(world: World) -> None:
    """Runs after the first test: the thread t=77 is known page by page (1005 marked gone)."""
    t77 = ["/phpbb/viewtopic.php?t=77", "/phpbb/viewtopic.php?t=77&start=3", "/phpbb/viewtopic.php?t=77&start=6"]
    # the server fails on the thread's pages (5xx): not evidence, nothing marked
    with world.changed({p: Page(b"oops", "text/plain", status=500) for p in t77}):
        r = world.crawl("phpbb")
    assert (r.rechecked, r.disappeared) == (1, 0), r.messages  # only t=78 answered
    assert any("re-check failed" in m and "500" in m for m in r.messages), r.messages
    assert set(evidence.disappeared(world.engine, "phpbb")) == {world.posts("phpbb")["1005"].id}

    # the thread is deleted: its first page redirects to the board, the others answer 404;
    # the board changed (no 304), so the normal run's resume request for its last page 404s too
    board = world.site.pages["/phpbb/viewforum.php"].body.replace(b"Fishing season", b"Fishing season opens")
    with world.changed({t77[0]: Page(b"", location="./viewforum.php?f=2"), t77[1]: None, t77[2]: None,
                        "/phpbb/viewforum.php": Page(board)}):
        r = world.crawl("phpbb")
    posts = world.posts("phpbb")
    assert (r.disappeared, r.errors, r.enqueued) == (7, 0, 0), r.messages
    assert set(evidence.disappeared(world.engine, "phpbb")) == {posts[str(i)].id for i in range(1001, 1009)}
    assert all(posts[str(i)].disappeared_at is not None for i in range(1001, 1009))
    assert any("the thread is gone (it now redirects to" in m for m in r.messages), r.messages
    assert any("the thread is gone (HTTP 404): its 3 known posts with it" in m for m in r.messages), r.messages

    # the thread is back (restored by a moderator): its posts are un-marked, 1005 with them
    r = world.crawl("phpbb")
    assert (r.disappeared, r.reappeared, r.errors) == (0, 8, 0), r.messages
    assert evidence.disappeared(world.engine, "phpbb") == {}
    assert world.posts("phpbb")["1004"].disappeared_at is None


def test_a_site_answering_404_everywhere_deletes_nothing(world: World) -> None:
    gone = {p: None for p in list(world.site.pages) if p.startswith("/phpbb/")}
    with world.changed(gone):
        r = crawl_in_subprocess(world.config, "phpbb", 90)
    assert r.exit_code == 0 and r.disappeared == 0, r.messages
    assert any("the site is probably failing" in m for m in r.messages), r.messages
    assert evidence.disappeared(world.engine, "phpbb") == {}


def _topic(tid: int, slug: str, posts: list[tuple[int, int, str]]) -> Page:
    return _j({"id": tid, "slug": slug, "title": "NWRA inspection report",
               "post_stream": {"stream": [pid for pid, _, _ in posts], "posts": [
                   {"id": pid, "post_number": n, "username": f"u{n}", "name": "", "user_id": n,
                    "created_at": "2024-12-15T10:00:00.000Z", "cooked": f"<p>{text}</p>", "reads": 3,
                    "reply_count": 0, "topic_id": tid} for pid, n, text in posts]}})


def test_a_deleted_discourse_topic_takes_its_posts_with_it(world: World) -> None:
    """Runs after the Discourse test: topic 123's last state (post 2 withdrawn) is kept as it was."""
    t123 = json.loads(world.site.pages["/t/linhe-dam/123.json"].body)
    p1, p2 = t123["post_stream"]["posts"]
    t123["post_stream"] = {"posts": [p1, {**p2, "user_deleted": True}], "stream": [9001, 9002]}
    topic = _topic(124, "nwra-report", [(9101, 1, "The NWRA report on the Linhe dam is out."),
                                        (9102, 2, "Thanks, reading the NWRA report now.")])
    listed = _j({"topic_list": {"topics": [{"id": 124, "slug": "nwra-report", "title": "NWRA inspection report"}]}})
    quiet = {"/latest.json": _j({"topic_list": {"topics": []}}), "/t/linhe-dam/123.json": _j(t123)}
    with world.changed({**quiet, "/latest.json": listed, "/t/nwra-report/124.json": topic}):
        r = world.crawl("discourse")
    assert (r.enqueued, r.disappeared) == (2, 0), r.messages
    posts = world.posts("discourse")
    ids = {posts["9101"].id, posts["9102"].id}
    before = set(evidence.disappeared(world.engine, "discourse"))
    # the topic left the list and its re-check fails (a 502): nothing concluded
    with world.changed({**quiet, "/t/nwra-report/124.json": Page(b"bad gateway", "text/plain", status=502)}):
        r = world.crawl("discourse")
    assert r.disappeared == 0 and set(evidence.disappeared(world.engine, "discourse")) == before, r.messages
    # deleted: Discourse answers its JSON error (here with 200, as some proxies rewrite it)
    error = _j({"errors": ["The requested URL or resource could not be found."], "error_type": "not_found"})
    with world.changed({**quiet, "/t/nwra-report/124.json": error}):
        r = world.crawl("discourse")
    assert (r.disappeared, r.errors) == (2, 0), r.messages
    assert set(evidence.disappeared(world.engine, "discourse")) == before | ids
    # restored: both back
    with world.changed({**quiet, "/t/nwra-report/124.json": topic}):
        r = world.crawl("discourse")
    assert (r.disappeared, r.reappeared) == (0, 2), r.messages
    assert set(evidence.disappeared(world.engine, "discourse")) == before
    # deleted again, now with a plain 404
    with world.changed({**quiet, "/t/nwra-report/124.json": Page(error.body, error.content_type, status=404)}):
        r = world.crawl("discourse")
    assert (r.disappeared, r.errors) == (2, 0), r.messages
    assert world.posts("discourse")["9102"].disappeared_at is not None


def _status(sid: str, text: str) -> dict[str, Any]:
    return {"id": sid, "uri": f"https://social.example/users/w/statuses/{sid}",
            "url": f"https://social.example/@w/{sid}", "created_at": "2024-12-15T10:00:00.000Z",
            "content": f"<p>{text}</p>", "language": "en",
            "account": {"id": "5", "acct": "w", "display_name": "W", "followers_count": 10},
            "favourites_count": 0, "reblogs_count": 0, "replies_count": 0, "in_reply_to_id": None, "reblog": None}


def test_api_posts_are_rechecked_through_their_status_endpoint(world: World) -> None:
    s1, s2, s3 = "113650000000000011", "113650000000000012", "113650000000000013"
    statuses = {s: _status(s, f"#NWRA update {i} on the Linhe dam") for i, s in enumerate((s1, s2, s3), start=1)}
    timeline = "/api/v1/timelines/tag/NWRA"
    with world.changed({timeline: _j(list(statuses.values()))}):
        r = world.crawl("mastodon-tag")
    assert r.enqueued == 3, r.messages
    posts = world.posts("mastodon-tag")
    host = "127.0.0.1"
    did = {s: posts[f"{host}:{s}"].id for s in statuses}
    # the timeline (a since_id query) shows nothing new; the status endpoints say: s1 404,
    # s2 Mastodon's error body, s3 a server error (nothing concluded)
    api = {s: f"/api/v1/statuses/{s}" for s in statuses}
    with world.changed({timeline: _j([]), api[s2]: _j({"error": "Record not found"}),
                        api[s3]: Page(b"{}", "application/json", status=503)}):
        r = world.crawl("mastodon-tag")
    assert (r.rechecked, r.disappeared, r.errors) == (2, 2, 0), r.messages
    assert set(evidence.disappeared(world.engine, "mastodon-tag")) == {did[s1], did[s2]}
    assert world.posts("mastodon-tag")[f"{host}:{s1}"].disappeared_at is not None
    assert any(f"/api/v1/statuses/{s1}: the post is gone (its API endpoint answers HTTP 404)" in m
               for m in r.messages), r.messages
    assert world.site.requested(api[s3])  # asked, failed: not evidence
    # s1 is back; s2 still gone; s3 answers its status: still there
    with world.changed({timeline: _j([]), api[s1]: _j(statuses[s1]), api[s2]: _j({"error": "Record not found"}),
                        api[s3]: _j(statuses[s3])}):
        r = world.crawl("mastodon-tag")
    assert (r.rechecked, r.disappeared, r.reappeared) == (3, 0, 1), r.messages
    assert set(evidence.disappeared(world.engine, "mastodon-tag")) == {did[s2]}
    assert world.posts("mastodon-tag")[f"{host}:{s1}"].disappeared_at is None


# -- the rules on their own --------------------------------------------------------------------
T0 = datetime(2024, 12, 15, tzinfo=timezone.utc)


def test_neighbour_rule_needs_a_survivor_on_both_sides() -> None:
    before = remember(None, Listing("page", ["a", "b", "c", "d"]), T0)
    assert vanished(before, Listing("page", ["a", "c", "d", "e"])) == ["b"]
    assert vanished(before, Listing("page", ["b", "c", "d", "e"])) == []  # a scrolled off the top
    assert vanished(before, Listing("page", ["a", "b", "c"])) == []  # d moved to the next page
    assert vanished(before, Listing("page", ["x", "y"])) == []  # another window altogether
    assert vanished(before, Listing("page", [])) == []  # an empty page says nothing
    assert vanished(before, Listing("page", ["a", "d"])) == ["b", "c"]
    assert vanished(before, Listing("page", ["d"], complete=True)) == ["a", "b", "c"]
    assert vanished(None, Listing("page", ["a"])) == []


def test_keyed_rule_covers_the_range_shown_and_accumulates() -> None:
    before = remember(None, Listing("ch", ["m10", "m11", "m12"], keys=[10, 11, 12]), T0)
    before = remember(before, Listing("ch", ["m7", "m8"], keys=[7, 8]), T0)  # an older page
    assert vanished(before, Listing("ch", ["m7", "m12"], keys=[7, 12])) == ["m8", "m10", "m11"]
    assert vanished(before, Listing("ch", ["m13", "m14"], keys=[13, 14])) == []  # all scrolled off
    assert vanished(before, Listing("ch", ["m11", "m13"], keys=[11, 13])) == ["m12"]
    after = remember(before, Listing("ch", ["m11", "m13"], keys=[11, 13]), T0, gone=["m12"])
    assert set(after["keys"]) == {"m7", "m8", "m10", "m11", "m13"}


def test_due_containers_and_pruning() -> None:
    fresh = remember(None, Listing("p1", ["a"], url="http://x/p1"), T0)
    old = {**remember(None, Listing("p0", ["a"], url="http://x/p0"), T0 - timedelta(days=9)),
           "at": (T0 - timedelta(hours=7)).isoformat()}
    keyed = remember(None, Listing("ch", ["m"], keys=[1]), T0)
    listings = {"p1": fresh, "p0": old, "ch": keyed}
    assert due_containers(listings, T0 + timedelta(hours=1), 6, 10) == [("p0", "http://x/p0")]
    assert due_containers(listings, T0 + timedelta(hours=7), 6, 1) == [("p0", "http://x/p0")]
    assert due_containers(listings, T0 + timedelta(hours=7), 6, 0) == []
    assert set(prune(listings, T0, 7)) == {"p1", "ch"}


def test_soft_404_shapes() -> None:
    # platforms' JSON error bodies and deleted markers
    assert json_gone_reason({"error": "Record not found"}) == "the API says: Record not found"
    assert json_gone_reason({"ok": 0, "msg": "抱歉，此微博已被作者删除"}) is not None
    assert json_gone_reason({"ok": 0, "msg": "请求过于频繁"}) is None  # rate limited: not gone
    assert json_gone_reason({"id": 9003, "deleted_at": "2024-12-16T00:00:00Z"}) is not None
    assert json_gone_reason({"id": 9003, "cooked": "<p>fine</p>"}) is None
    assert json_gone_reason([1, 2]) is None
    # Discourse's answer for a deleted (or never existing) topic, in any language
    assert json_gone_reason({"errors": ["The requested URL or resource could not be found."],
                             "error_type": "not_found"}) is not None
    assert json_gone_reason({"errors": ["找不到请求的 URL 或资源。"], "error_type": "not_found"}) is not None
    assert json_gone_reason({"errors": ["You are not permitted to view the requested resource."],
                             "error_type": "invalid_access"}) is None  # a login wall: not gone
    # redirects: home, the listing, a section above the post; not another page, not another site
    src = "http://n.example/news/list.html"
    assert redirected_away("http://n.example/news/2024/a1.html", "http://n.example/", src)
    assert redirected_away("http://n.example/news/2024/a1.html", "http://n.example/news/list.html", src)
    assert redirected_away("http://n.example/news/2024/a1.html", "http://n.example/news/2024/", src)
    assert not redirected_away("http://n.example/news/a1.html", "http://n.example/news/a1-updated.html", src)
    assert not redirected_away("http://n.example/news/a1.html", "https://login.example/", src)
    assert not redirected_away("http://n.example/a1.html", "http://n.example/a1.html", src)
    assert not redirected_away("http://n.example/index.php?id=5", "http://n.example/index.php?id=5&p=1", src)
    assert not redirected_away("http://n.example/news/a1.html", "https://n.example/news/a1.html", src)
    # text: an edit keeps the post, a notice or an empty page does not
    old = "国家水资源管理局7日召开新闻发布会，通报今年汛期水库安全情况。"
    assert not text_replaced(old, old + "（更新）")
    assert text_replaced(old, "抱歉，您访问的页面不存在。")
    assert text_replaced(old, "") and text_replaced(None, None)
    assert not text_replaced(None, "some text")  # nothing to compare with: only empty counts


def test_recheck_url_must_be_a_template_with_an_id() -> None:
    def source(**options: Any) -> SourceConfig:
        return SourceConfig(name="m", kind="api", url="https://social.example/api/v1/timelines/tag/x",
                            options={"preset": "mastodon", **options})

    ApiSpider.validate(source())  # the preset's own
    ApiSpider.validate(source(recheck_url="https://social.example/api/v1/statuses/{id}"))
    for bad in ("/api/v1/statuses/", 5):
        with pytest.raises(ConfigError, match=r"source 'm': options.recheck_url: expected a URL template with \{id\}"):
            ApiSpider.validate(source(recheck_url=bad))


def test_the_example_configuration_passes_each_spiders_checks() -> None:
    """config.example.yaml documents these options: its sources must pass the checks a crawl
    runs first (`validate`), not only the configuration schema."""
    from crawlers.spiders import spider_for

    settings = load_settings(Path(__file__).resolve().parents[2] / "config.example.yaml")
    kinds = set()
    for src in settings.sources:
        spider_for(src).validate(src)
        kinds.add(src.kind)
    assert {"feed", "html", "forum", "api"} <= kinds
    reddit = next(s for s in settings.sources if s.options.get("preset") == "reddit")
    assert ApiSpider.configuration(reddit)["fields"]["deleted"] == "removed_by_category"
    mastodon = next(s for s in settings.sources if s.options.get("preset") == "mastodon")
    assert ApiSpider.configuration(mastodon)["recheck_url"] == "/api/v1/statuses/{id}"
