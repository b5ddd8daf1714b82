"""Evidence: the raw capture of every matched post, kept for the retention period, and the
record of posts that disappeared.

- A `Capture` is one response as served (URL, status, content type, the body's bytes after
  HTTP decompression). `CaptureMiddleware` (`crawlers.middlewares`) attaches the capture of
  the page an item came from to the item; a feed entry whose article was fetched carries both
  the feed's and the article's.
- `record()` stores the captures of a batch of matched posts before they are committed to the
  inbox: each body once, content-addressed by the SHA-256 of the raw bytes, compressed (zstd,
  which Scrapy already depends on through `backports.zstd`; zlib when it is missing; the codec
  is kept per row), in the state database table `evidence`; `post_evidence` maps each post to
  its captures, and `crawled_posts` keeps one row per post for re-checks.
- Storage is a table, not files under the data directory: crawler processes may run on several
  machines (`yuqing crawler`) and the API must read a capture wherever it was taken; the state
  database is already shared, backed up, and transactional (a post is never recorded without
  its capture, retention is one statement, no orphan files). Captures are small once
  compressed (a news page ~15-40 KB, pages over 16 MiB are refused by the crawler) and shared:
  a thread or API page with twenty posts is stored once.
- Re-checks: every run re-requests up to `options.recheck_max` (default 20; 0 turns it off)
  known posts whose own URL was fetched (`direct`), first seen within `options.recheck_days`
  (default 7) and not checked for `options.recheck_after` hours (default 6), oldest check
  first. A 404 or 410 (or a body matching `options.gone_text`, a regex, for sites that answer
  200 "this post was deleted") marks the post disappeared at the time of that response:
  `crawled_posts.disappeared_at`, and the post is put back in the inbox with
  `Post.disappeared_at` so the worker re-indexes it. Its captures stay. A 200 that means "gone"
  (a redirect to the home page, a JSON error body, a page whose main text no longer holds the
  post) counts too (`crawlers.disappearance.soft_gone_reason`).
- Posts with no page of their own (forum replies, Discourse posts, Telegram messages, API
  posts) are found gone from their container's listings, or with their whole container (a
  known thread or topic that answers 404/410) (`crawlers.disappearance`). API posts of a
  source with `recheck_url` are re-checked one by one at that JSON endpoint
  (`due_rechecks(direct=False)`, `crawlers.spiders.api`).
- Posts already marked gone stay due for re-checks while within `recheck_days`: one that is
  found again is un-marked (`mark_reappeared`: `disappeared_at` cleared, re-queued).
- `purge(settings, engine, cutoff)` is the retention job's entry point.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from yuqing.records import Post
from yuqing.state.inbox import Inbox
from yuqing.state.schema import crawled_posts, evidence, post_evidence

if TYPE_CHECKING:
    from yuqing.config import Settings

log = logging.getLogger(__name__)

try:  # Python 3.14's compression.zstd, or its backport (a Scrapy dependency)
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the interpreter
    try:
        from backports import zstd as _zstd  # type: ignore[no-redef]
    except ImportError:
        _zstd = None

CODEC = "zstd" if _zstd is not None else "zlib"
ZSTD_LEVEL = 6  # ~5x on HTML at ~50 MB/s on one core
GONE_STATUSES = (404, 410)


def compress(data: bytes, codec: str = CODEC) -> bytes:
    if codec == "zstd":
        if _zstd is None:
            raise RuntimeError("zstd is not available in this environment")
        return _zstd.compress(data, level=ZSTD_LEVEL)
    if codec == "zlib":
        return zlib.compress(data, 6)
    raise ValueError(f"unknown evidence codec {codec!r}")


def decompress(data: bytes, codec: str) -> bytes:
    if codec == "zstd":
        if _zstd is None:
            raise RuntimeError("this capture is zstd-compressed and zstd is not available here")
        return _zstd.decompress(data)
    if codec == "zlib":
        return zlib.decompress(data)
    raise ValueError(f"unknown evidence codec {codec!r}")


@dataclass(eq=False)
class Capture:
    """One response as served. `urls`: every URL it answered for (the request and any
    redirects), to tell whether a post's own URL was fetched."""

    url: str
    status: int
    content_type: str | None
    body: bytes
    fetched_at: datetime
    urls: tuple[str, ...] = ()
    _sha: str | None = field(default=None, repr=False)

    @property
    def sha256(self) -> str:
        if self._sha is None:
            self._sha = hashlib.sha256(self.body).hexdigest()
        return self._sha


