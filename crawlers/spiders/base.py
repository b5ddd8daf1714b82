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

    def __init__(self, ctx: RunContext, **kwargs: Any) -> None:
        super().__init__(name=f"{self.name}:{ctx.source.name}", **kwargs)
        self.ctx = ctx
        self.source = ctx.source
        self.options = ctx.source.options
        host = urlsplit(ctx.source.url).hostname
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
        """Requests for the known posts due a re-check this run (`crawlers.evidence`); added
        after the start requests by `CaptureMiddleware`. A failure here never fails the run."""
        from crawlers.evidence import due_rechecks

        try:
            due = due_rechecks(self.ctx.engine, self.source.name, self.options)
        except Exception as e:  # noqa: BLE001 - re-checks are a bonus, the crawl goes on
            self.ctx.warn(None, f"could not read the posts to re-check: {type(e).__name__}: {e}")
            return []
        return [
            Request(r.url, callback=self.recheck_done, errback=self.recheck_failed, dont_filter=True, priority=-10,
                    cb_kwargs={"doc_id": r.doc_id}, meta={"handle_httpstatus_list": [404, 410], "recheck": True})
            for r in due
        ]

    def recheck_done(self, response: Response, doc_id: str) -> None:
        import re

        from crawlers.evidence import GONE_STATUSES

        ctx = self.ctx
        ctx.counts["rechecked"] += 1
        now = datetime.now(timezone.utc)
        gone_text = self.options.get("gone_text")
        gone = response.status in GONE_STATUSES
        if not gone and gone_text:
            try:
                gone = re.search(str(gone_text), response.text) is not None
            except (AttributeError, ValueError):  # not text
                gone = False
        if gone:
            ctx.gone[doc_id] = now
            ctx.info(response.url, f"the post is gone (HTTP {response.status}); recorded as disappeared")
        else:
            ctx.still_there[doc_id] = now

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
