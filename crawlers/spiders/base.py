"""What every source spider shares: the run context, the first (conditional) request, errbacks
that report a failed URL and let the crawl go on, and date resolution in the source's zone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import Request, Response
from twisted.python.failure import Failure

from crawlers.context import RunContext
from crawlers.dates import resolve_date
from crawlers.middlewares import describe_failure, is_robots_denial
from yuqing.config import SourceConfig


class SourceSpider(scrapy.Spider):
    """A spider configured by one `SourceConfig` (given through the `RunContext`)."""

    name = "source"
    # whether posts live in containers a normal run may not fetch again (forum thread pages,
    # Discourse topics that left the topic list): those are re-requested when due
    container_rechecks = False

    def __init__(self, ctx: RunContext, **kwargs: Any) -> None:
        super().__init__(name=f"{self.name}:{ctx.source.name}", **kwargs)
        self.ctx = ctx
        self.source = ctx.source
        self.options = ctx.source.options
        host = urlsplit(ctx.source.url).hostname
        if ctx.engine is not None:
            from crawlers.evidence import disappeared_urls

            try:  # posts marked gone before: one shown again this run is back
                ctx.was_gone = disappeared_urls(ctx.engine, ctx.source.name)
            except Exception as e:  # noqa: BLE001 - a bonus, the crawl goes on
                ctx.warn(None, f"could not read the posts marked gone: {type(e).__name__}: {e}")
        # follow links only within the source's own site unless told otherwise
        if not self.options.get("follow_offsite", False) and host:
            self.allowed_domains = [host]

    @classmethod
    def validate(cls, source: SourceConfig) -> None:
        """Raise ConfigError (naming the source and the option) for options this spider cannot
        work with; called before the crawl starts, so a typo never becomes an empty run."""

    # -- requests -------------------------------------------------------------------------
    async def start(self) -> AsyncIterator[Any]:
        yield Request(
            self.source.url,
            callback=self.parse_start,
            errback=self.start_failed,
            dont_filter=True,
            meta={"conditional": self.options.get("conditional_get", True), "handle_httpstatus_list": [304]},
        )

    # -- re-checks of known posts (evidence: a post that disappeared) ----------------------
    def recheck_requests(self) -> list[Request]:
        """Requests for the known posts due a re-check this run (`crawlers.evidence`), and for
        the containers (thread pages) whose posts have no page of their own
        (`crawlers.disappearance`); added after the start requests by `CaptureMiddleware`. A
        failure here never fails the run."""
        from crawlers.disappearance import LISTINGS, due_containers
        from crawlers.evidence import due_rechecks

        try:
            due = due_rechecks(self.ctx.engine, self.source.name, self.options)
        except Exception as e:  # noqa: BLE001 - re-checks are a bonus, the crawl goes on
            self.ctx.warn(None, f"could not read the posts to re-check: {type(e).__name__}: {e}")
            due = []
        out = [
            Request(r.url, callback=self.recheck_done, errback=self.recheck_failed, dont_filter=True, priority=-10,
                    cb_kwargs={"doc_id": r.doc_id}, meta={"handle_httpstatus_list": [404, 410], "recheck": True})
            for r in due
        ]
        if self.container_rechecks:
            containers = due_containers(
                self.ctx.cursor.extra.get(LISTINGS) or {}, datetime.now(timezone.utc),
                float(self.options.get("recheck_after", 6)), int(self.options.get("recheck_max", 20)))
            # a 404/410 reaches the callback: a thread or topic that is gone takes its posts with it
            out += [Request(url, callback=self.recheck_container, errback=self.recheck_failed, dont_filter=True,
                            priority=-10, cb_kwargs={"container": key},
                            meta={"recheck": True, "handle_httpstatus_list": [404, 410]})
                    for key, url in containers]
        return out

    def recheck_done(self, response: Response, doc_id: str) -> None:
        ctx = self.ctx
        ctx.counts["rechecked"] += 1
        now = datetime.now(timezone.utc)
        why = self.gone_reason(response, doc_id)
        if why:
            self.vanish(doc_id, (response.meta.get("redirect_urls") or [response.url])[0], why, now)
        else:
            ctx.still_there[doc_id] = now

    def gone_reason(self, response: Response, doc_id: str) -> str | None:
        """Why a re-checked post's own URL says it is gone, or None: 404/410; `gone_text` (the
        explicit override for the page's text); else the soft 404s of `crawlers.disappearance`
        (redirect to the home or listing page, a JSON error body, a page whose main text no
        longer holds the post). `options.soft_404: false` keeps only status and `gone_text`."""
        import re

        from crawlers.disappearance import json_body, json_gone_reason, redirected_away, text_replaced
        from crawlers.evidence import GONE_STATUSES, stored_text

        if response.status in GONE_STATUSES:
            return f"HTTP {response.status}"
        ctx = self.ctx
        ctx.rechecked_ok += 1
        gone_text = self.options.get("gone_text")
        soft = bool(self.options.get("soft_404", True))
        requested = (response.meta.get("redirect_urls") or [response.url])[0]
        if soft and redirected_away(requested, response.url, self.source.url):
            return f"its URL now redirects to {response.url}"
        try:
            text = response.text
        except AttributeError:  # not text: nothing more to read in it
            return None
        if gone_text:
            try:
                if re.search(str(gone_text), text):
                    return "the page matches options.gone_text"
            except re.error:
                return None  # a broken pattern: never guess
        if not soft:
            return None
        data = json_body(response.body, response.headers.get(b"Content-Type", b"").decode("latin-1"))
        if data is not None:
            return json_gone_reason(data)
        if gone_text:  # the explicit rule replaces the text test
            return None
        new = self.recheck_text(response)
        try:
            old = stored_text(ctx.engine, doc_id)
        except Exception:  # noqa: BLE001 - without the old text only an empty page counts
            old = None
        if text_replaced(old, new) and self._page_held_post(doc_id, requested, old):
            ctx.gone_by_text.add(doc_id)
            return "the page no longer holds the post's text" if new else "the page has no main text any more"
        return None

    def _page_held_post(self, doc_id: str, url: str, text: str | None) -> bool:
        """Whether the page, as captured when the post was taken, held the post's text by the
        same extraction (a feed entry kept with the feed's text because its page had none
        must not count as gone when the page still has none). True when no capture is left."""
        from scrapy.http import HtmlResponse

        from crawlers.disappearance import text_replaced
        from crawlers.evidence import captures
        from yuqing.ids import canonical_url

        try:
            caps = [c for c in captures(self.ctx.engine, doc_id)
                    if c.status == 200 and canonical_url(c.url) == canonical_url(url)]
        except Exception:  # noqa: BLE001 - without the capture, the stored text decides
            return True
        if not caps:
            return True
        cap = caps[-1]
        then = HtmlResponse(url=cap.url, body=cap.body,
                            headers={"Content-Type": cap.content_type} if cap.content_type else None)
        try:
            held = self.recheck_text(then)
        except Exception:  # noqa: BLE001 - an old page that no longer parses proves nothing
            return False
        return not text_replaced(text, held)

    def recheck_text(self, response: Response) -> str | None:
        """The main text of a re-checked page, extracted as the post was (selectors, then
        trafilatura)."""
        from crawlers.spiders.html import extract_page

        page = extract_page(self, response)
        return page["text"] if page else None

    # -- posts without a page of their own: listings (crawlers.disappearance) -------------
    def listing_of(self, response: Response) -> Any:
        """The `Listing` a container page shows, for spiders whose posts live in containers
        that a normal run does not fetch again (forum threads); None where it cannot say."""
        return None

    def recheck_container(self, response: Response, container: str) -> None:
        self.ctx.counts["rechecked"] += 1
        if self.container_gone(response, container):
            return
        listing = self.listing_of(response)
        if listing is None or listing.container != container:
            self.ctx.info(response.url, "re-check: the page no longer shows a comparable list of posts")
            return
        self.listed(listing)

    def listed(self, listing: Any) -> None:
        """A container was fetched and parsed: its posts are there (one marked gone is back);
        known posts it provably should show and does not are gone; it is remembered."""
        from crawlers.disappearance import LISTINGS, remember, vanished

        ctx = self.ctx
        ctx.containers_ok += 1
        now = datetime.now(timezone.utc)
        for d in listing.ids:
            ctx.present.setdefault(d, now)
        before = (ctx.cursor.extra.get(LISTINGS) or {}).get(listing.container)
        gone = vanished(before, listing)
        for d in gone:
            self.vanish(d, listing.url, f"no longer listed in {listing.container} though its neighbours are", now)
        prev = ctx.new_extra.get(LISTINGS, {}).get(listing.container)
        ctx.new_extra.setdefault(LISTINGS, {})[listing.container] = remember(prev or before, listing, now, gone)

    def container_gone_reason(self, response: Response) -> str | None:
        """Why a known container (a thread page, a topic) says it is gone as a whole, or None:
        404/410; else, unless `soft_404: false`, the soft 404s that count for a post's own URL
        and say nothing about the text: a redirect to the site's home or listing page, a JSON
        error body (Discourse `error_type: not_found`, a topic with `deleted_at`). Any other
        answer (5xx, 403, a page without posts) is not evidence."""
        from crawlers.disappearance import json_body, json_gone_reason, redirected_away
        from crawlers.evidence import GONE_STATUSES

        if response.status in GONE_STATUSES:
            return f"HTTP {response.status}"
        if response.status != 200 or not self.options.get("soft_404", True):
            return None
        requested = (response.meta.get("redirect_urls") or [response.url])[0]
        if redirected_away(requested, response.url, self.source.url):
            return f"it now redirects to {response.url}"
        data = json_body(response.body, response.headers.get(b"Content-Type", b"").decode("latin-1"))
        return json_gone_reason(data) if data is not None else None

    def container_gone(self, response: Response, container: str) -> bool:
        """If a known container is gone as a whole (`container_gone_reason`), every post its
        last listing showed is gone with it (recorded at the end of the run, with the same
        guards as any disappearance, see `InboxPipeline.record_disappearance`). The listing is
        kept, its time moved on, so the container is looked at again when due and posts that
        come back with it are un-marked. Returns whether it was gone. A container the cursor
        does not know (a first fetch) proves nothing: the caller reports it as a failed page."""
        from crawlers.disappearance import LISTINGS

        why = self.container_gone_reason(response)
        if why is None:
            return False
        ctx = self.ctx
        before = (ctx.cursor.extra.get(LISTINGS) or {}).get(container)
        ids = list((before or {}).get("ids") or [])
        url = (response.meta.get("redirect_urls") or [response.url])[0]
        if not ids:
            ctx.warn(url, f"the page is gone ({why}) but no posts of it are known")
            return True
        now = datetime.now(timezone.utc)
        for d in ids:
            self.vanish(d, url, f"the thread it was in is gone: {why}", now)
        ctx.gone_by_container.update(ids)
        ctx.containers_gone += 1
        ctx.new_extra.setdefault(LISTINGS, {})[container] = {**before, "at": now.isoformat(timespec="seconds")}
        ctx.info(url, f"the thread is gone ({why}): its {len(ids)} known posts with it")
        return True

    def remember_container(self, container: str, url: str, ids: list[str]) -> None:
        """Note a container for re-checks (`recheck_container`) without the neighbour rule
        (spiders with their own rule: Discourse's stream)."""
        from crawlers.disappearance import LISTINGS, Listing, remember

        ctx = self.ctx
        ctx.containers_ok += 1
        before = ctx.new_extra.get(LISTINGS, {}).get(container) or (ctx.cursor.extra.get(LISTINGS) or {}).get(container)
        ctx.new_extra.setdefault(LISTINGS, {})[container] = remember(
            before, Listing(container, ids, url=url), datetime.now(timezone.utc))

    def vanish(self, doc_id: str, url: str | None, why: str, at: datetime | None = None) -> None:
        """Note a known post as gone (recorded at the end of the run, if it is one of ours and
        nothing else this run showed it)."""
        self.ctx.gone.setdefault(doc_id, at or datetime.now(timezone.utc))
        self.ctx.gone_why.setdefault(doc_id, (url, why))

    def shown(self, doc_ids: Any) -> None:
        """Posts a page showed (for reappearance) without a listing rule."""
        now = datetime.now(timezone.utc)
        for d in doc_ids:
            self.ctx.present.setdefault(d, now)

    def recheck_failed(self, failure: Failure) -> None:
        """Not an error of the source: the post is re-checked on a later run."""
        self.ctx.warn(self._failed_url(failure), "re-check failed: " + describe_failure(failure, self._timeout()))

    def closed(self, reason: str) -> None:
        """Scrapy's close hook: "finished", or why the crawl stopped early ("shutdown", ...)."""
        self.ctx.close_reason = reason

    def parse_start(self, response: Response) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def start_failed(self, failure: Failure) -> None:
        """The source's own URL failed after retries: nothing else can be crawled this run."""
        self.ctx.start_failed = True
        self.ctx.error(self._failed_url(failure), describe_failure(failure, self._timeout()))

    def page_failed(self, failure: Failure) -> None:
        """A page behind the source URL failed: report it; it is retried next run (not seen).
        A page robots.txt forbids is policy, not a fault: a warning, not an error."""
        self.report_failure(failure)

    def report_failure(self, failure: Failure, suffix: str = "") -> None:
        what = describe_failure(failure, self._timeout()) + suffix
        if is_robots_denial(failure):
            self.ctx.warn(self._failed_url(failure), what)
        else:
            self.ctx.error(self._failed_url(failure), what)

    @staticmethod
    def _failed_url(failure: Failure) -> str | None:
        req = getattr(failure, "request", None)
        if req is not None:
            return req.url
        resp = getattr(failure.value, "response", None)
        return resp.url if resp is not None else None

    def _timeout(self) -> float | None:
        return self.crawler.settings.getfloat("DOWNLOAD_TIMEOUT") if self.crawler else None

    # -- helpers --------------------------------------------------------------------------
    def when(self, *candidates: Any, lang: str | None = None) -> datetime | None:
        """The first candidate that resolves to a plausible UTC time."""
        now = datetime.now(timezone.utc)
        for value in candidates:
            if value:
                dt = resolve_date(value, tz=self.ctx.tz, lang=self.source.lang or lang, now=now)
                if dt is not None:
                    return dt
        return None

    def doc_id_of(self, item: Any) -> str:
        """The document id the normaliser will give this item (to check the seen-set first)."""
        from crawlers.pipelines import post_doc_id

        return post_doc_id(self.source, url=item.get("url"), platform_id=item.get("platform_id"),
                           doc_key=item.get("doc_key"))

    def not_modified(self, response: Response) -> bool:
        return response.status == 304