def capture_of(response: Any) -> Capture:
    """The `Capture` of a Scrapy response."""
    ctype = response.headers.get(b"Content-Type")
    request = getattr(response, "request", None)
    meta = getattr(request, "meta", None) or {}
    urls = tuple(dict.fromkeys([*(meta.get("redirect_urls") or []), response.url]))
    return Capture(
        url=response.url,
        status=int(response.status),
        content_type=ctype.decode("latin-1")[:200] if ctype else None,
        body=bytes(response.body),
        fetched_at=datetime.now(timezone.utc),
        urls=urls,
    )


@dataclass(frozen=True)
class StoredCapture:
    sha256: str
    url: str
    status: int
    captured_at: datetime
    content_type: str | None
    size: int
    body: bytes


def _insert(engine_or_conn: Engine | Connection):  # type: ignore[no-untyped-def]
    if engine_or_conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def record(
    engine: Engine, source: str, posts: Sequence[tuple[Post, Sequence[Capture]]], now: datetime | None = None
) -> int:
    """Store the captures of matched posts (each body once, compressed) and map each post to
    them; note each post in `crawled_posts`. One transaction. Returns captures newly stored."""
    from yuqing.ids import canonical_url

    now = now or datetime.now(timezone.utc)
    insert = _insert(engine)
    bodies: dict[str, Capture] = {}
    links: dict[tuple[str, str], dict[str, Any]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for post, captures in posts:
        direct = False
        for cap in captures:
            bodies.setdefault(cap.sha256, cap)
            links.setdefault((post.id, cap.sha256), {
                "doc_id": post.id, "sha256": cap.sha256, "url": cap.url, "status": cap.status,
                "captured_at": cap.fetched_at,
            })
            if post.url and not direct:
                direct = any(canonical_url(u) == post.url for u in (cap.urls or (cap.url,)))
        prev = rows.get(post.id)
        rows[post.id] = {
            "doc_id": post.id, "source": source, "url": post.url, "direct": direct or bool(prev and prev["direct"]),
            "first_seen": now, "last_seen": now,
        }
    if not rows:
        return 0
    new = 0
    with engine.begin() as conn:
        if bodies:
            have = set(conn.execute(sa.select(evidence.c.sha256).where(evidence.c.sha256.in_(list(bodies)))).scalars())
            fresh = [
                {"sha256": sha, "codec": CODEC, "size": len(cap.body), "content_type": cap.content_type,
                 "data": compress(cap.body), "created_at": now}
                for sha, cap in bodies.items() if sha not in have
            ]
            if fresh:
                conn.execute(insert(evidence).on_conflict_do_nothing(), fresh)
                new = len(fresh)
        if links:
            conn.execute(insert(post_evidence).on_conflict_do_nothing(), list(links.values()))
        stmt = insert(crawled_posts)
        stmt = stmt.on_conflict_do_update(
            index_elements=["doc_id"],
            set_={"last_seen": stmt.excluded.last_seen,
                  "direct": sa.or_(crawled_posts.c.direct, stmt.excluded.direct)},
        )
        conn.execute(stmt, list(rows.values()))
    return new


def captures(engine: Engine, doc_id: str) -> list[StoredCapture]:
    """The captures of a post, oldest first, decompressed (for the API, an export, a test)."""
    q = (
        sa.select(post_evidence.c.sha256, post_evidence.c.url, post_evidence.c.status, post_evidence.c.captured_at,
                  evidence.c.content_type, evidence.c.size, evidence.c.codec, evidence.c.data)
        .join(evidence, evidence.c.sha256 == post_evidence.c.sha256)
        .where(post_evidence.c.doc_id == doc_id)
        .order_by(post_evidence.c.captured_at, post_evidence.c.sha256)
    )
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [StoredCapture(r.sha256, r.url, r.status, r.captured_at, r.content_type, r.size, decompress(r.data, r.codec))
            for r in rows]


# -- re-checks and disappearance -------------------------------------------------------------
@dataclass(frozen=True)
class Recheck:
    doc_id: str
    url: str


def due_rechecks(engine: Engine, source: str, options: dict[str, Any], now: datetime | None = None,
                 *, direct: bool = True) -> list[Recheck]:
    """Known posts of `source` to re-request this run (see the module docstring): those whose
    own URL was fetched (`direct`), or, with `direct=False`, those seen only in a listing (API
    posts that a `recheck_url` can look up one by one)."""
    limit = int(options.get("recheck_max", 20))
    if limit <= 0:
        return []
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=float(options.get("recheck_days", 7)))
    before = now - timedelta(hours=float(options.get("recheck_after", 6)))
    last = sa.func.coalesce(crawled_posts.c.checked_at, crawled_posts.c.last_seen)
    q = (
        sa.select(crawled_posts.c.doc_id, crawled_posts.c.url)
        .where(crawled_posts.c.source == source, crawled_posts.c.direct.is_(direct),
               *((crawled_posts.c.url.is_not(None),) if direct else ()),
               crawled_posts.c.first_seen >= since, last <= before)
        .order_by(last, crawled_posts.c.doc_id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [Recheck(r.doc_id, r.url) for r in conn.execute(q)]


def mark_checked(engine: Engine, seen: dict[str, datetime], *, there: bool = True) -> None:
    """Posts a re-check found still there (`there`), or still gone: either way not due again
    before `recheck_after` (a post still gone must not hold the queue's head for ever)."""
    if not seen:
        return
    with engine.begin() as conn:
        for doc_id, at in seen.items():
            values = {"checked_at": at, "last_seen": at} if there else {"checked_at": at}
            conn.execute(crawled_posts.update().where(crawled_posts.c.doc_id == doc_id).values(**values))


def mark_disappeared(engine: Engine, gone: dict[str, datetime], now: datetime | None = None) -> list[str]:
    """Record posts found gone (doc id -> when) and put each back in the inbox with
    `Post.disappeared_at`, so the worker re-indexes it (the index upserts by document id).
    A post already marked keeps its first time. Returns the doc ids newly marked."""
    return _set_disappeared(engine, gone, gone=True, now=now)


def mark_reappeared(engine: Engine, back: dict[str, datetime], now: datetime | None = None) -> list[str]:
    """Posts marked gone that were found again (doc id -> when): `disappeared_at` cleared and
    the post re-queued with `Post.disappeared_at` None, so the index shows it live again.
    Returns the doc ids un-marked."""
    return _set_disappeared(engine, back, gone=False, now=now)


def _set_disappeared(engine: Engine, seen: dict[str, datetime], gone: bool, now: datetime | None) -> list[str]:
    """One transaction: flip each post's state row (only if it is not already in that state)
    and re-queue the changed ones through the inbox. Past the inbox's retention `revise` finds
    nothing: the state row says it all the same."""
    now = now or datetime.now(timezone.utc)
    changed: list[str] = []
    col = crawled_posts.c.disappeared_at
    with engine.begin() as conn:
        for doc_id, at in seen.items():
            values = {"disappeared_at": at, "checked_at": at} if gone else {"disappeared_at": None, "checked_at": at,
                                                                           "last_seen": at}
            n = conn.execute(
                crawled_posts.update()
                .where(crawled_posts.c.doc_id == doc_id, col.is_(None) if gone else col.is_not(None))
                .values(**values)
            ).rowcount
            if n:
                changed.append(doc_id)
                Inbox(engine).revise(doc_id, {"disappeared_at": at if gone else None}, conn=conn, now=now)
    return changed


def stored_post(engine: Engine, doc_id: str) -> Post | None:
    """The post as it was crawled (its inbox payload); None past the inbox's retention."""
    from yuqing.state.schema import inbox

    with engine.connect() as conn:
        payload = conn.execute(sa.select(inbox.c.payload).where(inbox.c.doc_id == doc_id)).scalar()
    if payload is None:
        return None
    try:
        return Post.model_validate_json(payload)
    except ValueError:
        return None


def stored_text(engine: Engine, doc_id: str) -> str | None:
    """The text a post had when it was crawled, to tell on a re-check whether the page still
    holds it; None past the inbox's retention."""
    post = stored_post(engine, doc_id)
    return post.text if post is not None else None


def disappeared_urls(engine: Engine, source: str) -> dict[str, str | None]:
    """Doc id -> URL of the posts of `source` marked gone (to notice one that comes back)."""
    q = sa.select(crawled_posts.c.doc_id, crawled_posts.c.url).where(
        crawled_posts.c.source == source, crawled_posts.c.disappeared_at.is_not(None))
    with engine.connect() as conn:
        return {r.doc_id: r.url for r in conn.execute(q)}


def disappeared(engine: Engine, source: str | None = None) -> dict[str, datetime]:
    """Doc id -> when it was found gone (for a source, or all)."""
    q = sa.select(crawled_posts.c.doc_id, crawled_posts.c.disappeared_at).where(crawled_posts.c.disappeared_at.is_not(None))
    if source:
        q = q.where(crawled_posts.c.source == source)
    with engine.connect() as conn:
        return {r.doc_id: r.disappeared_at for r in conn.execute(q)}


# -- retention -------------------------------------------------------------------------------
def purge(settings: "Settings", engine: Engine, cutoff: datetime) -> int:
    """Retention (called daily by the retention job with `yuqing.privacy.retention_cutoff`):
    forget post -> capture links captured before `cutoff`, captures no post links to any more,
    crawled-post rows not seen since `cutoff`, and near-duplicate signatures older than it.
    Returns the number of captures deleted."""
    del settings  # the cutoff already carries privacy.retention_days
    with engine.begin() as conn:
        conn.execute(post_evidence.delete().where(post_evidence.c.captured_at < cutoff))
        linked = sa.select(post_evidence.c.sha256).where(post_evidence.c.sha256 == evidence.c.sha256)
        n = conn.execute(evidence.delete().where(~sa.exists(linked))).rowcount
        conn.execute(crawled_posts.delete().where(crawled_posts.c.last_seen < cutoff))
    Inbox(engine).purge_near_dups(cutoff)
    return int(n or 0)


def stored_bytes(engine: Engine) -> dict[str, int]:
    """Figures for an operator: captures, raw and stored bytes."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(evidence.c.size), 0),
                                     sa.func.coalesce(sa.func.sum(sa.func.length(evidence.c.data)), 0))).one()
    return {"captures": int(row[0]), "raw_bytes": int(row[1]), "stored_bytes": int(row[2])}


def iter_links(engine: Engine, doc_ids: Iterable[str]) -> dict[str, list[str]]:
    """Doc id -> sha256 of its captures."""
    ids = list(doc_ids)
    out: dict[str, list[str]] = {d: [] for d in ids}
    if not ids:
        return out
    with engine.connect() as conn:
        for r in conn.execute(sa.select(post_evidence.c.doc_id, post_evidence.c.sha256)
                              .where(post_evidence.c.doc_id.in_(ids))):
            out[r.doc_id].append(r.sha256)
    return out
