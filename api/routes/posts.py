"""Post search, one post with its context, and streaming export."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Annotated, Literal

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Body, HTTPException, Path, Request
from fastapi import Query as Q
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from api import corrections as corr
from api.deps import (
    EngineDep,
    FiltersDep,
    PrincipalDep,
    SearchDep,
    SettingsDep,
    StoreDep,
    build_query,
)
from api.errors import PROBLEM_RESPONSES, STORE_PROBLEMS, param_problem, problems
from api.security import API, GuardedRoute, audit
from index.base import Query, SearchPage, Store
from yuqing.records import Post

router = APIRouter(prefix=f"{API}/posts", tags=["posts"], route_class=GuardedRoute, responses=STORE_PROBLEMS)

EXPORT_PAGE = 500
EXPORT_CONCURRENT_PER_TOKEN = 2
EXPORT_PER_HOUR_PER_TOKEN = 30
POST_ID = Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="document id", examples=["3f2a9c0d1e4b5a6f7788990011223344"])


@router.get(
    "",
    response_model=SearchPage,
    summary="Search posts",
    description="Filters combine with AND; list filters take several values (OR). Results are newest "
    "first unless `sort` says otherwise; `next_cursor` fetches the following page with the same filters.",
)
async def search_posts(query: SearchDep, store: StoreDep) -> SearchPage:
    return await anyio.to_thread.run_sync(store.search, query)


class PostContext(BaseModel):
    """A post and what it answers or copies, so a reader sees the conversation, not a fragment."""

    post: Post
    reply_to: Post | None = None
    repost_of: Post | None = None
    cluster_size: int = Field(description="how many identical copies were folded into this story")
    corrected: CorrectedLabels = Field(
        default_factory=lambda: CorrectedLabels(),
        description="labels analysts set, in force over the model's `post.classification` (null: not corrected)",
    )
    corrections: list[corr.Correction] = Field(default_factory=list, description="every correction, newest first")


class CorrectedLabels(BaseModel):
    sentiment: Literal["negative", "neutral", "positive"] | None = None
    topics: list[str] | None = None
    rumor: bool | None = None


PostContext.model_rebuild()


def _context(store: Store, engine: sa.Engine, post_id: str) -> PostContext | None:
    post = store.get(post_id)
    if post is None:
        return None
    history = corr.for_post(engine, post_id)
    return PostContext(
        post=post,
        reply_to=store.get(post.reply_to) if post.reply_to else None,
        repost_of=store.get(post.repost_of) if post.repost_of else None,
        cluster_size=post.cluster_size,
        corrected=CorrectedLabels(**corr.in_force(history)),
        corrections=history,
    )


class ExportLimiter:
    """Per-token limits on exports: a few at once and so many per hour. Exports walk the whole
    index; unbounded, one script could starve the duty officer's console."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[int, int] = defaultdict(int)
        self._recent: dict[int, deque[float]] = defaultdict(deque)

    def acquire(self, token_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            recent = self._recent[token_id]
            while recent and now - recent[0] > 3600:
                recent.popleft()
            if self._active[token_id] >= EXPORT_CONCURRENT_PER_TOKEN:
                raise HTTPException(429, f"at most {EXPORT_CONCURRENT_PER_TOKEN} exports may run at once per token",
                                    headers={"Retry-After": "10"})
            if len(recent) >= EXPORT_PER_HOUR_PER_TOKEN:
                wait = int(3600 - (now - recent[0])) + 1
                raise HTTPException(429, f"at most {EXPORT_PER_HOUR_PER_TOKEN} exports per hour per token",
                                    headers={"Retry-After": str(wait)})
            self._active[token_id] += 1
            recent.append(now)

    def release(self, token_id: int) -> None:
        with self._lock:
            self._active[token_id] = max(0, self._active[token_id] - 1)


CSV_FIELDS = [
    "id", "published_at", "source", "platform", "source_tier", "lang", "author_id", "author_name", "title",
    "text", "url", "sentiment", "rumor", "topics", "watchlists", "cluster_size", "reposts", "comments", "likes",
]


def _csv_safe(value: object) -> str:
    """Spreadsheet formula injection: a cell starting with = + - @ runs as a formula in Excel.
    Post text is hostile, so such cells get a leading apostrophe."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def _csv_row(p: Post) -> list[str]:
    c = p.classification
    row: list[object] = [
        p.id, p.published_at.isoformat(), p.source, p.platform, p.source_tier.value, p.lang, p.author.id,
        p.author.name, p.title, p.text, p.url, c.sentiment if c else None, c.rumor if c else None,
        ";".join(t.topic for t in c.topics) if c else None, ";".join(p.watchlists), p.cluster_size,
        p.engagement.reposts, p.engagement.comments, p.engagement.likes,
    ]
    return [_csv_safe(v) for v in row]


def _export_lines(store: Store, query: Query, fmt: str, limiter: ExportLimiter, token_id: int) -> Iterator[bytes]:
    """Page through the store with its cursor: memory stays at one page whatever the total."""
    try:
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            buf.write("\ufeff")  # so Excel reads UTF-8 Chinese and Arabic correctly
            writer.writerow(CSV_FIELDS)
            yield buf.getvalue().encode()
        q = query.model_copy(update={"size": EXPORT_PAGE, "highlight": False, "cursor": None})
        while True:
            page = store.search(q)
            buf = io.StringIO()
            if fmt == "csv":
                writer = csv.writer(buf)
                for hit in page.hits:
                    writer.writerow(_csv_row(hit.post))
            else:
                for hit in page.hits:
                    buf.write(hit.post.model_dump_json())
                    buf.write("\n")
            yield buf.getvalue().encode("utf-8")
            if not page.next_cursor or not page.hits:
                break
            q = q.model_copy(update={"cursor": page.next_cursor})
    finally:
        limiter.release(token_id)


@router.get(
    "/export",
    summary="Export every post matching a query (CSV or JSONL, streamed)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}}, **problems(429, _429="export limit reached")},
)
async def export_posts(
    request: Request,
    filters: FiltersDep,
    store: StoreDep,
    principal: PrincipalDep,
    format: Annotated[Literal["csv", "jsonl"], Q(description="csv (UTF-8 with BOM) or jsonl (one Post per line)")] = "jsonl",
    sort: Annotated[Literal["time", "engagement", "rumor"], Q()] = "time",
) -> StreamingResponse:
    query = build_query(**filters, sort=sort, size=EXPORT_PAGE)
    limiter: ExportLimiter = request.app.state.export_limiter
    limiter.acquire(principal.token_id)
    try:
        await anyio.to_thread.run_sync(
            audit, request.app.state.engine, principal.name, "posts.export", None,
            json.dumps({"format": format, "query": query.model_dump(mode="json", exclude_none=True)}, ensure_ascii=False),
        )
    except Exception:
        limiter.release(principal.token_id)
        raise
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    media = "text/csv; charset=utf-8" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(
        _export_lines(store, query, format, limiter, principal.token_id),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="posts-{stamp}.{format}"'},
    )


@router.get("/{post_id}", response_model=PostContext, summary="One post with what it replies to or reposts",
            responses=problems(404, _404="no such post"))
async def get_post(post_id: Annotated[str, POST_ID], store: StoreDep, engine: EngineDep) -> PostContext:
    ctx = await anyio.to_thread.run_sync(_context, store, engine, post_id)
    if ctx is None:
        raise HTTPException(404, f"no post with id {post_id}")
    return ctx


# -- evidence --------------------------------------------------------------------------------


class CaptureInfo(BaseModel):
    """One raw capture of the page a post came from (the record survives the author deleting
    it). The bytes are served by GET /posts/{post_id}/evidence/{sha256}."""

    sha256: str
    url: str
    status: int
    captured_at: datetime
    content_type: str | None
    size: int


SHA256 = Path(pattern=r"^[0-9a-f]{64}$", description="the capture's SHA-256")


@router.get("/{post_id}/evidence", response_model=list[CaptureInfo], summary="The raw captures kept for a post",
            responses=problems(404, _404="no such post"))
async def list_evidence(post_id: Annotated[str, POST_ID], store: StoreDep, engine: EngineDep) -> list[CaptureInfo]:
    from crawlers.evidence import captures

    found = await anyio.to_thread.run_sync(captures, engine, post_id)
    if not found and await anyio.to_thread.run_sync(store.get, post_id) is None:
        raise HTTPException(404, f"no post with id {post_id}")
    return [CaptureInfo(sha256=c.sha256, url=c.url, status=c.status, captured_at=c.captured_at,
                        content_type=c.content_type, size=c.size) for c in found]


@router.get("/{post_id}/evidence/{sha256}", summary="One raw capture, as served, for download",
            response_class=Response, responses=problems(404, _404="no such capture for this post"))
async def get_evidence(post_id: Annotated[str, POST_ID], sha256: Annotated[str, SHA256], engine: EngineDep) -> Response:
    """The bytes are hostile public content: sent as a download, never rendered by the
    console's origin (octet-stream, attachment, a sandboxing CSP, nosniff)."""
    from crawlers.evidence import captures

    found = [c for c in await anyio.to_thread.run_sync(captures, engine, post_id) if c.sha256 == sha256]
    if not found:
        raise HTTPException(404, f"no capture {sha256} for post {post_id}")
    ext = "json" if (found[0].content_type or "").startswith("application/json") else "html"
    return Response(
        found[0].body,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{post_id}-{sha256[:12]}.{ext}"',
                 "Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff"},
    )


