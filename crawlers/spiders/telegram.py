"""Public Telegram channels through their web preview, `https://t.me/s/<channel>` (no account,
no API key; common for Arabic-language news).

The preview shows the newest ~20 messages; older ones are at `?before=<id>`. Each message is a
`Post`: platform `telegram` (doc id from `<channel>/<id>`), URL `https://t.me/<channel>/<id>`,
text, time (`<time datetime>`, with offset), views, the channel as author, the message it
replies to and the channel it was forwarded from (named in the text's metadata; Telegram gives
no id for it). Incremental: older pages are followed only while they hold messages not seen
before, up to `max_pages`. A known message missing from a page whose message ids span its id is recorded as gone
(`crawlers.disappearance`): the preview is a window, but ids are consecutive per channel.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from parsel import Selector
from scrapy.http import Request, Response

from crawlers.disappearance import Listing
from crawlers.extract import html_to_text
from crawlers.items import PostItem
from crawlers.pipelines import post_doc_id
from crawlers.spiders.base import SourceSpider
from crawlers.spiders.html import first

_COUNT = re.compile(r"^\s*([\d.,]+)\s*([KMB]?)\s*$", re.I)


def parse_count(text: str | None) -> int | None:
    """'1.2K' -> 1200, '3M' -> 3000000, '815' -> 815."""
    if not text:
        return None
    m = _COUNT.match(text)
    if not m:
        return None
    n = float(m.group(1).replace(",", ""))
    return int(n * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[m.group(2).upper()])


class TelegramSpider(SourceSpider):
    name = "telegram"

    def parse_start(self, response: Response) -> Iterator[Any]:
        yield from self.parse_page(response, page=1)

    def parse_page(self, response: Response, page: int) -> Iterator[Any]:
        ctx = self.ctx
        ctx.counts["pages"] += 1
        if self.not_modified(response):
            return
        messages = response.css("div.tgme_widget_message[data-post]")
        if not messages:
            ctx.warn(response.url, "no messages on the channel preview (private, empty or renamed channel?)")
            return
        fresh = 0
        channel_name = first(response, ".tgme_channel_info_header_title ::text")
        ids: dict[str, list[tuple[str, int]]] = {}
        for node in messages:
            item = self._message(response, node, channel_name)
            did = self.doc_id_of(item)
            channel, _, number = item["platform_id"].partition("/")
            if number.isdigit():
                ids.setdefault(channel.lower(), []).append((did, int(number)))
            if ctx.seen(did):
                ctx.counts["skipped_seen"] += 1
                continue
            fresh += 1
            yield item
        # message ids grow by one per message in a channel: every id between the smallest and
        # the largest shown is covered by this page, whatever window it is
        host = urlsplit(response.url).netloc
        for channel, found in ids.items():
            self.listed(Listing(f"telegram:{host}/{channel}", [d for d, _ in found], keys=[k for _, k in found],
                                url=None))
        older = response.css("a.tme_messages_more::attr(href)").get()
        if older and fresh and page < self.source.max_pages:
            yield Request(response.urljoin(older), callback=self.parse_page, errback=self.page_failed,
                          cb_kwargs={"page": page + 1})

    def _message(self, response: Response, node: Selector, channel_name: str | None) -> PostItem:
        post = node.attrib["data-post"]  # "<channel>/<id>"
        channel = post.split("/")[0]
        reply = node.css("a.tgme_widget_message_reply::attr(href)").get()
        forwarded = node.css("a.tgme_widget_message_forwarded_from_name::attr(href)").get()
        # the message's own text, not the quoted text of the message it replies to
        own = node.xpath(
            ".//div[contains(concat(' ', normalize-space(@class), ' '), ' tgme_widget_message_text ')]"
            "[not(ancestor::a[contains(@class, 'tgme_widget_message_reply')])]"
        )
        text = "\n".join(t for t in (html_to_text(h) for h in own.getall()) if t)
        author = first(node, ".tgme_widget_message_owner_name ::text") or channel_name or channel
        reply_post = _post_ref(reply)
        origin = _post_ref(forwarded)
        return PostItem(
            url=response.urljoin(f"/{post}"),
            platform_id=post,
            text=text,
            published_at=self.when(node.css("a.tgme_widget_message_date time::attr(datetime)").get()),
            lang=None,
            author_id=channel,
            author_name=author,
            engagement={"views": parse_count(first(node, ".tgme_widget_message_views::text"))},
            reply_to=self._ref_id(response, reply_post),
            repost_of=self._ref_id(response, origin),
            via="telegram",
        )

    def _ref_id(self, response: Response, post: str | None) -> str | None:
        return post_doc_id(self.source, url=response.urljoin(f"/{post}"), platform_id=post) if post else None


def _post_ref(href: str | None) -> str | None:
    """'https://t.me/chan/123?single' -> 'chan/123' (None for a link to a channel, not a post)."""
    if not href:
        return None
    m = re.search(r"^(?:https?://[^/]+)?/(?:s/)?([A-Za-z0-9_]+)/(\d+)(?:[?#].*)?$", href)
    return f"{m.group(1)}/{m.group(2)}" if m else None
