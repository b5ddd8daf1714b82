"""Item pipelines, in order (see `ITEM_PIPELINES` in `crawlers.settings`):

1. `NormalisePipeline` builds the shared `Post`: canonical URL and document id, text hash,
   pseudonymised author, source/platform/tier, published and fetched time in UTC, language.
2. `MatchPipeline` keeps a post only if it matches a watchlist and records which watchlists and
   terms it matched (language-aware, `crawlers.matching`). A forum reply or a comment whose
   thread / post matched is kept with that match (spiders attach it as `context_match`): "I
   agree" under a rumour about the agency is part of the story.
3. `InboxPipeline` stores the raw captures of the batch's posts (`crawlers.evidence`:
   compressed, content-addressed) and then commits the posts to the durable inbox (in small
   batches) before Scrapy counts them as scraped, so a post reported as enqueued is never lost
   and never lacks its evidence; a document id already there is a duplicate. The inbox folds
   exact and near-duplicate texts into clusters (`yuqing.state.inbox`). At the end of the run
   it records the re-checks: posts found gone get `disappeared_at` and are re-queued.

Dropped posts (unmatched, duplicate, invalid) raise `DropItem` so Scrapy's own stats and signals
see them, and are counted in the run context for the source's health figures.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem

from yuqing.config import SourceConfig
from yuqing.ids import canonical_url, doc_id, pseudonymise, text_hash
from yuqing.records import Author, Engagement, Post
from yuqing.state.inbox import Inbox

if TYPE_CHECKING:
    from crawlers.context import RunContext

log = logging.getLogger(__name__)


class _Stage:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Any:
        return cls(crawler)

    @property
    def ctx(self) -> "RunContext":
        return self.crawler.spider.ctx  # type: ignore[union-attr]


def post_doc_id(
    source: SourceConfig, *, url: str | None = None, platform_id: str | None = None, doc_key: str | None = None
) -> str:
    """The document id of a post, by one rule for spiders (to skip what the cursor has seen)
    and the normaliser: an explicit `doc_key` (posts sharing one page URL) scoped by platform;
    else a platform post by its platform id (one microblog post has many URLs); else a web page
    by its canonical URL (the same article reached from a feed and from a listing page is one
    document)."""
    if doc_key:
        return doc_id(platform=source.platform, platform_id=str(doc_key))
    if source.platform != "web" and platform_id:
        return doc_id(platform=source.platform, platform_id=str(platform_id))
    if url:
        return doc_id(url=url)
    if platform_id:
        return doc_id(platform=source.platform, platform_id=str(platform_id))
    raise ValueError("a post needs a URL or a platform id")


def build_post(item: Any, ctx: "RunContext", fetched_at: datetime | None = None) -> Post:
    """The `Post` for a spider's item. Raises ValueError (with the reason) when the item cannot
    be a post: no text, no URL nor platform id."""
    source = ctx.source
    fetched_at = fetched_at or datetime.now(timezone.utc)
    text = (item.get("text") or "").strip()
    title = (item.get("title") or "").strip() or None
    if not text:
        raise ValueError("no text could be extracted")
    url = item.get("url")
    url = canonical_url(url) if url else None
    platform_id = item.get("platform_id")
    platform_id = str(platform_id) if platform_id not in (None, "") else None
    pid = post_doc_id(source, url=url, platform_id=platform_id, doc_key=item.get("doc_key"))
    author_key = item.get("author_id") or item.get("author_name")
    author = Author(
        id=pseudonymise(ctx.pseudonym_key, source.platform, str(author_key) if author_key else None),
        name=(item.get("author_name") or None),
        followers=item.get("author_followers"),
        verified=item.get("author_verified"),
    )
    published = item.get("published_at") or fetched_at
    return Post(
        id=pid,
        platform_id=platform_id,
        url=url,
        source=source.name,
        platform=source.platform,
        source_tier=source.tier,
        author=author,
        published_at=published,
        fetched_at=fetched_at,
        lang=source.lang or item.get("lang") or None,
        title=title,
        text=text,
        engagement=Engagement(**(item.get("engagement") or {})),
        reply_to=item.get("reply_to"),
        repost_of=item.get("repost_of"),
        thread_id=item.get("thread_id"),
        position=item.get("position"),
        text_hash=text_hash(text),
    )


class NormalisePipeline(_Stage):
    def process_item(self, item: Any) -> Post:
        ctx = self.ctx
        ctx.counts["fetched"] += 1
        try:
            post = build_post(item, ctx)
        except (ValueError, ValidationError) as e:
            ctx.counts["invalid"] += 1
            reason = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            ctx.warn(item.get("url"), f"not a usable post: {reason}")
            raise DropItem(f"invalid post: {reason}", log_level="DEBUG") from None
        if post.id in ctx.was_gone:  # yielded again: it is back
            ctx.present.setdefault(post.id, post.fetched_at)
        if item.get("context_match") is not None:
            ctx.inherited[post.id] = item["context_match"]
        if item.get("captures"):
            ctx.captures[post.id] = [*ctx.captures.get(post.id, ()), *item["captures"]]
        return post


class MatchPipeline(_Stage):
    def process_item(self, post: Post) -> Post:
        ctx = self.ctx
        m = ctx.matcher.match(post.title, post.text, url=post.url, author=post.author.name, lang=post.lang)
        # a reply in a thread (a comment on a post) that matched is part of the same story even
        # when it does not name the agency: it takes the thread's watchlists, not terms it lacks
        m = ctx.matcher.merge(m, ctx.inherited.pop(post.id, None))
        if m is None:
            ctx.counts["unmatched"] += 1
            ctx.captures.pop(post.id, None)  # evidence is kept for matched posts only
            ctx.mark_seen(post.id)
            raise DropItem(f"matches no watchlist: {post.url}", log_level="DEBUG")
        ctx.counts["matched"] += 1
        return post.model_copy(update={"watchlists": m.watchlists, "matched_terms": m.terms})


class InboxPipeline(_Stage):
    """Commits posts to the inbox in small batches (one transaction per batch, not per post:
    ~10x the rate on SQLite), and completes each item only once its batch is committed, so
    Scrapy counts nothing as scraped that is not durable. A batch closes at `inbox_batch` posts
    (option, default 50) or `inbox_flush` seconds after its first post (default 0.1)."""

    def open_spider(self) -> None:
        ctx = self.ctx
        self.inbox = Inbox(ctx.engine)
        self.batch_size = max(1, int(ctx.source.options.get("inbox_batch", 50)))
        self.flush_after = float(ctx.source.options.get("inbox_flush", 0.1))
        self.pending: list[tuple[Post, asyncio.Future[Post]]] = []
        self.batch_captures: dict[str, list[Any]] = {}
        self.timer: asyncio.TimerHandle | None = None

    async def process_item(self, post: Post) -> Post:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Post] = loop.create_future()
        self.pending.append((post, fut))
        caps = self.ctx.captures.pop(post.id, None)
        if caps:
            self.batch_captures.setdefault(post.id, []).extend(caps)
        if len(self.pending) >= self.batch_size:
            self.flush()
        elif self.timer is None:
            self.timer = loop.call_later(self.flush_after, self.flush)
        return await fut

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        caps, self.batch_captures = self.batch_captures, {}
        if not batch:
            return
        ctx = self.ctx
        if caps:
            from crawlers.evidence import record

            try:
                record(ctx.engine, ctx.source.name, [(p, caps.get(p.id, ())) for p, _ in batch])
            except Exception as e:  # noqa: BLE001 - the posts still go to the inbox
                ctx.error(None, f"could not store the evidence of {len(batch)} posts: {type(e).__name__}: {e}")
        try:
            results = self.inbox.enqueue([p for p, _ in batch])
        except Exception as e:  # noqa: BLE001 - a database failure must not pass as "fetched"
            ctx.inbox_failed = True
            ctx.error(None, f"could not write {len(batch)} posts to the inbox: {type(e).__name__}: {e}")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(DropItem("inbox write failed", log_level="DEBUG"))
            return
        for (post, fut), res in zip(batch, results):
            ctx.mark_seen(post.id)
            if fut.done():  # cancelled by a shutdown: the post is committed all the same
                continue
            if not res.accepted:
                ctx.counts["duplicates"] += 1
                fut.set_exception(DropItem(f"already in the inbox: {post.url}", log_level="DEBUG"))
                continue
            ctx.counts["enqueued"] += 1
            if res.cluster_size > 1:
                ctx.counts["folded"] += 1
            fut.set_result(post.model_copy(update={"cluster_id": res.cluster_id, "cluster_size": res.cluster_size}))

    def close_spider(self) -> None:
        self.flush()
        self.record_disappearance()

    def record_disappearance(self) -> None:
        """Posts found gone (a re-check, a listing, a platform marker) get `disappeared_at`
        and are re-queued; posts marked gone before and shown again are un-marked and
        re-queued (`reappeared`). A post any page of this run showed is not gone. When every
        re-check that answered 200 (three or more) failed only on the text test, the site's
        layout changed rather than all its posts: warned about, nothing marked on that basis.
        Likewise when three or more containers were found gone and none answered with posts, or
        the source's own URL failed: the site is failing, posts gone with a container are not
        marked."""
        ctx = self.ctx
        shown = {**ctx.present, **ctx.still_there}
        gone = {d: t for d, t in ctx.gone.items() if d not in shown}
        if len(ctx.gone_by_text) >= 3 and len(ctx.gone_by_text) >= ctx.rechecked_ok:
            ctx.warn(None, f"every re-checked page ({ctx.rechecked_ok}) lost its post's text: the site's layout "
                           "probably changed (check the selectors); none recorded as disappeared on that basis")
            gone = {d: t for d, t in gone.items() if d not in ctx.gone_by_text}
        if ctx.gone_by_container and (ctx.start_failed or (ctx.containers_gone >= 3 and not ctx.containers_ok)):
            ctx.warn(None, f"{ctx.containers_gone} thread(s) found gone "
                           + ("while the source's own URL failed" if ctx.start_failed else "and none answered with posts")
                           + ": the site is probably failing, not deleting; none recorded as disappeared on that basis")
            gone = {d: t for d, t in gone.items() if d not in ctx.gone_by_container}
        back = {d: t for d, t in shown.items() if d in ctx.was_gone and d not in gone}
        if not (gone or back or ctx.still_there):
            return
        from crawlers.evidence import mark_checked, mark_disappeared, mark_reappeared

        try:
            mark_checked(ctx.engine, {d: t for d, t in ctx.still_there.items() if d not in ctx.was_gone})
            mark_checked(ctx.engine, {d: t for d, t in gone.items() if d in ctx.was_gone}, there=False)
            for d in mark_disappeared(ctx.engine, gone):
                ctx.counts["disappeared"] += 1
                url, why = ctx.gone_why.get(d, (None, "gone"))
                ctx.info(url, f"the post is gone ({why}); recorded as disappeared")
            for d in mark_reappeared(ctx.engine, back):
                ctx.counts["reappeared"] += 1
                ctx.info(ctx.was_gone.get(d), f"the post {d} was marked gone and is there again; un-marked and re-queued")
        except Exception as e:  # noqa: BLE001 - reported; the next run checks again
            ctx.error(None, f"could not record the re-checks: {type(e).__name__}: {e}")
