"""Generic HTML sources: a listing page (with pagination) leading to article pages.

Configuration (`SourceConfig`):

- `url`: the first listing page, or a sitemap (`<urlset>` or `<sitemapindex>`, plain or gzip;
  recognised by its content) whose `<loc>` entries are the article pages; `max_pages`: how many
  listing pages (or nested sitemaps) to follow at most.
- `selectors` (CSS, all optional):
  - `link`: the article links on a listing page (an `<a>` or a region containing them); without
    it, every same-site link matching `options.link_pattern` (a regex) is followed;
  - `next`: the "next page" link on a listing page;
  - `title`, `text`, `date`, `author`: fields on an article page. Any that is missing or finds
    nothing is taken from trafilatura's extraction (main text, title, author) and htmldate
    (publication date, keeping time and offset when the page has them);
  - `item`: several posts on one page (a forum thread, a comment list): each element matching it
    is one post, its fields read with the selectors above relative to the element, its id from
    `permalink` (`::attr(id)` or a link).
- `timezone`: the zone of dates written without an offset.

A selector ending in `::text` or `::attr(x)` yields strings; one selecting elements yields their
text (block elements become line breaks).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from parsel import Selector, SelectorList
from scrapy.http import Request, Response
from scrapy.linkextractors import LinkExtractor

from crawlers.extract import extract_article, find_date, html_to_text, page_lang
from crawlers.items import PostItem
from crawlers.spiders.base import SourceSpider
from crawlers.pipelines import post_doc_id
from yuqing.ids import canonical_url, doc_id


def _strings(found: SelectorList, css: str) -> list[str]:
    if "::text" in css or "::attr(" in css:
        return [s.strip() for s in found.getall() if s and s.strip()]
    return [t for t in (html_to_text(h) for h in found.getall()) if t]


def select_all(node: Selector | Response, css: str | None) -> list[str]:
    """Every string a CSS selector finds (e.g. date candidates: an attribute, then the text)."""
    return _strings(node.css(css), css) if css else []


def first(node: Selector | Response, css: str | None) -> str | None:
    """The first string a CSS selector finds: for one-valued fields (title, author, an id),
    where a selector list like `p.author a, dl a` may find the same value twice."""
    got = select_all(node, css)
    return got[0] if got else None


def select(node: Selector | Response, css: str | None, joiner: str = "\n") -> str | None:
    """The text a CSS selector finds under `node`, or None."""
    if not css:
        return None
    got = _strings(node.css(css), css)
    return joiner.join(got) if got else None


def extract_page(spider: SourceSpider, response: Response) -> dict[str, Any] | None:
    """Fields of an article page: the source's selectors first, trafilatura/htmldate for what
    they leave out. None when no text can be found."""
    sel = spider.source.selectors
    html = response.text
    out: dict[str, Any] = {
        "title": first(response, sel.get("title")),
        "text": select(response, sel.get("text")),
        "author_name": first(response, sel.get("author")),
        "lang": page_lang(html),
    }
    dates = select_all(response, sel.get("date"))  # candidates, in the order found
    if not (out["text"] and out["title"] and out["author_name"] and dates):
        art = extract_article(html, response.url)
        if art is not None:
            out["text"] = out["text"] or art.text
            out["title"] = out["title"] or art.title
            out["author_name"] = out["author_name"] or art.author
            out["lang"] = out["lang"] or art.lang
            dates.append(art.date)
    out["published_at"] = spider.when(*dates, lang=out["lang"])
    if out["published_at"] is None:
        found = find_date(html)
        out["published_at"] = spider.when(found, lang=out["lang"])
        if out["published_at"] is None and any(dates):
            spider.ctx.warn(response.url, f"unreadable date {next(d for d in dates if d)!r}; using the fetch time")
    out["author_id"] = out["author_name"]
    if not out["text"]:
        return None
    return out


class HtmlSpider(SourceSpider):
    name = "html"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requested: set[str] = set()

    def parse_start(self, response: Response) -> Iterator[Any]:
        if self.not_modified(response):
            self.ctx.counts["pages"] += 1
            return
        if _sitemap_body(response) is not None:
            yield from self.parse_sitemap(response, page=1)
            return
        yield from self.parse_listing(response, page=1)

    def parse_sitemap(self, response: Response, page: int = 1) -> Iterator[Any]:
        """A sitemap index leads to more sitemaps, a urlset to article pages (Scrapy's own
        sitemap parser; seen documents are skipped as on a listing page)."""
        from scrapy.utils.sitemap import Sitemap

        self.ctx.counts["pages"] += 1
        body = _sitemap_body(response)
        if body is None:
            self.ctx.error(response.url, "expected a sitemap (<urlset> or <sitemapindex>), got something else")
            return
        try:
            sitemap = Sitemap(body)
        except Exception as e:  # noqa: BLE001 - lxml's errors for broken XML vary
            self.ctx.error(response.url, f"unreadable sitemap: {type(e).__name__}: {e}")
            return
        locs = [entry["loc"] for entry in sitemap if entry.get("loc")]
        if not locs:  # lxml recovers from truncated XML: say so rather than crawl nothing quietly
            self.ctx.warn(response.url, f"the sitemap ({sitemap.type or 'unknown type'}) lists no pages")
            return
        if sitemap.type == "sitemapindex":
            for loc in locs[: max(self.source.max_pages - page, 0)]:
                yield Request(response.urljoin(loc), callback=self.parse_sitemap, errback=self.page_failed,
                              cb_kwargs={"page": page + 1})
            return
        for loc in locs:
            req = self._article_request(response.urljoin(loc))
            if req is not None:
                yield req

    def parse_listing(self, response: Response, page: int = 1) -> Iterator[Any]:
        ctx = self.ctx
        ctx.counts["pages"] += 1
        sel = self.source.selectors
        if sel.get("item"):
            yield from self.inline_posts(response)
        if not sel.get("item") or sel.get("link"):
            for url in self.article_links(response):
                req = self._article_request(url)
                if req is not None:
                    yield req
        if page < self.source.max_pages:
            nxt = self.next_page(response)
            if nxt:
                yield Request(
                    nxt, callback=self.parse_listing, errback=self.page_failed, cb_kwargs={"page": page + 1}
                )

    def _article_request(self, url: str) -> Request | None:
        """A request for an article page, unless an earlier run or this one already has it."""
        did = doc_id(url=url)
        if self.ctx.seen(did):
            self.ctx.counts["skipped_seen"] += 1
            return None
        if did in self._requested:
            return None  # linked from several listing pages
        self._requested.add(did)
        # dont_filter: deduplicated above by doc id; a redirect loop must reach the errback
        # instead of being dropped silently by Scrapy's duplicate filter
        return Request(url, callback=self.parse_article, errback=self.page_failed, dont_filter=True)

    def article_links(self, response: Response) -> list[str]:
        sel = self.source.selectors
        extractor = LinkExtractor(
            restrict_css=sel.get("link") or (),
            allow=self.options.get("link_pattern") or (),
            deny=self.options.get("deny_pattern") or (),
            unique=True,
        )
        # by host name, not LinkExtractor's allow_domains (which compares host:port)
        hosts = set(getattr(self, "allowed_domains", None) or ())
        here = canonical_url(response.url)
        nxt = self.next_page(response)
        skip = {here, canonical_url(nxt)} if nxt else {here}
        return [
            link.url
            for link in extractor.extract_links(response)
            if canonical_url(link.url) not in skip and (not hosts or urlsplit(link.url).hostname in hosts)
        ]

    def next_page(self, response: Response) -> str | None:
        css = self.source.selectors.get("next")
        if not css:
            return None
        node = response.css(css)
        href = node.css("::attr(href)").get() or node.css("a::attr(href)").get()
        return response.urljoin(href) if href else None

    def parse_article(self, response: Response) -> Iterator[Any]:
        ctx = self.ctx
        ctx.counts["pages"] += 1
        page = extract_page(self, response)
        if page is None:
            ctx.counts["invalid"] += 1
            ctx.warn(response.url, "no article text found on the page; skipped (retried next run)")
            return
        yield PostItem(url=response.url, via="selectors" if self.source.selectors.get("text") else "article", **page)

    def inline_posts(self, response: Response) -> Iterator[PostItem]:
        """Several posts on one page (comments, a simple forum): each `item` element is a post,
        identified by the page and its `permalink` (an id attribute or link) or its position."""
        sel = self.source.selectors
        page_url = canonical_url(response.url)
        lang = page_lang(response.text)
        for pos, node in enumerate(response.css(sel["item"]), start=1):
            ref = first(node, sel.get("permalink"))
            url = response.urljoin(ref) if ref and not ref.startswith("#") and "/" in ref else response.url
            key = None if url != response.url else f"{page_url}#{(ref or '').lstrip('#') or pos}"
            if self.ctx.seen(post_doc_id(self.source, url=url, platform_id=ref, doc_key=key)):
                self.ctx.counts["skipped_seen"] += 1
                continue
            author = first(node, sel.get("author"))
            yield PostItem(
                url=url,
                doc_key=key,
                platform_id=ref,
                title=first(node, sel.get("title")),
                text=select(node, sel.get("text")) or "",
                published_at=self.when(*select_all(node, sel.get("date")), lang=lang),
                lang=lang,
                author_id=author,
                author_name=author,
                position=pos,
                via="selectors",
            )


def _sitemap_body(response: Response) -> bytes | None:
    """The XML of a sitemap response (gunzipped), or None when it is not a sitemap."""
    body = response.body
    if body[:2] == b"\x1f\x8b":
        from scrapy.utils.gz import gunzip

        try:
            body = gunzip(body, max_size=64 * 1024 * 1024)
        except Exception:  # noqa: BLE001 - a corrupt archive is simply not a sitemap
            return None
    head = body[:2048].lower()
    return body if (b"<urlset" in head or b"<sitemapindex" in head) else None
