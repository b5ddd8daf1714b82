"""The durable inbox between the crawlers and the classify/index worker.

A crawler writes each matched post here before anything else happens to it, so a crash after
the fetch never loses it. Workers claim batches with a lease: a claim is one
`UPDATE ... WHERE id IN (SELECT ... [FOR UPDATE SKIP LOCKED]) RETURNING` statement, so several
workers on PostgreSQL never take the same post, and on SQLite the statement is atomic under the
database's write lock. A worker that dies holding a batch loses its lease; the batch becomes
claimable again after `lease` and is re-processed. Indexing is idempotent by document id, so
re-processing indexes each post exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from yuqing.records import Post
from yuqing.state.schema import clusters, inbox


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Enqueued:
    """What happened to one offered post."""

    doc_id: str
    accepted: bool  # False: this document id was already in the inbox (a re-fetch)
    cluster_id: str | None
    cluster_size: int


@dataclass(frozen=True)
class Claimed:
    inbox_id: int
    attempts: int
    post: Post


class Inbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- producer side --------------------------------------------------------------------
    def _insert(self):  # type: ignore[no-untyped-def]
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert

    def enqueue(self, posts: Iterable[Post], now: datetime | None = None) -> list[Enqueued]:
        """Store posts durably. A document id seen before is rejected on insert (idempotent
        re-crawl, safe against concurrent crawlers); a text seen before joins that text's
        cluster, whose size grows (identical copies fold into one story). Commits before
        returning."""
        now = now or utcnow()
        insert = self._insert()
        out: list[Enqueued] = []
        with self.engine.begin() as conn:
            for post in posts:
                new_id = conn.execute(
                    insert(inbox)
                    .values(
                        doc_id=post.id,
                        source=post.source,
                        payload=post.model_dump_json(),
                        status="pending",
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["doc_id"])
                    .returning(inbox.c.id)
                ).scalar()
                if new_id is None:
                    out.append(Enqueued(post.id, False, post.cluster_id, post.cluster_size))
                    continue
                if post.text_hash:
                    stmt = insert(clusters).values(
                        text_hash=post.text_hash, cluster_id=post.id, size=1, first_seen=now, last_seen=now
                    )
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["text_hash"],
                        set_={"size": clusters.c.size + 1, "last_seen": now},
                    ).returning(clusters.c.cluster_id, clusters.c.size)
                    row = conn.execute(stmt).one()
                    post = post.model_copy(update={"cluster_id": row.cluster_id, "cluster_size": row.size})
                    conn.execute(inbox.update().where(inbox.c.id == new_id).values(payload=post.model_dump_json()))
                out.append(Enqueued(post.id, True, post.cluster_id, post.cluster_size))
        return out

    # -- consumer side --------------------------------------------------------------------
    def claim(self, worker: str, limit: int, lease: timedelta, now: datetime | None = None) -> list[Claimed]:
        """Take up to `limit` pending posts (or posts whose lease ran out) for `worker`."""
        now = now or utcnow()
        claimable = sa.or_(
            inbox.c.status == "pending",
            sa.and_(inbox.c.status == "claimed", inbox.c.lease_until < now),
        )
        pick = sa.select(inbox.c.id).where(claimable).order_by(inbox.c.id).limit(limit)
        if self.engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            inbox.update()
            .where(inbox.c.id.in_(pick.scalar_subquery()))
            .values(
                status="claimed",
                claimed_by=worker,
                lease_until=now + lease,
                attempts=inbox.c.attempts + 1,
                updated_at=now,
            )
            .returning(inbox.c.id, inbox.c.attempts, inbox.c.payload)
        )
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        rows.sort(key=lambda r: r.id)
        return [Claimed(r.id, r.attempts, Post.model_validate_json(r.payload)) for r in rows]

    def complete(self, inbox_ids: Sequence[int], worker: str, now: datetime | None = None) -> int:
        """Mark processed posts done. Only the current holder may complete (a worker whose
        lease ran out and was overtaken completes nothing). Returns how many were marked."""
        if not inbox_ids:
            return 0
        now = now or utcnow()
        with self.engine.begin() as conn:
            res = conn.execute(
                inbox.update()
                .where(inbox.c.id.in_(list(inbox_ids)), inbox.c.status == "claimed", inbox.c.claimed_by == worker)
                .values(status="done", lease_until=None, error=None, updated_at=now)
            )
        return res.rowcount

    def release(
        self,
        inbox_ids: Sequence[int],
        worker: str,
        error: str,
        max_attempts: int,
        *,
        charge: bool = True,
        now: datetime | None = None,
    ) -> dict[int, str]:
        """Give posts back after a failure: pending again for retry, or `failed` (kept, with
        the error, for an operator) once `max_attempts` claims have failed. `charge=False`
        gives the attempt back: an index that is down is not the post's fault, and an outage
        of any length must not push posts to `failed`. Returns the new status by inbox id."""
        now = now or utcnow()
        out: dict[int, str] = {}
        with self.engine.begin() as conn:
            for inbox_id in inbox_ids:
                row = conn.execute(
                    sa.select(inbox.c.attempts).where(inbox.c.id == inbox_id, inbox.c.claimed_by == worker)
                ).first()
                if row is None:
                    continue  # overtaken after a lease ran out: the new holder decides
                attempts = row.attempts if charge else max(row.attempts - 1, 0)
                status = "failed" if charge and attempts >= max_attempts else "pending"
                conn.execute(
                    inbox.update()
                    .where(inbox.c.id == inbox_id, inbox.c.claimed_by == worker)
                    .values(status=status, attempts=attempts, lease_until=None, error=error[:4000], updated_at=now)
                )
                out[inbox_id] = status
        return out

    def depth(self) -> dict[str, int]:
        """Count of inbox rows by status (the inbox-depth metric)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(inbox.c.status, sa.func.count()).group_by(inbox.c.status)).all()
        counts = {"pending": 0, "claimed": 0, "done": 0, "failed": 0}
        counts.update({r[0]: r[1] for r in rows})
        return counts

    def retry_failed(self) -> int:
        """Put every failed post back to pending (after an operator fixed the cause)."""
        with self.engine.begin() as conn:
            return conn.execute(
                inbox.update().where(inbox.c.status == "failed").values(status="pending", attempts=0)
            ).rowcount

    def purge_done(self, older_than: datetime) -> int:
        """Drop processed rows past retention. The document id stays rejected by the index."""
        with self.engine.begin() as conn:
            return conn.execute(
                inbox.delete().where(inbox.c.status == "done", inbox.c.updated_at < older_than)
            ).rowcount

