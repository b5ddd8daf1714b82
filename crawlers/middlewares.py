"""Downloader and spider middlewares: the incremental, encoding and error-report parts of a
crawl, kept out of the spiders so every source kind gets them.

- `ConditionalGetMiddleware` sends the ETag / Last-Modified remembered in the source cursor
  with requests marked `meta["conditional"]` (feeds, first listing pages) and notes the new
  validators; a 304 reaches the spider, which then has nothing to do.
- `CharsetRepairMiddleware` re-decodes HTML whose declared charset is wrong or missing
  (a GBK page served as UTF-8 is common on older government sites).
- `CaptureMiddleware` attaches the raw capture of the page each item came from to the item
  (`item["captures"]`, see `crawlers.evidence`), and adds the run's re-checks of known posts
  after the spider's start requests.
- `ParseErrorMiddleware` turns an exception in a spider callback into one clear message for the
  report (source, URL, what went wrong); the rest of the crawl goes on.
- `describe_failure` words download failures the same way for the spiders' errbacks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from scrapy.crawler import Crawler
from scrapy import exceptions as sx
from scrapy.exceptions import IgnoreRequest
from scrapy.http import HtmlResponse, Request, Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom, resolve_encoding

from crawlers.extract import repair_encoding

if TYPE_CHECKING:
    from crawlers.context import RunContext

log = logging.getLogger(__name__)


def _ctx(crawler: Crawler) -> "RunContext | None":
    return getattr(crawler.spider, "ctx", None)


class SourceProxyMiddleware:
    """`options.proxy` of the source (e.g. `http://proxy:3128`, or `${CRAWL_PROXY}` read from the
    environment so credentials stay out of the file) for every request of the crawl. Scrapy's
    HttpProxyMiddleware then applies it (and its credentials); without the option the standard
    `http_proxy` / `https_proxy` / `no_proxy` environment variables apply as usual."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "SourceProxyMiddleware":
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        ctx = _ctx(self.crawler)
        proxy = ctx.source.options.get("proxy") if ctx else None
        if proxy and "proxy" not in request.meta:
            request.meta["proxy"] = expand_env(str(proxy))
        return None


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str) -> str:
    """`${NAME}` -> the environment variable (KeyError naming it when unset)."""
    import os

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in os.environ:
            raise KeyError(f"environment variable {m.group(1)} is not set")
        return os.environ[m.group(1)]

    return _ENV_REF.sub(sub, value)


class ConditionalGetMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "ConditionalGetMiddleware":
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        ctx = _ctx(self.crawler)
        if ctx is None or not request.meta.get("conditional"):
            return None
        known = ctx.cursor.http.get(request.url) or {}
        if known.get("etag") and b"If-None-Match" not in request.headers:
            request.headers[b"If-None-Match"] = known["etag"]
        if known.get("last_modified") and b"If-Modified-Since" not in request.headers:
            request.headers[b"If-Modified-Since"] = known["last_modified"]
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        ctx = _ctx(self.crawler)
        if ctx is None or not request.meta.get("conditional"):
            return response
        if response.status == 200:
            etag = response.headers.get(b"ETag")
            modified = response.headers.get(b"Last-Modified")
            got = {}
            if etag:
                got["etag"] = etag.decode("latin-1")
            if modified:
                got["last_modified"] = modified.decode("latin-1")
            if got:
                ctx.new_validators[request.url] = got
        elif response.status == 304:
            ctx.counts["not_modified"] += 1
            ctx.info(request.url, "not modified since the last run (HTTP 304)")
        return response


