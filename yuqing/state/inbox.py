"""The durable inbox between the crawlers and the classify/index worker.

A crawler writes each matched post here before anything else happens to it, so a crash after
the fetch never loses it. Workers claim batches with a lease: a claim is one
`UPDATE ... WHERE id IN (SELECT ... [FOR UPDATE SKIP LOCKED]) RETURNING` statement, so several
workers on PostgreSQL never take the same post, and on SQLite the statement is atomic under the
database's write lock. A worker that dies holding a batch loses its lease; the batch becomes
claimable again after `lease` and is re-processed. Indexing is idempotent by document id, so
re-processing indexes each post exactly once.

Folding (a thousand copies of a rumour are one story with a thousand shares):

- exact copies: identical texts after `yuqing.ids.text_hash`'s folding share a row of `clusters`
  (text hash -> cluster id, copies of that text);
- near copies: a text not seen before is compared with earlier texts by MinHash over character
  4-grams of its *signature text* (`near_signature_text`: `fold()`ed, URLs, @mentions,
  #hashtags#, a leading repost marker such as "转发：", "RT @x:", "//@x:" or "منقول:", emoji,
  punctuation and spaces removed). 64 hashes in 16 LSH bands of 4 (`near_dup_buckets`): a new
  text reads only the signatures sharing one of its 16 buckets (newest `NEAR_DUP_CANDIDATES`
  at most), so a lookup costs one indexed query whatever the table's size. It joins the most
  similar one's cluster when the estimated Jaccard similarity is at least
  `NEAR_DUP_THRESHOLD` (0.5); texts under `NEAR_DUP_MIN_SHINGLES` 4-grams (~33 letters) fold
  only exactly ("the dam is safe" / "the dam is not safe" must stay two stories).
- `cluster_sizes` counts the whole cluster (every copy of every text in it); that count is
  the `cluster_size` a post carries, and its `cluster_id` is the first post's document id.

Thresholds, measured on reposts and campaigns in Chinese, English and Arabic
(`tests/yuqing/test_inbox.py`): repost prefixes, trailing hashtags/emoji, punctuation, case,
Traditional script and tashkeel vanish in the signature text (similarity 1.0); a Weibo repost
chain with a comment and a changed word score 0.66-0.95; different posts on the same story score
0.0-0.25, and a daily template with other figures 0.33. With 16 x 4 bands, a pair at 0.7 becomes
a candidate with probability 0.99, at 0.3 with 0.12.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from yuqing.records import Post
from yuqing.state.schema import cluster_sizes, clusters, inbox, near_dup_buckets, near_dup_signatures


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- near-duplicate signatures (see the module docstring) ------------------------------------
NEAR_DUP_SHINGLE = 4  # characters per shingle
NEAR_DUP_PERMS = 64  # MinHash values per signature (uint32 each: 256 bytes)
NEAR_DUP_BANDS = 16  # LSH bands of NEAR_DUP_PERMS / NEAR_DUP_BANDS = 4 values
NEAR_DUP_THRESHOLD = 0.5  # estimated Jaccard similarity to fold into a cluster
NEAR_DUP_MIN_SHINGLES = 30  # shorter texts fold only exactly
NEAR_DUP_CANDIDATES = 64  # signatures read per lookup at most (newest first)

_URL = re.compile(r"(?:https?://|www\.)\S+")
_TAG_PAIR = re.compile(r"#[^#\n]{1,40}#")  # Weibo's #话题#
_TAG = re.compile(r"#\w+")
_MENTION = re.compile(r"@[\w\-.]+")
_LEAD = re.compile(r"^(?:[\W_]|转发|转载|(?:rt|fwd?|via|repost)\b|منقول|اعاده نشر)+")
_REPOST_DEFAULT = re.compile(r"转发微博|轉發微博")  # Weibo's text for a repost without a comment
_NONWORD = re.compile(r"[\W_]+")
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S32 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(32)
_SEEDS = np.random.default_rng(20241215).integers(0, 2**63, size=NEAR_DUP_PERMS, dtype=np.uint64)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, element-wise (wrapping uint64 arithmetic): a stable 64-bit hash."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> _S30)
        x = x * _M1
        x = x ^ (x >> _S27)
        x = x * _M2
        return x ^ (x >> _S31)


def near_signature_text(text: str) -> str:
    """What near-duplicate detection compares: the folded words of the text without the parts
    reposts and campaigns vary (links, mentions, hashtags, repost markers, emoji, punctuation)."""
    from yuqing.text import fold

    t = fold(text)
    t = _URL.sub(" ", t)
    t = _TAG_PAIR.sub(" ", t)
    t = _TAG.sub(" ", t)
    t = _MENTION.sub(" ", t).replace("//", " ")
    t = _REPOST_DEFAULT.sub(" ", t)
    t = _LEAD.sub("", t)
    return _NONWORD.sub("", t)


def near_signature(text: str) -> bytes | None:
    """MinHash signature (NEAR_DUP_PERMS little-endian uint32) of the text's character
    4-grams, or None when the text is too short to compare other than exactly."""
    t = near_signature_text(text)
    k = NEAR_DUP_SHINGLE
    cp = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(cp) - k + 1
    if n < NEAR_DUP_MIN_SHINGLES:
        return None
    h = cp[:n].copy()
    with np.errstate(over="ignore"):
        for j in range(1, k):
            h = h * np.uint64(1000003) + cp[j : n + j]
    shingles = np.unique(_mix(h))
    if len(shingles) < NEAR_DUP_MIN_SHINGLES:
        return None
    mins = _mix(shingles[None, :] ^ _SEEDS[:, None]).min(axis=1)
    return (mins >> _S32).astype("<u4").tobytes()


def near_buckets(signature: bytes) -> list[int]:
    """The LSH bucket of each band: 63-bit keys (band number included, so one index serves all)."""
    width = len(signature) // NEAR_DUP_BANDS
    return [
        int.from_bytes(hashlib.blake2b(bytes([b]) + signature[b * width : (b + 1) * width], digest_size=8).digest(), "big") >> 1
        for b in range(NEAR_DUP_BANDS)
    ]


def near_similarity(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two signatures' shingle sets."""
    x, y = np.frombuffer(a, dtype="<u4"), np.frombuffer(b, dtype="<u4")
    return float(np.count_nonzero(x == y)) / len(x) if len(x) == len(y) and len(x) else 0.0


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
        cluster, a new text close enough to an earlier one joins its cluster, and the cluster's
        size grows (copies fold into one story). Commits before returning."""
        now = now or utcnow()
        q = _statements(self.engine.dialect.name)
        out: list[Enqueued] = []
        with self.engine.begin() as conn:
            for post in posts:
                new_id = conn.execute(
                    q.insert_inbox,
                    {"doc_id": post.id, "source": post.source, "payload": post.model_dump_json(), "now": now},
                ).scalar()
                if new_id is None:
                    out.append(Enqueued(post.id, False, post.cluster_id, post.cluster_size))
                    continue
                if post.text_hash:
                    cluster_id, size = self._fold(conn, q, post, now)
                    post = post.model_copy(update={"cluster_id": cluster_id, "cluster_size": size})
                    conn.execute(q.update_payload, {"row_id": new_id, "payload": post.model_dump_json()})
                out.append(Enqueued(post.id, True, post.cluster_id, post.cluster_size))
        return out

    def _fold(self, conn: Connection, q: "_Statements", post: Post, now: datetime) -> tuple[str, int]:
        """The cluster of a newly accepted post and the cluster's size with it."""
        known = conn.execute(q.select_text, {"h": post.text_hash}).first()
        signature = None
        if known is not None:
            cluster_id = known.cluster_id
        else:
            signature = near_signature(post.text)
            cluster_id = (self._nearest(conn, q, signature) if signature else None) or post.id
        # race-safe: a concurrent crawler that inserted the same text first wins, we join it
        row = conn.execute(q.upsert_text, {"h": post.text_hash, "cid": cluster_id, "now": now}).one()
        cluster_id = row.cluster_id
        if row.size == 1 and signature is not None:  # a new text: others may fold into it
            sig_id = conn.execute(
                q.insert_signature, {"h": post.text_hash, "cid": cluster_id, "sig": signature, "now": now}
            ).scalar_one()
            conn.execute(q.insert_buckets, [{"bucket": b, "signature_id": sig_id} for b in set(near_buckets(signature))])
        size = conn.execute(q.upsert_size, {"cid": cluster_id, "now": now}).scalar_one()
        return cluster_id, size

    @staticmethod
    def _nearest(conn: Connection, q: "_Statements", signature: bytes) -> str | None:
        """The cluster of the most similar earlier text sharing an LSH bucket, if similar enough."""
        rows = conn.execute(q.candidates, {"buckets": near_buckets(signature)}).all()
        best, best_sim = None, NEAR_DUP_THRESHOLD
        seen: set[int] = set()
        for r in rows:
            if r.id in seen:
                continue
            seen.add(r.id)
            sim = near_similarity(signature, r.signature)
            if sim >= best_sim:
                best, best_sim = r.cluster_id, sim
        return best

    def purge_near_dups(self, older_than: datetime) -> int:
        """Forget near-duplicate signatures of texts first seen before `older_than` (retention):
        later copies of them start new clusters or fold exactly. Returns signatures removed."""
        old = sa.select(near_dup_signatures.c.id).where(near_dup_signatures.c.created_at < older_than)
        with self.engine.begin() as conn:
            conn.execute(near_dup_buckets.delete().where(near_dup_buckets.c.signature_id.in_(old)))
            return conn.execute(near_dup_signatures.delete().where(near_dup_signatures.c.created_at < older_than)).rowcount

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

    def revise(self, doc_id: str, changes: dict[str, Any], *, conn: sa.Connection,
               now: datetime | None = None) -> bool:
        """Change fields of a post already in the inbox (e.g. `disappeared_at`) and make it
        pending again so the worker re-indexes it; the index upserts by document id. A worker
        still holding the old version can no longer complete it (its claim no longer matches),
        so the revised payload is what ends up indexed. Runs in the caller's transaction `conn`.
        False when the post is no longer in the inbox (past retention)."""
        row = conn.execute(sa.select(inbox.c.id, inbox.c.payload).where(inbox.c.doc_id == doc_id)).first()
        if row is None:
            return False
        post = Post.model_validate_json(row.payload).model_copy(update=changes)
        conn.execute(
            inbox.update().where(inbox.c.id == row.id).values(
                payload=post.model_dump_json(), status="pending", attempts=0, claimed_by=None,
                lease_until=None, error=None, updated_at=now or utcnow())
        )
        return True

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


