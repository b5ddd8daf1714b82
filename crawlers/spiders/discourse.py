"""Discourse forums through their public JSON (what the web client itself reads).

The source URL is a topic list (`/latest.json`, `/c/<slug>/<id>.json`, `/search.json?q=...`
also lists topics) or one topic (`/t/<slug>/<id>.json`). A topic's JSON carries the first posts
and the ids of all (`post_stream.stream`); the rest are fetched in chunks from
`/t/<id>/posts.json?post_ids[]=...`. Each post is a `Post` with its permalink
`/t/<slug>/<topic>/<post_number>`, author (username pseudonymised; display name kept), likes,
reads (views) and replies, its thread (the topic's first post) and the post it answers
(`reply_to_post_number`, else the first post). Incremental: posts already handled are not
requested again: the cursor maps each topic's post ids to post numbers (a post's identity is
its topic and number, which is also how replies name what they answer), and the stream gives
the ids before the text.

Disappearance: the stream lists every visible post of the topic, so a known post missing from
it is gone; a post with `deleted_at` or `user_deleted` is gone whatever its text says
(`crawlers.disappearance`). A known topic whose re-check answers 404/410 or Discourse's
`not_found` error takes its known posts with it (`SourceSpider.container_gone`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

from scrapy.http import Request, Response

from crawlers.disappearance import post_deleted
from crawlers.extract import html_to_text
from crawlers.items import PostItem
from crawlers.matching import Match
from crawlers.pipelines import post_doc_id
from crawlers.spiders.base import SourceSpider

CHUNK = 20


class DiscourseSpider(SourceSpider):
    name = "discourse"
    container_rechecks = True  # topics that left the topic list are re-read when due

    def recheck_container(self, response: Response, container: str) -> Iterator[Any]:
        self.ctx.counts["rechecked"] += 1
        if self.container_gone(response, container):  # the topic was deleted: its posts with it
            return
        yield from self.parse_topic(response)

    def parse_start(self, response: Response) -> Iterator[Any]:
        self.ctx.counts["pages"] += 1
        if self.not_modified(response):
            return
        data = self._json(response)
        if data is None:
            return
        if "post_stream" in data:
            yield from self.parse_topic(response, data=data, counted=True)
            return
        topics = (data.get("topic_list") or {}).get("topics") or data.get("topics") or []
        if not topics:
            self.ctx.warn(response.url, "no topics in the Discourse listing")
        root = self._root(response)
        for t in topics[: int(self.options.get("max_topics", 100))]:
            yield Request(f"{root}/t/{t.get('slug') or 'topic'}/{t['id']}.json", callback=self.parse_topic,
                          errback=self.page_failed)

    def parse_topic(self, response: Response, data: dict[str, Any] | None = None, counted: bool = False) -> Iterator[Any]:
        if not counted:
            self.ctx.counts["pages"] += 1
        data = data if data is not None else self._json(response)
        if data is None:
            return
        root = self._root(response)
        topic = {"id": data.get("id"), "slug": data.get("slug") or "topic", "title": data.get("title")}
        posts = (data.get("post_stream") or {}).get("posts") or []
        known: dict[str, int] = dict(self.ctx.cursor.extra.get("discourse", {}).get(str(topic["id"]), {}))
        stream = (data.get("post_stream") or {}).get("stream") or []
        if stream:
            # the stream lists every visible post of the topic: a known post not in it is gone
            listed = {str(pid) for pid in stream}
            for pid, number in list(known.items()):
                if pid not in listed:
                    self.vanish(self._did(root, topic, number), f"{root}/t/{topic['slug']}/{topic['id']}/{number}",
                                "no longer in the topic's post stream")
                    del known[pid]
            # known posts still in the stream are there (one marked gone with its topic is back),
            # even those a run does not fetch again; those in this answer are judged by their
            # own markers (`_posts`)
            batch = {str(p.get("id")) for p in posts}
            self.shown([self._did(root, topic, n) for pid, n in known.items() if pid in listed and pid not in batch])
        # the topic's known posts carry over (a run fetches only the new ones)
        self.ctx.new_extra.setdefault("discourse", {})[str(topic["id"])] = dict(known)
        self._remember_topic(root, topic)
        yield from self._posts(root, topic, posts)
        have = {p.get("id") for p in posts}
        missing = [
            pid for pid in (data.get("post_stream") or {}).get("stream") or []
            if pid not in have
            and not (str(pid) in known and self.ctx.seen(self._did(root, topic, known[str(pid)])))
        ]
        for i in range(0, len(missing), CHUNK):
            query = urlencode([("post_ids[]", pid) for pid in missing[i : i + CHUNK]])
            yield Request(f"{root}/t/{topic['id']}/posts.json?{query}", callback=self.parse_chunk,
                          errback=self.page_failed, cb_kwargs={"topic": topic})

    def parse_chunk(self, response: Response, topic: dict[str, Any]) -> Iterator[Any]:
        self.ctx.counts["pages"] += 1
        data = self._json(response)
        if data is not None:
            yield from self._posts(self._root(response), topic, (data.get("post_stream") or {}).get("posts") or [])

    def _posts(self, root: str, topic: dict[str, Any], posts: list[dict[str, Any]]) -> Iterator[PostItem]:
        ctx = self.ctx
        first = self._did(root, topic, 1)
        opening = next((p for p in posts if p.get("post_number") == 1), None)
        if opening is not None:
            found = ctx.matcher.match(topic["title"], html_to_text(opening.get("cooked")))
            topic["match"] = list(found.watchlists) if found else []
        inherit = bool(self.options.get("replies_inherit_match", True)) and topic.get("match")
        numbers = ctx.new_extra.setdefault("discourse", {}).setdefault(str(topic["id"]), {})
        for p in posts:
            number = int(p.get("post_number") or 0)
            key = self._key(root, topic, number)
            did = post_doc_id(self.source, doc_key=key)
            if post_deleted(p):  # deleted by staff, or withdrawn by its author: gone, whatever it shows
                self.vanish(did, f"{root}/t/{topic['slug']}/{topic['id']}/{number}",
                            "Discourse marks the post deleted")
                numbers.pop(str(p.get("id")), None)
                continue
            numbers[str(p.get("id"))] = number
            self.shown([did])
            if ctx.seen(did):
                ctx.counts["skipped_seen"] += 1
                continue
            reply_n = p.get("reply_to_post_number")
            likes = next((a.get("count") for a in p.get("actions_summary") or [] if a.get("id") == 2), None)
            yield PostItem(
                url=f"{root}/t/{topic['slug']}/{topic['id']}/{number}",
                doc_key=key,
                platform_id=str(p.get("id")),
                title=topic["title"] if number == 1 else None,
                text=html_to_text(p.get("cooked")),
                published_at=self.when(p.get("created_at")),
                author_id=p.get("user_id") or p.get("username"),
                author_name=p.get("name") or p.get("username"),
                engagement={"likes": p.get("like_count", likes), "comments": p.get("reply_count"),
                            "views": p.get("reads")},
                thread_id=first,
                reply_to=None if number == 1 else (self._did(root, topic, int(reply_n)) if reply_n else first),
                position=number,
                context_match=Match(topic["match"], []) if inherit and number > 1 else None,
                via="json",
            )
        self._remember_topic(root, topic)

    def _remember_topic(self, root: str, topic: dict[str, Any]) -> None:
        """Note the topic for re-checks with the posts known in it (a deleted topic takes
        them with it): called again once a page of its posts was read, so a topic's first
        fetch already lists them."""
        numbers = self.ctx.new_extra.get("discourse", {}).get(str(topic["id"])) or {}
        self.remember_container(f"discourse:{urlsplit(root).netloc}/t/{topic['id']}",
                                f"{root}/t/{topic['slug']}/{topic['id']}.json",
                                [self._did(root, topic, n) for n in numbers.values()] or [self._did(root, topic, 1)])

    # identity: host, topic and post number (replies name their target by number)
    def _key(self, root: str, topic: dict[str, Any], number: int) -> str:
        return f"{urlsplit(root).hostname}/t/{topic['id']}/{number}"

    def _did(self, root: str, topic: dict[str, Any], number: int) -> str:
        return post_doc_id(self.source, doc_key=self._key(root, topic, number))

    def _root(self, response: Response) -> str:
        parts = urlsplit(response.url)
        return f"{parts.scheme}://{parts.netloc}"

    def _json(self, response: Response) -> dict[str, Any] | None:
        try:
            data = json.loads(response.text)
        except ValueError as e:
            self.ctx.error(response.url, f"not JSON: {e}")
            return None
        if not isinstance(data, dict):
            self.ctx.error(response.url, "unexpected JSON (expected an object)")
            return None
        return data
