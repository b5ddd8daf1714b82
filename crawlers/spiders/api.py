"""Microblog / social JSON APIs: one spider, a field mapping, and presets.

Configuration (`options`):

- `preset`: `mastodon` (search `/api/v2/search?type=statuses&q=` or a tag/public timeline),
  `reddit` (`/search.json?q=...&sort=new`), `weibo` (mobile search
  `/api/container/getIndex?containerid=100103type%3D1%26q%3D...`, with each post's comments);
  any key below overrides the preset's.
- `items`: a JMESPath expression for the list of posts in a response (`data.children[*].data`).
- `fields`: JMESPath per Post field, evaluated on one item: `id` (required), `url`, `title`,
  `text`, `published` (ISO, RFC 822, Twitter-style, "3分钟前" or epoch seconds), `author_id`,
  `author_name`, `followers`, `verified`, `likes`, `reposts`, `comments`, `views`, `reply_to`,
  `repost_of` (platform ids), `lang`, `deleted` (true for a post the platform shows as removed:
  recorded as disappeared, not collected), `quoted_text` (the text of the post a repost shares: a
  repost of a post in the story joins the story even when its own text is "转发微博").
  `text_html: true` when `text` is HTML.
- `url_template`: the post URL from its fields when the API has none (`.../detail/{id}`);
  `base_url`: against which relative URLs (Reddit's permalinks) resolve.
- `next`: pagination. `{"param": "max_id", "item": "id"}` (the last item's field),
  `{"param": "after", "path": "data.after"}` (a value in the response) or
  `{"param": "page", "increment": 1}`. Paging stops at `max_pages`, at an empty page, or at a
  page with nothing new.
- `since`: `{"param": "since_id"}`: the newest id handled is kept in the cursor and sent on the
  next run, so the API itself returns only newer posts (Mastodon).
- `headers`: sent with every request; `${NAME}` is read from the environment (tokens never go in
  the file). A missing variable fails the run with a message naming it.
- `comments`: a nested mapping (`url`, `items`, `fields`, `min`) fetched per post whose
  comment count reaches `min`; each comment is a Post replying to its post (Weibo preset).
- `listing_ordered`: the listing is a timeline in a fixed order (newest first): a known post
  missing between two that are still there is recorded as disappeared (`crawlers.disappearance`;
  off by default: a search ranks, it does not keep order).
- `scope_ids`: `host` to prefix platform ids with the API host (Mastodon ids are per instance).
- `recheck_url`: a per-post JSON endpoint, `{id}` the post's id as the API gives it, relative
  to the source URL (Mastodon preset: `/api/v1/statuses/{id}`). API posts have no page of their
  own to re-request (their `url` is an HTML page a client renders), so with this the re-checks
  (`recheck_max`, `recheck_days`, `recheck_after`) ask the endpoint instead: a 404/410, a JSON
  error body (`{"error": "Record not found"}`) or `fields.deleted` true is gone; an answer
  carrying the post's `fields.id` is there (one marked gone is back); anything else (5xx, a
  timeout, not JSON, a rate-limit body) concludes nothing. Comments (`comments`) are not
  re-checked through it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import jmespath
from scrapy.http import Request, Response

from crawlers.disappearance import Listing
from crawlers.extract import html_to_text, normalise_lang
from crawlers.items import PostItem
from crawlers.pipelines import post_doc_id
from crawlers.spiders.base import SourceSpider
from yuqing.config import ConfigError, SourceConfig
from yuqing.ids import canonical_url

PRESETS: dict[str, dict[str, Any]] = {
    "mastodon": {
        "items": "statuses || @",
        "fields": {
            "id": "id", "url": "url || uri", "text": "content || reblog.content",
            "published": "created_at", "author_id": "account.id",
            "author_name": "account.display_name || account.acct", "followers": "account.followers_count",
            "likes": "favourites_count", "reposts": "reblogs_count", "comments": "replies_count",
            "reply_to": "in_reply_to_id", "repost_of": "reblog.id", "lang": "language",
        },
        "text_html": True,
        "next": {"param": "max_id", "item": "id"},
        "since": {"param": "since_id"},
        "scope_ids": "host",
        "recheck_url": "/api/v1/statuses/{id}",
    },
    "reddit": {
        "items": "data.children[*].data",
        "fields": {
            "id": "name", "url": "permalink", "title": "title", "text": "selftext || title",
            "published": "created_utc", "author_id": "author_fullname || author", "author_name": "author",
            "likes": "ups", "comments": "num_comments", "repost_of": "crosspost_parent",
            "deleted": "removed_by_category",
        },
        "base_url": "https://www.reddit.com",
        "next": {"param": "after", "path": "data.after"},
    },
    "weibo": {
        "items": "data.cards[?card_type==`9`].mblog",
        "fields": {
            "id": "id", "text": "text", "published": "created_at", "author_id": "user.id",
            "author_name": "user.screen_name", "followers": "user.followers_count", "verified": "user.verified",
            "likes": "attitudes_count", "reposts": "reposts_count", "comments": "comments_count",
            "repost_of": "retweeted_status.id", "quoted_text": "retweeted_status.text",
            "deleted": "deleted == '1'",
        },
        "text_html": True,
        "url_template": "https://m.weibo.cn/detail/{id}",
        "next": {"param": "page", "increment": 1},
        "comments": {
            "url": "/comments/hotflow?id={id}&mid={id}&max_id_type=0",
            "items": "data.data",
            "fields": {
                "id": "id", "text": "text", "published": "created_at", "author_id": "user.id",
                "author_name": "user.screen_name", "followers": "user.followers_count",
                "verified": "user.verified", "likes": "like_count",
            },
            "text_html": True,
            "url_template": "https://m.weibo.cn/detail/{parent}?comment={id}",
            "min": 1,
        },
    },
}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COUNTS = ("likes", "reposts", "comments", "views")


@lru_cache(maxsize=256)
def _compiled(expr: str) -> Any:
    return jmespath.compile(expr)


def search(expr: str | None, data: Any) -> Any:
    return _compiled(expr).search(data) if expr else None


def with_param(url: str, name: str, value: Any) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, str(value)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _count(v: Any) -> int | None:
    try:
        n = int(v)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


def _newer(a: str | None, b: str) -> str:
    """The newer of two ids (numeric where both are, which snowflake-style ids are)."""
    if a is None:
        return b
    if a.isdigit() and b.isdigit():
        return a if int(a) >= int(b) else b
    return max(a, b)


class ApiSpider(SourceSpider):
    name = "api"

    @staticmethod
    def configuration(source: SourceConfig) -> dict[str, Any]:
        """The preset merged with the source's options (fields merged key by key)."""
        conf: dict[str, Any] = dict(PRESETS.get(source.options.get("preset"), {}))
        for key, value in source.options.items():
            if key == "fields" and isinstance(value, dict):
                conf["fields"] = {**conf.get("fields", {}), **value}
            elif key != "preset":
                conf[key] = value
        return conf

    @classmethod
    def validate(cls, source: SourceConfig) -> None:
        preset = source.options.get("preset")
        where = f"source {source.name!r}"
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"{where}: options.preset: unknown API preset {preset!r} (known: {', '.join(PRESETS)})")
        conf = cls.configuration(source)
        if "items" not in conf or "id" not in conf.get("fields", {}):
            raise ConfigError(f"{where}: a JSON source needs options.items and options.fields.id (or a preset)")
        exprs = [("items", conf["items"])] + [(f"fields.{k}", v) for k, v in conf["fields"].items()]
        for key, expr in exprs:
            try:
                _compiled(expr)
            except jmespath.exceptions.JMESPathError as e:
                raise ConfigError(f"{where}: options.{key}: not a JMESPath expression: {e}") from None
        recheck = conf.get("recheck_url")
        if recheck is not None and not (isinstance(recheck, str) and "{id}" in recheck):
            raise ConfigError(f"{where}: options.recheck_url: expected a URL template with {{id}} "
                              f"(e.g. /api/v1/statuses/{{id}}), got {recheck!r}")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conf = self.configuration(self.source)
        self.headers: dict[str, str] = {}
        self.since_key = f"since:{self.source.name}"
        self.newest: str | None = None

    # -- requests -------------------------------------------------------------------------
    def _headers(self) -> dict[str, str] | None:
        """Headers with `${NAME}` from the environment; None (and an error) when one is unset."""
        out = {}
        for k, v in (self.conf.get("headers") or {}).items():
            missing = [n for n in _ENV.findall(str(v)) if n not in os.environ]
            if missing:
                self.ctx.start_failed = True
                self.ctx.error(None, f"header {k}: environment variable {missing[0]} is not set")
                return None
            out[k] = _ENV.sub(lambda m: os.environ[m.group(1)], str(v))
        return out

    async def start(self) -> Any:
        headers = self._headers()
        if headers is None:
            return
        self.headers = headers
        url = self.source.url
        since = self.conf.get("since")
        last = self.ctx.cursor.extra.get(self.since_key)
        if since and last:
            url = with_param(url, since["param"], last)
        yield Request(url, callback=self.parse_start, errback=self.start_failed, headers=headers,
                      dont_filter=True, cb_kwargs={"page": 1})

    def parse_start(self, response: Response, page: int = 1) -> Iterator[Any]:
        ctx = self.ctx
        ctx.counts["pages"] += 1
        data = self._json(response)
        if data is None:
            return
        items = search(self.conf["items"], data)
        if not isinstance(items, list):
            ctx.error(response.url, f"options.items {self.conf['items']!r} found no list in the response")
            return
        if not items:
            if page == 1:
                ctx.info(response.url, "no posts in the response")
            return
        fresh = 0
        listing: list[str] = []
        for raw in items:
            if not isinstance(raw, dict):
                continue
            item = self._item(response, raw, self.conf)
            if item is None:
                continue
            self.newest = _newer(self.newest, str(search(self.conf["fields"]["id"], raw)))
            did = self.doc_id_of(item)
            if self._deleted(raw, self.conf):
                self.vanish(did, item.get("url") or response.url, "the platform marks it deleted")
                continue
            listing.append(did)
            if ctx.seen(did):
                ctx.counts["skipped_seen"] += 1
                continue
            fresh += 1
            yield item
            yield from self._comments(response, raw, item)
        self._list(response, listing)
        if self.conf.get("since") and self.newest:
            ctx.new_extra[self.since_key] = self.newest
        nxt = self._next_url(response, data, items, page)
        if nxt and fresh and page < self.source.max_pages:
            yield Request(nxt, callback=self.parse_start, errback=self.page_failed, headers=self.headers,
                          cb_kwargs={"page": page + 1})

    # -- re-checks of API posts through `recheck_url` --------------------------------------
    def recheck_requests(self) -> list[Request]:
        """The usual re-checks, plus, with `recheck_url`, API posts (seen only in responses)
        looked up one by one at their JSON endpoint."""
        out = super().recheck_requests()
        template = self.conf.get("recheck_url")
        if not template or self.ctx.engine is None:
            return out
        from crawlers.evidence import due_rechecks, stored_post

        try:
            due = due_rechecks(self.ctx.engine, self.source.name, self.options, direct=False)
            posts = {r.doc_id: stored_post(self.ctx.engine, r.doc_id) for r in due}
        except Exception as e:  # noqa: BLE001 - re-checks are a bonus, the crawl goes on
            self.ctx.warn(None, f"could not read the API posts to re-check: {type(e).__name__}: {e}")
            return out
        for doc_id, post in posts.items():
            # the raw id is in the post (past the inbox's retention it is not: not re-checked);
            # comments have their own ids, which the post endpoint does not know
            if post is None or not post.platform_id or post.thread_id:
                continue
            raw = post.platform_id
            if self.conf.get("scope_ids") == "host":
                raw = raw.split(":", 1)[-1]
            url = urljoin(self.source.url, str(template).replace("{id}", quote(raw, safe="")))
            out.append(Request(url, callback=self.recheck_api, errback=self.recheck_failed, dont_filter=True,
                               priority=-10, headers=self.headers, cb_kwargs={"doc_id": doc_id},
                               meta={"handle_httpstatus_list": [404, 410], "recheck": True}))
        return out

    def recheck_api(self, response: Response, doc_id: str) -> None:
        """A post's JSON endpoint answered: gone, there, or (anything else) nothing concluded."""
        from crawlers.disappearance import json_body, json_gone_reason
        from crawlers.evidence import GONE_STATUSES

        ctx = self.ctx
        ctx.counts["rechecked"] += 1
        now = datetime.now(timezone.utc)
        if response.status in GONE_STATUSES:
            self.vanish(doc_id, response.url, f"its API endpoint answers HTTP {response.status}", now)
            return
        data = json_body(response.body, response.headers.get(b"Content-Type", b"").decode("latin-1"))
        if not isinstance(data, dict):
            ctx.warn(response.url, "re-check: the post's endpoint did not answer a JSON object; nothing concluded")
            return
        why = json_gone_reason(data) if self.options.get("soft_404", True) else None
        if why is None and self._deleted(data, self.conf):
            why = "the platform marks it deleted"
        if why:
            self.vanish(doc_id, response.url, why, now)
        elif search(self.conf["fields"]["id"], data) not in (None, ""):
            ctx.still_there[doc_id] = now
        else:
            ctx.warn(response.url, "re-check: the answer is not the post (no options.fields.id); nothing concluded")

    def _deleted(self, raw: dict[str, Any], conf: dict[str, Any]) -> bool:
        """`fields.deleted`: the platform's own marker of a removed post (Reddit's
        `removed_by_category`, Weibo's `deleted`)."""
        expr = conf["fields"].get("deleted")
        return bool(expr) and bool(search(expr, raw))

    def _list(self, response: Response, listing: list[str]) -> None:
        """Posts shown (one marked gone before is back); with `listing_ordered: true` (a
        timeline in a fixed order, e.g. newest first, and no `since`: a since-query shows only
        newer posts) a known post missing between two that are still there is gone."""
        if self.options.get("listing_ordered") and not self.conf.get("since"):
            self.listed(Listing(canonical_url(response.url), listing))
        else:
            self.shown(listing)

    def _next_url(self, response: Response, data: Any, items: list[Any], page: int) -> str | None:
        spec = self.conf.get("next")
        if not spec:
            return None
        if "increment" in spec:
            current = dict(parse_qsl(urlsplit(response.url).query)).get(spec["param"])
            value: Any = (int(current) if current and current.isdigit() else page) + int(spec["increment"])
        elif "item" in spec:
            value = search(spec["item"], items[-1])
        else:
            value = search(spec.get("path"), data)
        return with_param(response.url, spec["param"], value) if value not in (None, "") else None

    # -- items ----------------------------------------------------------------------------
    def _pid(self, response: Response, value: Any) -> str | None:
        if value in (None, ""):
            return None
        value = str(value)
        if self.conf.get("scope_ids") == "host":
            return f"{urlsplit(response.url).hostname}:{value}"
        return value

    def _item(self, response: Response, raw: dict[str, Any], conf: dict[str, Any], **extra: Any) -> PostItem | None:
        f = conf["fields"]
        get = lambda name: search(f.get(name), raw)  # noqa: E731
        pid = self._pid(response, get("id"))
        if pid is None:
            self.ctx.warn(response.url, f"a post without {f['id']!r}; skipped")
            return None
        text = get("text") or ""
        if conf.get("text_html"):
            text = html_to_text(str(text))
        url = get("url")
        if not url and conf.get("url_template"):
            url = conf["url_template"].format(id=get("id"), **extra)
        if url:
            url = (conf.get("base_url") or response.url).rstrip("/") + url if str(url).startswith("/") else str(url)
        published = get("published")
        if isinstance(published, (int, float)) and not isinstance(published, bool):
            published = datetime.fromtimestamp(float(published), tz=timezone.utc)
        verified = get("verified")
        return PostItem(
            url=url,
            platform_id=pid,
            title=get("title"),
            text=str(text),
            published_at=self.when(published, lang=get("lang")),
            lang=normalise_lang(get("lang")),
            author_id=get("author_id"),
            author_name=get("author_name"),
            author_followers=_count(get("followers")),
            author_verified=bool(verified) if verified is not None else None,
            engagement={k: _count(get(k)) for k in _COUNTS},
            reply_to=self._ref(response, get("reply_to")),
            repost_of=self._ref(response, get("repost_of")),
            context_match=self._quoted_match(get("quoted_text"), conf),
            via="json",
        )

    def _quoted_match(self, quoted: Any, conf: dict[str, Any]) -> Any:
        if not quoted:
            return None
        text = html_to_text(str(quoted)) if conf.get("text_html") else str(quoted)
        return self.ctx.matcher.match(text)

    def _ref(self, response: Response, value: Any) -> str | None:
        pid = self._pid(response, value)
        return post_doc_id(self.source, platform_id=pid) if pid and self.source.platform != "web" else None

    def _comments(self, response: Response, raw: dict[str, Any], parent: PostItem) -> Iterator[Request]:
        spec = self.conf.get("comments")
        if not spec or not self.options.get("with_comments", True):
            return
        n = _count(search(self.conf["fields"].get("comments"), raw)) or 0
        if n < int(spec.get("min", 1)):
            return
        # comments are fetched for posts in the story only; they join it (context_match)
        found = self.ctx.matcher.match(parent.get("title"), parent.get("text"), url=parent.get("url"))
        if found is None:
            return
        pid = search(self.conf["fields"]["id"], raw)
        yield Request(response.urljoin(spec["url"].format(id=pid)), callback=self.parse_comments,
                      errback=self.page_failed, headers=self.headers,
                      cb_kwargs={"parent": parent, "parent_raw_id": str(pid), "match": found})

    def parse_comments(self, response: Response, parent: PostItem, parent_raw_id: str, match: Any) -> Iterator[Any]:
        ctx = self.ctx
        ctx.counts["pages"] += 1
        spec = self.conf["comments"]
        data = self._json(response)
        items = search(spec["items"], data) if data is not None else None
        parent_id = self.doc_id_of(parent)
        for raw in items or []:
            item = self._item(response, raw, spec, parent=parent_raw_id)
            if item is None:
                continue
            did = self.doc_id_of(item)
            if self._deleted(raw, spec):
                self.vanish(did, item.get("url") or response.url, "the platform marks it deleted")
                continue
            self.shown([did])
            if ctx.seen(did):
                ctx.counts["skipped_seen"] += 1
                continue
            item["reply_to"] = parent_id
            item["thread_id"] = parent_id
            item["context_match"] = match
            yield item

    def _json(self, response: Response) -> Any:
        try:
            return json.loads(response.text)
        except ValueError as e:
            self.ctx.error(response.url, f"not JSON: {e}")
            return None