@dataclass(frozen=True)
class _Statements:
    """The producer's statements, built once per dialect (SQLAlchemy then only binds values:
    building and cache-keying a statement per post cost more than executing it)."""

    insert_inbox: Any
    update_payload: Any
    select_text: Any
    upsert_text: Any
    insert_signature: Any
    insert_buckets: Any
    upsert_size: Any
    candidates: Any


@lru_cache(maxsize=4)
def _statements(dialect: str) -> _Statements:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    b = sa.bindparam
    now = b("now", type_=inbox.c.created_at.type)
    return _Statements(
        insert_inbox=insert(inbox)
        .values(doc_id=b("doc_id"), source=b("source"), payload=b("payload"), status="pending", attempts=0,
                created_at=now, updated_at=now)
        .on_conflict_do_nothing(index_elements=["doc_id"])
        .returning(inbox.c.id),
        update_payload=inbox.update().where(inbox.c.id == b("row_id")).values(payload=b("payload")),
        select_text=sa.select(clusters.c.cluster_id).where(clusters.c.text_hash == b("h")),
        upsert_text=insert(clusters)
        .values(text_hash=b("h"), cluster_id=b("cid"), size=1, first_seen=now, last_seen=now)
        .on_conflict_do_update(index_elements=["text_hash"], set_={"size": clusters.c.size + 1, "last_seen": now})
        .returning(clusters.c.cluster_id, clusters.c.size),
        insert_signature=near_dup_signatures.insert()
        .values(text_hash=b("h"), cluster_id=b("cid"), signature=b("sig", type_=sa.LargeBinary), created_at=now)
        .returning(near_dup_signatures.c.id),
        insert_buckets=insert(near_dup_buckets).on_conflict_do_nothing(),
        upsert_size=insert(cluster_sizes)
        .values(cluster_id=b("cid"), size=1, first_seen=now, last_seen=now)
        .on_conflict_do_update(index_elements=["cluster_id"], set_={"size": cluster_sizes.c.size + 1, "last_seen": now})
        .returning(cluster_sizes.c.size),
        candidates=sa.select(near_dup_signatures.c.id, near_dup_signatures.c.cluster_id, near_dup_signatures.c.signature)
        .join(near_dup_buckets, near_dup_buckets.c.signature_id == near_dup_signatures.c.id)
        .where(near_dup_buckets.c.bucket.in_(b("buckets", expanding=True)))
        .order_by(near_dup_signatures.c.id.desc())
        .limit(NEAR_DUP_CANDIDATES),
    )
