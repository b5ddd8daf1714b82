"""normalise -> match -> inbox, driven directly (no reactor) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from scrapy.exceptions import DropItem

from crawlers.context import RunContext
from crawlers.items import PostItem
from crawlers.matching import Matcher
from crawlers.pipelines import InboxPipeline, MatchPipeline, NormalisePipeline
from crawlers.state import Cursor
from tests.crawlers.site import WATCHLISTS
from yuqing.config import Settings
from yuqing.ids import canonical_url, doc_id, pseudonymise, text_hash
from yuqing.state.inbox import Inbox

KEY = b"k" * 32


def _ctx(engine: sa.Engine, **source: Any) -> RunContext:
    settings = Settings(
        sources=[{"name": "s", "kind": "feed", "url": "http://news.example/feed", "tier": "local_media", **source}],
        watchlists=WATCHLISTS,
    )
    return RunContext(settings=settings, source=settings.sources[0], engine=engine, pseudonym_key=KEY,
                      matcher=Matcher(settings.watchlists), cursor=Cursor())


def _stages(ctx: RunContext) -> tuple[NormalisePipeline, MatchPipeline, InboxPipeline]:
    crawler = SimpleNamespace(spider=SimpleNamespace(ctx=ctx))
    stages = NormalisePipeline(crawler), MatchPipeline(crawler), InboxPipeline(crawler)  # type: ignore[arg-type]
    stages[2].open_spider()
    return stages


def _run(ctx: RunContext, item: PostItem) -> Any:
    norm, match, box = _stages(ctx)
    return asyncio.run(box.process_item(match.process_item(norm.process_item(item))))


def _item(**kw: Any) -> PostItem:
    base = dict(
        url="http://news.example/a/1.html?utm_source=rss&b=2&a=1#top",
        platform_id="guid-1",
        title="国家水资源管理局回应传言",
        text="臺灣媒體報導，國家水資源管理局已就臨河水庫傳言作出澄清。",
        published_at=datetime(2024, 12, 15, 1, 30, tzinfo=timezone.utc),
        lang="zh",
        author_id="uid-42",
        author_name="新华网",
        engagement={"comments": 3},
    )
    base.update(kw)
    return PostItem(**base)


def test_post_lands_in_the_inbox_with_every_field(state_engine: sa.Engine) -> None:
    ctx = _ctx(state_engine)
    post = _run(ctx, _item())
    url = canonical_url("http://news.example/a/1.html?utm_source=rss&b=2&a=1#top")
    assert post.url == url == "http://news.example/a/1.html?a=1&b=2"
    assert post.id == doc_id(url=url)
    assert post.platform_id == "guid-1" and post.source == "s" and post.source_tier.value == "local_media"
    assert post.author.id == pseudonymise(KEY, "web", "uid-42") and post.author.id != "uid-42"
    assert post.text_hash == text_hash(post.text)
    assert post.watchlists == ["agency", "dam"] and "国家水资源管理局" in post.matched_terms
    assert post.engagement.comments == 3 and post.lang == "zh"
    assert post.fetched_at.tzinfo is not None
    claimed = Inbox(state_engine).claim("w", 10, lease=__import__("datetime").timedelta(minutes=1))
    assert [c.post.id for c in claimed] == [post.id]
    assert claimed[0].post.matched_terms == post.matched_terms
    assert ctx.counts["enqueued"] == 1 and ctx.seen(post.id)


def test_unmatched_and_duplicate_and_invalid_are_dropped_and_counted(state_engine: sa.Engine) -> None:
    ctx = _ctx(state_engine)
    _run(ctx, _item())
    with pytest.raises(DropItem):
        _run(ctx, _item(url="http://news.example/a/1.html?a=1&b=2"))  # same canonical URL
    with pytest.raises(DropItem):
        _run(ctx, _item(url="http://news.example/food", title="美食节", text="美食节今天开幕。"))
    with pytest.raises(DropItem):
        _run(ctx, _item(url="http://news.example/empty", text="   "))
    assert (ctx.counts["duplicates"], ctx.counts["unmatched"], ctx.counts["invalid"]) == (1, 1, 1)
    assert ctx.seen(doc_id(url="http://news.example/food"))  # judged: not fetched again
    assert not ctx.seen(doc_id(url="http://news.example/empty"))  # not judged: retried next run
    assert Inbox(state_engine).depth()["pending"] == 1


def test_identical_text_at_another_url_folds_into_one_cluster(state_engine: sa.Engine) -> None:
    ctx = _ctx(state_engine)
    first = _run(ctx, _item())
    copy = _run(ctx, _item(url="http://mirror.example/copy.html"))
    assert copy.cluster_id == first.id and copy.cluster_size == 2 and ctx.counts["folded"] == 1


def test_source_language_and_platform_ids(state_engine: sa.Engine) -> None:
    ctx = _ctx(state_engine, lang="zh", platform="weibo")
    post = _run(ctx, _item(lang="en", platform_id="4871"))
    assert post.lang == "zh"  # the source's word wins over the page's
    assert post.id == doc_id(platform="weibo", platform_id="4871")  # a platform post: its id, not its URL
    assert post.author.id == pseudonymise(KEY, "weibo", "uid-42")


def test_inbox_batches_commit_before_items_complete(state_engine: sa.Engine) -> None:
    """Items of one batch complete together, after one commit; a duplicate inside the batch is
    dropped; nothing is acknowledged before it is in the inbox."""
    ctx = _ctx(state_engine, options={"inbox_batch": 3, "inbox_flush": 30})
    norm, match, box = _stages(ctx)
    urls = ["http://news.example/b/1", "http://news.example/b/2", "http://news.example/b/1#again"]

    async def go() -> list[Any]:
        tasks = [asyncio.ensure_future(box.process_item(match.process_item(norm.process_item(_item(url=u)))))
                 for u in urls[:2]]
        await asyncio.sleep(0.05)
        assert not any(t.done() for t in tasks)  # batch not full, flush timer far away
        assert Inbox(state_engine).depth()["pending"] == 0  # and nothing acknowledged yet
        tasks.append(asyncio.ensure_future(box.process_item(match.process_item(norm.process_item(_item(url=urls[2]))))))
        return await asyncio.gather(*tasks, return_exceptions=True)

    done = asyncio.run(go())
    assert [type(d).__name__ for d in done] == ["Post", "Post", "DropItem"]
    assert Inbox(state_engine).depth()["pending"] == 2
    assert (ctx.counts["enqueued"], ctx.counts["duplicates"]) == (2, 1)


def test_reposts_with_small_edits_fold_and_their_captures_are_kept(state_engine: sa.Engine) -> None:
    """A rumour copied with a repost prefix, a hashtag and an emoji at other URLs: one story whose
    size counts every copy; each copy keeps the page it came from (on both state backends)."""
    from crawlers import evidence
    from crawlers.evidence import Capture

    ctx = _ctx(state_engine)
    rumour = "国家水资源管理局一直在隐瞒，临河水库大坝出现裂缝了！下游的人赶紧撤离，视频是今天早上拍的，大家快转发让更多人知道！"
    copies = [rumour, "转发：" + rumour, rumour + " #临河水库# 😱", "RT @lh: " + rumour.replace("！", "!")]
    now = datetime(2024, 12, 15, 2, 0, tzinfo=timezone.utc)
    out = []
    for i, text in enumerate(copies):
        url = f"http://site{i}.example/p/{i}.html"
        page = f"<html><body><p>{text}</p></body></html>".encode()
        out.append(_run(ctx, _item(url=url, platform_id=None, text=text,
                                   captures=[Capture(url, 200, "text/html", page, now, (url,))])))
    assert [p.cluster_id for p in out] == [out[0].id] * 4
    assert [p.cluster_size for p in out] == [1, 2, 3, 4] and ctx.counts["folded"] == 3
    caps = evidence.captures(state_engine, out[1].id)
    assert len(caps) == 1 and caps[0].body.decode() == f"<html><body><p>{copies[1]}</p></body></html>"
    assert caps[0].url == "http://site1.example/p/1.html" and caps[0].captured_at == now
    assert evidence.purge(ctx.settings, state_engine, now) == 0
    assert evidence.purge(ctx.settings, state_engine, now + timedelta(seconds=1)) == 4
    assert evidence.captures(state_engine, out[1].id) == []
