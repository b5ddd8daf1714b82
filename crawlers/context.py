"""Everything one crawl of one source shares between its spider, middlewares and pipelines.

Scrapy copies its settings deeply, so live objects (the database engine, the pseudonym key, the
compiled watchlists) cannot travel in them; the spider receives one `RunContext` as an argument
and the middlewares and pipelines reach it through `crawler.spider.ctx`.

Every problem goes through `error()` / `warn()`, which log one line naming the source and the
URL and keep it for the run's report, so an operator reads "source gov-feed-zh:
http://…/a/3.html: HTTP 500" instead of a traceback.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Engine

from crawlers.disappearance import LISTINGS, prune
from crawlers.matching import Matcher
from crawlers.state import Cursor
from yuqing.config import Settings, SourceConfig

log = logging.getLogger("crawlers")

# report counters, in the order the report prints them
COUNTERS = (
    "fetched",  # posts extracted from the source this run (new to the cursor)
    "matched",  # of those, kept by a watchlist
    "enqueued",  # of those, newly committed to the inbox
    "duplicates",  # matched, but the inbox already had the document id
    "folded",  # enqueued into an existing identical-text cluster
    "unmatched",  # dropped: no watchlist term
    "invalid",  # dropped: no text, or not a valid Post
    "skipped_seen",  # not fetched again: already handled by an earlier run
    "not_modified",  # feed / listing URLs answered 304
    "rechecked",  # known posts (or thread pages holding them) re-requested: still there?
    "disappeared",  # known posts found gone (404/410, a soft 404, gone from their listing)
    "reappeared",  # posts marked gone that were found again: un-marked
    "pages",  # responses parsed
    "errors",  # problems (each also in messages)
)


@dataclass
class RunContext:
    settings: Settings
    source: SourceConfig
    engine: Engine
    pseudonym_key: bytes
    matcher: Matcher
    cursor: Cursor
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    counts: Counter[str] = field(default_factory=Counter)
    messages: list[str] = field(default_factory=list)
    # validators of responses this run, saved to the cursor only if the run wrote everything
    new_validators: dict[str, dict[str, str]] = field(default_factory=dict)
    newly_seen: dict[str, str] = field(default_factory=dict)
    # other cursor keys (forum resume points, since-ids), saved under the same rule as validators
    new_extra: dict[str, Any] = field(default_factory=dict)
    # doc id -> the Match of the thread or post a reply belongs to (see MatchPipeline)
    inherited: dict[str, Any] = field(default_factory=dict)
    # doc id -> the captures (crawlers.evidence.Capture) of its pages, normaliser -> inbox stage
    captures: dict[str, Any] = field(default_factory=dict)
    # re-checks this run: doc id -> when it was found gone / still there
    gone: dict[str, datetime] = field(default_factory=dict)
    still_there: dict[str, datetime] = field(default_factory=dict)
    # posts some listing showed this run (a post shown anywhere is not gone; one marked gone
    # before is back), and the doc ids marked gone before this run (read at the start)
    present: dict[str, datetime] = field(default_factory=dict)
    was_gone: dict[str, str | None] = field(default_factory=dict)  # doc id -> URL
    # re-checks whose only sign of "gone" is the page's text (see InboxPipeline.close_spider)
    gone_by_text: set[str] = field(default_factory=set)
    gone_why: dict[str, tuple[str | None, str]] = field(default_factory=dict)  # doc id -> (url, why)
    # posts gone with their whole container (a deleted thread or topic), how many containers
    # were found gone, and how many answered with their posts (see record_disappearance)
    gone_by_container: set[str] = field(default_factory=set)
    containers_gone: int = 0
    containers_ok: int = 0
    rechecked_ok: int = 0  # re-checks answered 200
    first_error: str | None = None  # for the source's `last_error`
    close_reason: str | None = None  # Scrapy's: "finished" unless stopped (signal, time limit)
    start_failed: bool = False  # the source's own URL could not be fetched at all
    inbox_failed: bool = False  # at least one matched post could not be written

    @property
    def tz(self) -> str:
        return self.source.timezone or self.settings.timezone

    @property
    def name(self) -> str:
        return self.source.name

    # -- reporting ------------------------------------------------------------------------
    def error(self, url: str | None, what: str) -> None:
        self.counts["errors"] += 1
        msg = f"source {self.name}: {url}: {what}" if url else f"source {self.name}: {what}"
        self.messages.append(msg)
        self.first_error = self.first_error or msg
        log.error(msg)

    def warn(self, url: str | None, what: str) -> None:
        msg = f"source {self.name}: {url}: {what}" if url else f"source {self.name}: {what}"
        self.messages.append(msg)
        log.warning(msg)

    def info(self, url: str | None, what: str) -> None:
        msg = f"source {self.name}: {url}: {what}" if url else f"source {self.name}: {what}"
        self.messages.append(msg)
        log.info(msg)

    # -- incremental ----------------------------------------------------------------------
    def seen(self, doc_id: str) -> bool:
        return doc_id in self.cursor.seen or doc_id in self.newly_seen

    def mark_seen(self, doc_id: str) -> None:
        if doc_id not in self.cursor.seen:
            self.newly_seen.setdefault(doc_id, datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def complete(self) -> bool:
        """The run handled everything it fetched: it finished (was not stopped half-way) and
        every post reached the inbox."""
        return self.close_reason == "finished" and not self.inbox_failed

    def final_cursor(self) -> Cursor:
        """The cursor to store: the seen-set always grows (posts in it are in the inbox or were
        judged); HTTP validators and resume points move on only after a complete run, else the
        next run would get a 304 for a feed whose entries this run never finished."""
        seen = {**self.cursor.seen, **self.newly_seen}
        http = dict(self.cursor.http)
        extra = dict(self.cursor.extra)
        if self.complete:
            http.update(self.new_validators)
            for key, value in self.new_extra.items():
                if isinstance(value, dict) and isinstance(extra.get(key), dict):
                    extra[key] = {**extra[key], **value}
                else:
                    extra[key] = value
        if isinstance(extra.get(LISTINGS), dict):
            extra[LISTINGS] = prune(extra[LISTINGS], datetime.now(timezone.utc),
                                    float(self.source.options.get("recheck_days", 7)))
        stats = dict(self.cursor.stats)
        last = {k: self.counts.get(k, 0) for k in COUNTERS}
        totals = dict(stats.get("totals", {}))
        for k, v in last.items():
            totals[k] = int(totals.get(k, 0)) + v
        stats.update({"last_run": last, "totals": totals})
        return Cursor(http=http, seen=seen, stats=stats, extra=extra)
