"""The crawl queue between the scheduler and the crawler processes.

The scheduler only *requests* a crawl (`request`); any number of crawler processes claim
requests (`claim`: one `UPDATE ... WHERE id = (SELECT ... [FOR UPDATE SKIP LOCKED]) RETURNING`,
the same pattern as the inbox) and run them. A partial unique index allows one pending-or-running
request per source, so a due run while the last one is still going coalesces into it and a
source is never crawled twice at once. A crawler that dies keeps its request only until its
lease runs out; then another takes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from yuqing.state.inbox import utcnow
from yuqing.state.schema import crawl_queue


@dataclass(frozen=True)
class CrawlRequest:
    id: int
    source: str
    attempts: int


class CrawlQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def request(self, source: str, now: datetime | None = None) -> bool:
        """Ask for a crawl of `source`; False when one is already pending or running."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = (
            insert(crawl_queue)
            .values(source=source, status="pending", requested_at=now or utcnow())
            .on_conflict_do_nothing(
                # literal, as in the index: PostgreSQL matches the predicate text, not parameters
                index_elements=["source"], index_where=sa.text("status IN ('pending', 'running')")
            )
            .returning(crawl_queue.c.id)
        )
        with self.engine.begin() as conn:
            return conn.execute(stmt).scalar() is not None

    def claim(self, worker: str, lease: timedelta, now: datetime | None = None) -> CrawlRequest | None:
        """Take the oldest pending request (or a running one whose crawler's lease ran out)."""
        now = now or utcnow()
        claimable = sa.or_(
            crawl_queue.c.status == "pending",
            sa.and_(crawl_queue.c.status == "running", crawl_queue.c.lease_until < now),
        )
        pick = sa.select(crawl_queue.c.id).where(claimable).order_by(crawl_queue.c.id).limit(1)
        if self.engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            crawl_queue.update()
            .where(crawl_queue.c.id == pick.scalar_subquery())
            .values(status="running", claimed_by=worker, started_at=now, lease_until=now + lease,
                    attempts=crawl_queue.c.attempts + 1)
            .returning(crawl_queue.c.id, crawl_queue.c.source, crawl_queue.c.attempts)
        )
        with self.engine.begin() as conn:
            row = conn.execute(stmt).first()
        return CrawlRequest(row.id, row.source, row.attempts) if row else None

    def finish(self, request_id: int, worker: str, ok: bool, report: dict[str, Any], now: datetime | None = None) -> bool:
        """Record the outcome; False when the request was taken over after this lease ran out."""
        with self.engine.begin() as conn:
            res = conn.execute(
                crawl_queue.update()
                .where(crawl_queue.c.id == request_id, crawl_queue.c.claimed_by == worker,
                       crawl_queue.c.status == "running")
                .values(status="done" if ok else "failed", finished_at=now or utcnow(), lease_until=None,
                        report=json.dumps(report, ensure_ascii=False, default=str))
            )
        return res.rowcount == 1

    def purge(self, older_than: datetime) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                crawl_queue.delete().where(crawl_queue.c.status.in_(["done", "failed"]),
                                           crawl_queue.c.finished_at < older_than)
            ).rowcount
