"""RSS 1.0 / RSS 2.0 / Atom feeds, parsed by feedparser.

Article text, decided per entry (`options.follow`):

- `auto` (default): use the feed's own text (the longest of `content:encoded` / Atom content and
  the summary) when it has at least `options.min_text` characters (default 280); otherwise the
  feed only carries a teaser, so follow the entry's link and extract the main text with
  trafilatura (or the source's `selectors`).
- `always` / `never`: always follow, or never (feeds whose links point off-site or to
  paywalls).

If following fails (HTTP error, no extractable text), the entry is still kept with the feed's
text, with a warning: a post known only by its summary is better than a post lost. An entry with
no text at all is dropped and retried next run.

Dates come from the raw entry strings through `crawlers.dates` (source zone, Chinese/Arabic
formats); feedparser's own `*_parsed` values are not used because feedparser silently turns
dates it cannot read into wrong ones (e.g. "2024年12月15日 07:05" -> 2024-11-01).
Encoding is feedparser's job: it reads the HTTP charset and the XML declaration and, when they
disagree with the bytes, falls back to what decodes (reported as a warning).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import feedparser
from scrapy.http import Request, Response
from twisted.python.failure import Failure

from crawlers.extract import html_to_text, normalise_lang
from crawlers.items import PostItem
from crawlers.spiders.base import SourceSpider
from crawlers.spiders.html import extract_page
from yuqing.ids import doc_id


def _longest_text(entry: Any) -> str:
    bodies = [c.get("value", "") for c in entry.get("content", []) or []]
    bodies.append(entry.get("summary", "") or "")
    texts = [html_to_text(b) for b in bodies if b]
    return max(texts, key=len, default="")


def _int_or_none(v: Any) -> int | None:
    try:
        n = int(str(v).strip())
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


class FeedSpider(SourceSpider):
    name = "feed"

    def parse_start(self, response: Response) -> Iterator[Any]:
        ctx = self.ctx
        ctx.counts["pages"] += 1
        if self.not_modified(response):
            return
        parsed = feedparser.parse(
            response.body,
            response_headers={k.lower(): v for k, v in response.headers.to_unicode_dict().items()}
            | {"content-location": response.url},
        )
        exc = parsed.get("bozo_exception")
        if not parsed.get("entries"):
            if not parsed.get("version"):
                what = "not an RSS/Atom feed" + (f" ({type(exc).__name__}: {exc})" if exc else "")
                ctx.start_failed = True  # the source is broken (moved, replaced by a web page)
                ctx.error(response.url, what)
            else:
                ctx.warn(response.url, "the feed has no entries")
            return
        if exc is not None:
            if isinstance(exc, feedparser.CharacterEncodingOverride):
                ctx.warn(response.url, f"feed charset: {exc}")
            else:
                ctx.warn(response.url, f"malformed feed, kept what could be read ({type(exc).__name__}: {exc})")
        feed_lang = normalise_lang(parsed.feed.get("language"))
        limit = int(self.options.get("max_entries", 500))
        for entry in parsed.entries[:limit]:
            yield from self._entry(response, entry, feed_lang)

    def _entry(self, response: Response, entry: Any, feed_lang: str | None) -> Iterator[Any]:
        ctx = self.ctx
        link = entry.get("link") or (entry.get("id") if str(entry.get("id", "")).startswith("http") else None)
        if not link:
            ctx.warn(response.url, f"entry {entry.get('id') or entry.get('title')!r} has no link; skipped")
            return
        link = response.urljoin(link)
        did = doc_id(url=link)
        if ctx.seen(did):
            ctx.counts["skipped_seen"] += 1
            return
        detail = entry.get("author_detail") or {}
        content_lang = next((c.get("language") for c in entry.get("content", []) or [] if c.get("language")), None)
        raw_date = entry.get("published") or entry.get("updated") or entry.get("created")
        lang = normalise_lang(content_lang) or feed_lang
        item = PostItem(
            url=link,
            platform_id=entry.get("id") or None,
            title=html_to_text(entry.get("title")) or None,
            text=_longest_text(entry),
            published_at=self.when(raw_date, lang=lang),
            lang=lang,
            author_id=detail.get("href") or detail.get("email") or entry.get("author") or None,
            author_name=detail.get("name") or entry.get("author") or None,
            engagement={"comments": _int_or_none(entry.get("slash_comments"))},
            via="feed",
        )
        if raw_date and item["published_at"] is None:
            ctx.warn(link, f"unreadable date {raw_date!r}; using the article page or the fetch time")
        if self._follow(item["text"]):
            yield Request(
                link,
                callback=self.parse_article,
                errback=self.article_failed,
                cb_kwargs={"item": item},
                # never dropped silently by the duplicate filter (the entry rides on this request;
                # a redirect loop must end in the errback, not vanish): entries are unique by doc id
                dont_filter=True,
            )
        else:
            yield item

    def _follow(self, feed_text: str) -> bool:
        mode = str(self.options.get("follow", "auto"))
        if mode == "always":
            return True
        if mode == "never":
            return False
        return len(feed_text) < int(self.options.get("min_text", 280))

    def parse_article(self, response: Response, item: PostItem) -> Iterator[Any]:
        ctx = self.ctx
        ctx.counts["pages"] += 1
        page = extract_page(self, response)
        if page is None or len(page["text"] or "") <= len(item["text"] or ""):
            if page is None:
                ctx.warn(response.url, "no main text found on the article page; kept the feed's text")
            item["via"] = "feed" if page is not None else "fallback"
        else:
            item["text"] = page["text"]
            item["via"] = "article"
        if page is not None:
            for key in ("title", "published_at", "author_name", "author_id", "lang"):
                if not item.get(key) and page.get(key):
                    item[key] = page[key]
        yield item

    def article_failed(self, failure: Failure) -> Iterator[Any]:
        """The article page failed: report it, and keep the entry with the feed's text."""
        item: PostItem | None = failure.request.cb_kwargs.get("item") if getattr(failure, "request", None) else None
        has_text = bool(item and item.get("text"))
        self.report_failure(
            failure, "; kept the feed's text" if has_text else "; the entry has no text of its own, retried next run"
        )
        if item is not None and has_text:
            item["via"] = "fallback"
            yield item