# -- corrections -------------------------------------------------------------------------------


class CorrectionBody(BaseModel):
    """Give one or more of sentiment, topics, rumor. Each becomes a correction of its own."""

    sentiment: Literal["negative", "neutral", "positive"] | None = None
    topics: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=20, description="the complete set of topics the post belongs to ([] for none)")
    rumor: bool | None = Field(default=None, description="true: the post spreads a rumour; false: it does not")
    note: str | None = Field(default=None, max_length=2000, description="why (kept with the correction)")


@router.post(
    "/{post_id}/corrections",
    response_model=list[corr.Correction],
    status_code=201,
    summary="Correct a post's sentiment, topics or rumour label",
    description="Stored with who and when, shown on GET /posts/{post_id}, exported for training by "
    "`yuqing export-labels`. Topics must be names from the configured taxonomy when one is configured.",
    responses=problems(404, _404="no such post"),
)
async def correct_post(
    post_id: Annotated[str, POST_ID], body: Annotated[CorrectionBody, Body()], store: StoreDep, engine: EngineDep,
    settings: SettingsDep, principal: PrincipalDep,
) -> list[corr.Correction]:
    changes = {k: v for k, v in body.model_dump(exclude={"note"}).items() if v is not None}
    if not changes:
        raise param_problem("body", "body", "give at least one of sentiment, topics, rumor")
    if "topics" in changes:
        changes["topics"] = sorted({t.strip() for t in changes["topics"] if t.strip()})
        known = {t.name for t in settings.topics}
        unknown = [t for t in changes["topics"] if known and t not in known]
        if unknown:
            raise param_problem("topics", "body", f"not topics of the configured taxonomy: {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(known))})")
    post = await anyio.to_thread.run_sync(store.get, post_id)
    if post is None:
        raise HTTPException(404, f"no post with id {post_id}")
    note = body.note.strip() if body.note and body.note.strip() else None
    return await anyio.to_thread.run_sync(lambda: corr.add(engine, post, principal.name, changes, note))


corrections_router = APIRouter(prefix=f"{API}/corrections", tags=["posts"], route_class=GuardedRoute,
                               responses=PROBLEM_RESPONSES)


@corrections_router.get(
    "",
    response_model=list[corr.Correction],
    summary="All corrections in the order they were made (for review); page with after_id",
)
async def list_corrections(
    engine: EngineDep,
    after_id: Annotated[int, Q(ge=0, le=2**62, description="corrections with a larger id")] = 0,
    field: Annotated[Literal["sentiment", "topics", "rumor"] | None, Q()] = None,
    limit: Annotated[int, Q(ge=1, le=500)] = 100,
) -> list[corr.Correction]:
    return await anyio.to_thread.run_sync(lambda: corr.listing(engine, after_id=after_id, limit=limit, field=field))
