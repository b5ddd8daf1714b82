"""Forums: boards of threads, threads of many posts over many pages. Each post (the opening
post and every reply) becomes its own `Post`, with its author, time and position, linked to its
thread (`thread_id` = the opening post's document id; a reply's `reply_to` = the opening post,
since these forums are flat).

Presets (`options.preset`) give the CSS for common software; the source's `selectors` override
any of them, and `generic` takes them all from the source:

- `phpbb`   phpBB 3.x (prosilver): `viewtopic.php?p=<id>` permalinks;
- `discuz`  Discuz! X3 (common on Chinese forums): `forum.php?mod=redirect&goto=findpost&pid=`;
- `generic` anything else (`post`, `text`, `author`, `date`, `next`, ... from `selectors`).

The source URL may be a board (thread links are followed, `max_pages` board pages) or a thread
(`max_pages` pages of it). Incremental: the cursor keeps, per thread, the last page read and how
many posts came before it, so the next run resumes there instead of re-reading a long thread;
posts already handled are skipped by the seen-set. Discourse (JSON) is `crawlers.spiders.discourse`.

Disappearance: each thread page's posts (with their own ids) are remembered; pages a run does
not read again are re-checked when due, and a known post missing between two neighbours that
are still there is recorded as gone (`crawlers.disappearance`). A known thread page that now
answers 404/410 or redirects to the board or home page takes its known posts with it
(`SourceSpider.container_gone`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from parsel import Selector
from scrapy.http import Request, Response

from crawlers.disappearance import Listing
from crawlers.extract import page_lang
from crawlers.matching import Match
from crawlers.items import PostItem
from crawlers.spiders.base import SourceSpider
from crawlers.spiders.html import first, select, select_all
from yuqing.config import ConfigError, SourceConfig
from yuqing.ids import canonical_url

PRESETS: dict[str, dict[str, str]] = {
    "phpbb": {
        "thread_link": "a.topictitle",
        "board_next": ".pagination li.next a, .pagination a[rel=next]",
        "thread_title": "h2.topic-title a::text, h2.topic-title::text",
        "post": "div.post",
        "post_id": "::attr(id)",
        "title": "h3 a::text",
        "text": "div.content",
        "author": "p.author a.username::text, .postprofile a.username::text, p.author strong a::text",
        "author_link": "p.author a.username::attr(href), .postprofile a.username::attr(href)",
        "date": "p.author time::attr(datetime), p.author::text",
        "next": ".pagination li.next a, .pagination a[rel=next]",
        "permalink": "viewtopic.php?p={id}#p{id}",
    },
    "discuz": {
        "thread_link": "a.xst",
        "board_next": "div.pg a.nxt",
        "thread_title": "#thread_subject::text",
        "post": "#postlist > div[id^=post_]",
        "post_id": "::attr(id)",
        "text": "td.t_f",
        "author": ".authi a.xw1::text",
        "author_link": ".authi a.xw1::attr(href)",
        "date": ".authi em span::attr(title), .authi em::text",
        "next": "div.pg a.nxt",
        "permalink": "forum.php?mod=redirect&goto=findpost&pid={id}",
    },
    "generic": {},
}
_DIGITS = re.compile(r"(\d+)")


class ForumSpider(SourceSpider):
    name = "forum"
    container_rechecks = True  # a run resumes on a thread's last page: earlier pages are re-checked

    @classmethod
    def validate(cls, source: SourceConfig) -> None:
        preset = str(source.options.get("preset", "generic"))
        if preset not in PRESETS:
            raise ConfigError(f"source {source.name!r}: options.preset: unknown forum preset {preset!r} "
                              f"(known: {', '.join(PRESETS)})")
        if "post" not in {**PRESETS[preset], **source.selectors}:
            raise ConfigError(f"source {source.name!r}: selectors.post: a forum without a preset needs it")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sel = {**PRESETS[str(self.options.get("preset", "generic"))], **self.source.selectors}
        self.progress: dict[str, dict[str, Any]] = dict(self.ctx.cursor.extra.get("threads", {}))

    # -- board --------------------------------------------------------------------------
    def parse_start(self, response: Response) -> Iterator[Any]:
        self.ctx.counts["pages"] += 1
        if self.not_modified(response):
            return
        if response.css(self.sel["post"]):  # the source URL is a thread
            key = canonical_url(response.url)
            resume = self.progress.get(key)
            if resume and canonical_url(resume["url"]) != key:
                yield self._thread_request(key, resume)
                return
            yield from self.parse_thread(response, thread=key, page=1, offset=0, root=None, counted=True)
            return
        yield from self.parse_board(response, page=1, counted=True)

    def parse_board(self, response: Response, page: int, counted: bool = False) -> Iterator[Any]:
        if not counted:
            self.ctx.counts["pages"] += 1
        css = self.sel.get("thread_link")
        links = [response.urljoin(h) for h in select_all(response, _attr(css, "href"))] if css else []
        for url in dict.fromkeys(links):
            key = canonical_url(url)
            resume = self.progress.get(key, {"url": url, "offset": 0, "root": None, "page": 1})
            yield self._thread_request(key, resume)
        nxt = self._next(response, "board_next")
        if nxt and page < self.source.max_pages:
            yield Request(nxt, callback=self.parse_board, errback=self.page_failed, cb_kwargs={"page": page + 1})

    def _thread_request(self, key: str, resume: dict[str, Any]) -> Request:
        from crawlers.disappearance import LISTINGS

        # a thread page whose posts are known: a 404/410 (or a redirect away) is a deleted
        # thread, not a failed page (an unknown page's 404 stays an error)
        known = canonical_url(resume["url"]) in (self.ctx.cursor.extra.get(LISTINGS) or {})
        return Request(
            resume["url"],
            callback=self.parse_thread,
            errback=self.page_failed,
            cb_kwargs={"thread": key, "page": int(resume.get("page", 1)), "offset": int(resume.get("offset", 0)),
                       "root": resume.get("root"), "thread_match": resume.get("match") or []},
            dont_filter=True,
            # an unchanged last page answers 304: nothing new in that thread
            meta={"conditional": True, "handle_httpstatus_list": [304, 404, 410] if known else [304],
                  "known_container": known},
        )

    # -- thread -------------------------------------------------------------------------
    def parse_thread(
        self,
        response: Response,
        thread: str,
        page: int,
        offset: int,
        root: str | None,
        counted: bool = False,
        thread_match: list[str] | None = None,
    ) -> Iterator[Any]:
        ctx = self.ctx
        if not counted:
            ctx.counts["pages"] += 1
        if self.not_modified(response):
            return
        if response.meta.get("known_container"):
            requested = (response.meta.get("redirect_urls") or [response.url])[0]
            if self.container_gone(response, canonical_url(requested)):
                return
        lang = page_lang(response.text)
        thread_title = first(response, self.sel.get("thread_title"))
        nodes = response.css(self.sel["post"])
        thread_match = list(thread_match or [])
        if not nodes:
            ctx.warn(response.url, "no posts found on the thread page (selectors.post matched nothing)")
        inherit = bool(self.options.get("replies_inherit_match", True))
        listing: list[str] | None = []
        for i, node in enumerate(nodes, start=1):
            pos = offset + i
            item = self._post(response, node, pos, lang, thread_title if pos == 1 else None)
            did = self.doc_id_of(item)
            if listing is not None and item.get("platform_id"):
                listing.append(did)
            else:  # a post known by its place: no neighbour rule on this page
                listing = None
            if pos == 1:
                root = did
                found = ctx.matcher.match(item.get("title"), item.get("text"), url=item["url"], lang=lang)
                thread_match = list(found.watchlists) if found else []
            item["thread_id"] = root
            item["reply_to"] = root if pos > 1 else None
            if pos > 1 and inherit and thread_match:
                item["context_match"] = Match(thread_match, [])
            if ctx.seen(did):
                ctx.counts["skipped_seen"] += 1
                continue
            yield item
        if listing:
            self.listed(Listing(canonical_url(response.url), listing, url=response.url))
        nxt = self._next(response, "next")
        if nxt and page < self.source.max_pages:
            yield Request(
                nxt,
                callback=self.parse_thread,
                errback=self.page_failed,
                cb_kwargs={"thread": thread, "page": page + 1, "offset": offset + len(nodes), "root": root,
                           "thread_match": thread_match},
            )
        else:
            # the last page read: the next run resumes here (new replies land on it or after it)
            ctx.new_extra.setdefault("threads", {})[thread] = {
                "url": response.url, "page": page, "offset": offset, "root": root, "match": thread_match or [],
            }

    def listing_of(self, response: Response) -> Listing | None:
        """The posts a thread page shows, for a re-check of it. Only posts with their own id
        take part: a post known by its place alone changes identity when one before it goes."""
        ids = []
        for pos, node in enumerate(response.css(self.sel["post"]), start=1):
            url, key, pid = self._identity(response, node, pos)
            if pid is None:
                return None
            ids.append(self.doc_id_of({"url": url, "doc_key": key, "platform_id": pid}))
        return Listing(canonical_url(response.url), ids, url=response.url) if ids else None

    def _identity(self, response: Response, node: Selector, pos: int) -> tuple[str, str, str | None]:
        """(url, doc key, post id) of a post on a thread page."""
        raw_id = first(node, self.sel.get("post_id")) or ""
        m = _DIGITS.search(raw_id)
        pid = m.group(1) if m else None
        template = self.sel.get("permalink")
        if pid and template:
            # the permalink is the identity (a forum's post ids are its own, not global)
            url = response.urljoin(template.format(id=pid))
            return url, canonical_url(url), pid
        # no permalink: the page plus the post's id (or place) identifies it
        return response.url, f"{canonical_url(response.url)}#{pid or pos}", pid

    def _post(self, response: Response, node: Selector, pos: int, lang: str | None, thread_title: str | None) -> PostItem:
        sel = self.sel
        url, key, pid = self._identity(response, node, pos)
        author = first(node, sel.get("author"))
        profile = first(node, sel.get("author_link"))
        return PostItem(
            url=url,
            doc_key=key,
            platform_id=pid,
            title=first(node, sel.get("title")) or thread_title,
            text=select(node, sel.get("text")) or "",
            published_at=self.when(*select_all(node, sel.get("date")), lang=lang),
            lang=lang,
            author_id=_profile_id(profile) or author,
            author_name=author,
            position=pos,
            via="selectors",
        )

    def _next(self, response: Response, key: str) -> str | None:
        css = self.sel.get(key)
        if not css:
            return None
        found = select_all(response, css if "::" in css else _attr(css, "href"))
        return response.urljoin(found[0]) if found else None


def _attr(css: str, name: str) -> str:
    """`a.x, a.y` -> `a.x::attr(name), a.y::attr(name)`."""
    return ", ".join(f"{part.strip()}::attr({name})" for part in css.split(","))


def _profile_id(href: str | None) -> str | None:
    """A stable user key from a profile link (u=2, uid=42) rather than a renameable name."""
    if not href:
        return None
    m = re.search(r"[?&](?:u|uid|user_id)=(\d+)", href)
    return f"uid:{m.group(1)}" if m else href