class CharsetRepairMiddleware:
    """Scrapy trusts the Content-Type charset, then the page's meta tag. When that charset
    cannot decode the body (or none is declared and the body is not UTF-8), the response is
    re-decoded with the charset the body is really in. A source may force one with
    `options.encoding`."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "CharsetRepairMiddleware":
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if not isinstance(response, HtmlResponse) or not response.body:
            return response
        ctx = _ctx(self.crawler)
        forced = ctx.source.options.get("encoding") if ctx else None
        if forced:
            return response.replace(encoding=resolve_encoding(forced) or forced)
        body = response.body
        if read_bom(body)[0]:
            return response  # a BOM is never wrong
        header = http_content_type_encoding(response.headers.get(b"Content-Type", b"").decode("latin-1"))
        declared = header or html_body_declared_encoding(body[:4096])
        real = repair_encoding(body, declared)
        if real is None and not declared:
            # nothing declared and UTF-8 decodes: make sure Scrapy does not guess cp1252
            real = "utf-8"
        if real is None or real == response.encoding:
            return response
        if ctx is not None and declared:
            ctx.warn(response.url, f"declared charset {declared} does not decode the page; read it as {real}")
        return response.replace(encoding=real)


class CaptureMiddleware(BaseSpiderMiddleware):
    """Every item a callback yields gets the capture of the response it was parsed from; an
    item riding on a request (a feed entry whose article is fetched next, `cb_kwargs["item"]`)
    gets the capture of the page it was found on now, and the article's when it is yielded,
    so an entry kept with the feed's text after the article failed still has its evidence."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._last: tuple[Response, Any] | None = None

    def _capture(self, response: Response) -> Any:
        from crawlers.evidence import capture_of

        if self._last is None or self._last[0] is not response:
            self._last = (response, capture_of(response))
        return self._last[1]

    @staticmethod
    def _attach(item: Any, capture: Any) -> None:
        try:
            caps = item.get("captures") or []
            if all(c is not capture for c in caps):
                item["captures"] = [*caps, capture]
        except (KeyError, TypeError, AttributeError):
            pass  # not a PostItem

    def get_processed_item(self, item: Any, response: Response | None) -> Any:
        if response is not None and hasattr(item, "fields") and "captures" in item.fields:
            self._attach(item, self._capture(response))
        return item

    def get_processed_request(self, request: Request, response: Response | None) -> Request | None:
        item = request.cb_kwargs.get("item") if response is not None else None
        if item is not None and hasattr(item, "fields") and "captures" in item.fields:
            self._attach(item, self._capture(response))  # type: ignore[arg-type]
        return request

    async def process_start(self, start: Any) -> Any:
        async for o in start:
            yield o
        spider = self.crawler.spider
        rechecks = getattr(spider, "recheck_requests", None)
        if rechecks is not None:
            for request in rechecks():
                yield request


class ParseErrorMiddleware:
    """Reports an exception raised while parsing a page and swallows it, so one malformed page
    costs only itself. (Items the callback yielded before failing are kept.)"""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "ParseErrorMiddleware":
        return cls(crawler)

    def process_spider_exception(self, response: Response, exception: Exception) -> Iterable[Any] | None:
        if isinstance(exception, HttpError):
            return None  # Scrapy's HttpErrorMiddleware owns these
        ctx = _ctx(self.crawler)
        if ctx is None:
            return None
        log.debug("parse failure on %s", response.url, exc_info=exception)
        ctx.error(response.url, f"could not parse the page: {type(exception).__name__}: {exception}")
        return ()


def is_robots_denial(failure: Failure) -> bool:
    exc = failure.value
    return isinstance(exc, IgnoreRequest) and "robots.txt" in str(exc).lower()


def describe_failure(failure: Failure, timeout: float | None = None) -> str:
    """A download failure in words an operator can act on."""
    from twisted.internet import error as terr
    from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

    exc = failure.value
    if isinstance(exc, HttpError):
        resp = exc.response
        from http import HTTPStatus

        try:
            phrase = HTTPStatus(resp.status).phrase
        except ValueError:
            phrase = ""
        return f"HTTP {resp.status} {phrase}".rstrip()
    if isinstance(exc, IgnoreRequest):
        text = str(exc) or "request dropped"
        if "robots.txt" in text.lower():
            return "forbidden by robots.txt"
        if "max redirections" in text:
            hops = len(failure.request.meta.get("redirect_urls", [])) if getattr(failure, "request", None) else 0
            return f"redirect loop: gave up after {hops or 'too many'} redirects"
        return f"request dropped: {text}"
    if isinstance(exc, sx.DownloadCancelledError):
        m = re.search(r"receive (\d+) bytes .*max size \((\d+)\)", str(exc))
        if m:
            size, limit = (int(g) / 2**20 for g in m.groups())
            return f"page too large ({size:.1f} MiB, the limit is {limit:.1f} MiB)"
        return f"download cancelled: {exc}"
    if isinstance(exc, (terr.DNSLookupError, sx.CannotResolveHostError)):
        return "host not found (DNS lookup failed)"
    if isinstance(exc, (terr.ConnectionRefusedError, sx.DownloadConnectionRefusedError)):
        return "unreachable: connection refused"
    if isinstance(exc, (terr.TimeoutError, terr.TCPTimedOutError, sx.DownloadTimeoutError)):
        return f"timed out{f' after {timeout:g}s' if timeout else ''}"
    if isinstance(exc, sx.ResponseDataLossError):
        return "connection lost before the full response arrived" + (f" ({exc})" if str(exc) else "")
    if isinstance(exc, (ResponseNeverReceived, ResponseFailed)):
        reasons = getattr(exc, "reasons", None) or []
        inner = "; ".join(type(r.value).__name__ + (f": {r.value}" if str(r.value) else "") for r in reasons)
        return f"connection lost before a full response{f' ({inner})' if inner else ''}"
    if isinstance(exc, (terr.ConnectError, sx.DownloadFailedError)):
        return f"unreachable: {exc}"
    return f"{type(exc).__name__}: {exc}"
