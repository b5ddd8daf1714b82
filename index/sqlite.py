"""SqliteStore: the embedded index (default backend), one SQLite file in WAL mode.

How it works, in one paragraph. `posts` is a narrow table (every filter and sort column, no
text) whose INTEGER PRIMARY KEY `rid` is `(published_ms << 16) | slot`: the table *is* the
time index, so a time range is a contiguous rowid range, "newest first" is a backwards rowid
walk, and the FTS5 table (`fts`, rowid = rid) can apply the same range and order inside the
full-text index itself (FTS5 consumes `rowid` ranges and `ORDER BY rowid DESC`). The Post JSON
and its "top terms" live in `docs`, topics and watchlists in `tags`; secondary indexes on
sentiment, source, lang, platform and author end in the implicit rid, so each is a covering
(value, time) index for the hot aggregations. Full text: `index.analysis` analyses in Python
like Elasticsearch's `cjk` / `arabic` / `english` / `standard` analyzers and FTS5 stores the
finished tokens in four columns; the search language compiles to one FTS5 MATCH where it can
(else to rid IN / NOT IN sub-selects). Sorts are total: (time desc, id desc), or engagement /
rumour / relevance desc then the same tie-break; cursors are keyset (see `index.common`).
Threading: one connection per thread (`threading.local`), so API request threads read in
parallel under WAL while the worker writes; writes in one process are serialised by a lock and
across processes by SQLite's lock with a 30 s busy timeout. A write that cannot get the lock or
fails on I/O comes back as per-item retryable failures, never as lost posts. `ensure_schema`
recognises an existing schema with a plain read (`meta.schema_version`) and takes the write
lock only to create or upgrade, so a process starting during another's long bulk does not fail.

Limits. A rid holds instants up to 6429-10-17T02:45:55.327Z (`MAX_MS`): a post published later
is refused alone (not retryable); query bounds and cursors beyond it are clamped, never an
overflow. Bulk speed: rows are written in rid order (FTS5 starts a new segment whenever a rowid
goes down, and every rid-keyed B-tree fills left to right); a bit under half of the CPU is the Python
analysis (optionally in worker processes that run ahead of the writer, `analysis_processes`),
most of the rest is FTS5 (~60 tokens a post) and the random-page writes of a time-clustered
table when posts do not arrive in time order (see bench/index.py `--order`). One call is one
transaction, so a bulk load wants large calls (10,000-50,000 posts): the random `id`/`author` index
leaves and the FTS5 segments are then written once per many posts, and the CPU per post grows
far less with the file (docs/decisions.md, "SQLite bulk load"). Checkpoints (copying the WAL
into the database file) run in a thread of their own after each commit, not inside the commit:
with SQLite's automatic checkpoint the writer spent ~15 % of its time copying pages that
another core can copy while it goes on (docs/decisions.md, "Checkpoints off the writer").
"""

from __future__ import annotations

import functools
import logging
import operator
import sqlite3
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from index import analysis as an
from index.base import Bucket, Hit, IndexResult, Query, SearchPage, StoreUnavailable, StoryCount, TermsField, story_ranges
from index.common import (
    INTERVALS_MS,
    bucket_sequence,
    day_start_ms,
    decode_cursor,
    encode_cursor,
    engagement_of,
    from_ms,
    local_date_of_day_index,
    offset_segments,
    rumor_sort_of,
    time_range_ms,
    to_ms,
)
from yuqing.records import Post

log = logging.getLogger(__name__)
_CHECKPOINT_GAP_S = 0.25  # least time between two background checkpoints
SCHEMA_VERSION = 1
SLOT_BITS = 16
SLOT_MASK = (1 << SLOT_BITS) - 1
# the instants a rid (a signed 64-bit integer) can hold: 1970 +- ~4,459 years, i.e. up to
# 6429-10-17T02:45:55.327Z (the low end is below datetime.min, year 1). A post outside is
# refused (per item, not retryable); a query bound outside is clamped (see `_ms_range`).
MIN_MS = -(1 << (63 - SLOT_BITS))
MAX_MS = (1 << (63 - SLOT_BITS)) - 1
_INT64_MAX = (1 << 63) - 1
# post columns that `terms` / `split_by` read directly
_COLUMNS: dict[str, str] = {
    "sentiment": "sentiment",
    "source": "source",
    "platform": "platform",
    "lang": "lang",
    "author": "author",
    "source_tier": "source_tier",
}
_TAG_KINDS = {"topic": 1, "watchlist": 2}
# analysis in worker processes: this process analyses the first _POOL_HEAD posts itself (while
# the workers start on theirs), the workers the rest in chunks of _POOL_CHUNK
_POOL_HEAD = 64
_POOL_CHUNK = 128

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS posts (
    rid INTEGER PRIMARY KEY,          -- (published_ms << {SLOT_BITS}) | slot: the time index
    id TEXT NOT NULL UNIQUE,
    published_ms INTEGER NOT NULL,
    source TEXT NOT NULL,
    platform TEXT NOT NULL,
    source_tier TEXT NOT NULL,
    lang TEXT,
    author TEXT,
    sentiment TEXT,
    rumor REAL,
    rumor_sort REAL NOT NULL,
    engagement INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS posts_sentiment ON posts (sentiment);  -- (sentiment, rid): time x sentiment
CREATE INDEX IF NOT EXISTS posts_source ON posts (source);        -- (source, rid)
CREATE INDEX IF NOT EXISTS posts_lang ON posts (lang);
CREATE INDEX IF NOT EXISTS posts_platform ON posts (platform);
CREATE INDEX IF NOT EXISTS posts_author ON posts (author);
CREATE INDEX IF NOT EXISTS posts_engagement ON posts (engagement, published_ms, id);
CREATE INDEX IF NOT EXISTS posts_rumor ON posts (rumor_sort, published_ms, id);
CREATE TABLE IF NOT EXISTS tags (
    kind INTEGER NOT NULL, value TEXT NOT NULL, rid INTEGER NOT NULL,
    PRIMARY KEY (kind, value, rid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_rid ON tags (rid);
CREATE TABLE IF NOT EXISTS docs (rid INTEGER PRIMARY KEY, post TEXT NOT NULL, terms TEXT NOT NULL);
"""
# FTS5 merges a level's segments once it holds this many (default 4): each token is rewritten
# about log_16 instead of log_4 times as the index grows, ~35 % less FTS5 insert CPU at 1M posts,
# for a few more segments per query to read. A persistent setting of the FTS table (fts_config),
# set when the table is created; an older file keeps its own.
_FTS_AUTOMERGE = 16
# FTS5 buffers a transaction's new postings in a hash table and writes it out as a level-0
# segment each time it passes `hashsize` bytes (default 1 MiB), so a 50,000-post bulk made many
# small segments for automerge to merge again. 16 MiB: at 200k posts 18 % less writer CPU a post,
# 11 % smaller file, +10-14 % bulk rate; at 1M +6 % writer, +1 % wall (docs/decisions.md, "FTS5
# hashsize"); 64 MiB was slower.
_FTS_HASHSIZE = 16 * 1024 * 1024
_FTS_TOKENIZE = "unicode61 remove_diacritics 0 categories 'L* N* Co M*' tokenchars '_.:''\u2019\u00b7,;'"


# a post ready to write: (preferred rid = (published_ms << SLOT_BITS) | slot from a hash of
# the id, its position in the call, the post, its JSON, its engagement)
_Item = tuple[int, int, Post, str, int]


@dataclass
class _Where:
    """SQL conditions on `posts p` plus the full-text part of a query."""

    sql: list[str]
    params: list[Any]
    node: an.Node
    lo_rid: int | None
    hi_rid: int | None  # exclusive

    def clause(self) -> str:
        return " AND ".join(self.sql) if self.sql else "1"


class SqliteStore:
    """The embedded `index.base.Store` over one SQLite file (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout_s: float = 30.0,
        analysis_processes: int = 0,
        analysis_pool_min: int = 512,
    ) -> None:
        """`analysis_processes` > 0: a bulk of at least `analysis_pool_min` posts is analysed
        in that many worker processes (spawned on first use, ended by `close`), chunk by chunk
        in rid order, while this process writes the chunks already analysed (see
        `_analysis_plan`); for bulk loads on a machine with a second core. Analysis is a bit
        under half of a post's indexing CPU, the write the rest, and the write needs the one
        SQLite writer, so one worker process is what two cores can use. 0 (the default, and what
        the worker's small batches want): everything in this process."""
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.analysis_processes = analysis_processes
        self.analysis_pool_min = analysis_pool_min
        self._pool: Any = None
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._schema_ready = False
        self._closed = False
        # the checkpointer: started by the first commit, woken by every commit (see _checkpoint_soon)
        self._ckpt_thread: threading.Thread | None = None
        self._ckpt_wake = threading.Event()
        self._ckpt_stop = threading.Event()
        self._ckpt_lock = threading.Lock()
        self.checkpoints = 0  # completed background checkpoints (for tests and diagnostics)

    # -- connections ------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False only so close() may close every thread's connection;
            # each connection is otherwise used by the one thread that opened it.
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA mmap_size=268435456")
            # a bulk call's transaction can grow the WAL to hundreds of MiB; give the space back
            # after the checkpoint instead of keeping the file at its largest
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer thread does it
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot open {self.path}: {e}") from e
        self._local.conn = conn
        with self._conns_lock:
            self._conns.append(conn)
        if not self._schema_ready:
            self.ensure_schema()
        return conn

    def ensure_schema(self) -> None:
        """Create the schema if missing. An existing schema of this version is recognised with a
        plain read (WAL readers never wait for the writer), so a worker or the API starting while
        another process holds the write lock does not fail; the write lock is taken only to
        create or upgrade, and the version is read again under it."""
        conn = getattr(self._local, "conn", None) or self._conn()
        try:
            version = _schema_version(conn)
        except sqlite3.Error as e:
            raise StoreUnavailable(f"cannot read the index schema of {self.path}: {e}") from e
        if version is None or version < SCHEMA_VERSION:
            with self._write_lock:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    version = _schema_version(conn)
                    if version is None or version < SCHEMA_VERSION:
                        self._create(conn)
                    conn.execute("COMMIT")
                    self._checkpoint_soon()
                except sqlite3.Error as e:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise StoreUnavailable(f"cannot create the index schema in {self.path}: {e}") from e
        if version is not None and version > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{self.path} has index schema version {version}, newer than this code's "
                f"{SCHEMA_VERSION}: upgrade the code (or index into a new file)"
            )
        self._schema_ready = True

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        """Every CREATE (idempotent), then the version row; inside the caller's transaction."""
        for stmt in _SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        _create_fts(conn)
        _set_version(conn)

    def ping(self) -> bool:
        try:
            self._conn().execute("SELECT 1 FROM posts LIMIT 1").fetchall()
            return True
        except (sqlite3.Error, StoreUnavailable):
            return False

    def refresh(self) -> None:
        """Committed writes are visible to every new read at once; nothing to do."""

    # -- checkpoints ------------------------------------------------------------------------
    def _checkpoint_soon(self) -> None:
        """After a commit: wake the checkpointer (started on the first commit). Why a thread:
        SQLite's automatic checkpoint runs inside the committing call, so the single writer
        would stop to copy the WAL into the database file; a PASSIVE checkpoint on another
        connection copies it while the writer goes on (SQLite releases the GIL meanwhile), and
        never waits for readers or the writer. A checkpoint that fails or falls behind loses
        nothing: committed pages stay in the WAL until the next one copies them."""
        with self._ckpt_lock:
            if self._closed:
                return
            if self._ckpt_thread is None or not self._ckpt_thread.is_alive():  # first, or it could not open
                self._ckpt_thread = threading.Thread(target=self._checkpointer, name="yuqing-index-checkpoint", daemon=True)
                self._ckpt_thread.start()
        self._ckpt_wake.set()

    def _checkpointer(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:  # the next commit starts another; meanwhile the WAL only grows
            log.warning("index checkpointer cannot open %s: %s", self.path, e)
            return
        try:
            while True:
                self._ckpt_wake.wait()
                self._ckpt_wake.clear()
                if self._closed:
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as e:
                    log.warning("index checkpoint of %s failed (the next commit retries): %s", self.path, e)
                # at most a few a second: each one syncs the database file, and the worker's
                # small batches may commit often (commits meanwhile are copied by the next one)
                self._ckpt_stop.wait(_CHECKPOINT_GAP_S)
        finally:
            conn.close()

    def close(self) -> None:
        with self._ckpt_lock:
            self._closed = True
            thread, self._ckpt_thread = self._ckpt_thread, None
        self._ckpt_stop.set()
        self._ckpt_wake.set()
        if thread is not None:
            thread.join(timeout=self.busy_timeout_s)
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    # -- writing ----------------------------------------------------------------------------
    def bulk_index(self, posts: Sequence[Post]) -> list[IndexResult]:
        """Upsert by `post.id` in one transaction. A post that cannot be serialised or analysed
        fails alone (not retryable: the same post would fail again; an older stored copy stays);
        a database that cannot be written (locked past the busy timeout, disk full) fails every
        post of the call as retryable. The last copy of an id within one call wins (an earlier
        copy reports the result of the last one)."""
        results: list[IndexResult | None] = [None] * len(posts)
        prepared: dict[str, _Item] = {}  # id -> (rid key, i, post, json, engagement)
        for i, p in enumerate(posts):
            ms = to_ms(p.published_at)
            eng = engagement_of(p)  # once per post (the checks and the row)
            bad = _unstorable(p, ms, eng)
            if bad:
                results[i] = IndexResult(p.id, False, f"cannot index: {bad}", retryable=False)
                continue
            try:
                js = p.model_dump_json()  # fails here, alone, on text that is not valid Unicode
            except Exception as e:  # noqa: BLE001 - one bad post must not sink the batch
                results[i] = IndexResult(p.id, False, f"cannot index: {type(e).__name__}: {e}", retryable=False)
                continue
            prepared[p.id] = ((ms << SLOT_BITS) | (zlib.crc32(p.id.encode()) & SLOT_MASK), i, p, js, eng)
        failed: str | None = None
        bad_analysis: dict[str, str] = {}
        if prepared:
            # rid order (see `_write`); ties are impossible (i is unique), so Posts never compare
            keyed = sorted(prepared.values(), key=operator.itemgetter(0, 1))
            plan, futures = self._analysis_plan(keyed)
            try:
                conn = self._conn()
                with self._write_lock:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        for chunk, analyses in plan:
                            good = []
                            for item, a in zip(chunk, analyses()):
                                if isinstance(a, str):  # analysis failed: this post alone
                                    bad_analysis[item[2].id] = f"cannot index: {a}"
                                else:
                                    good.append((item, a))
                            if good:
                                self._write(conn, good)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                self._checkpoint_soon()
            except (sqlite3.Error, StoreUnavailable) as e:
                failed = f"index write failed: {e}"
            finally:
                for f in futures:  # after a failure: work nobody will read
                    f.cancel()
        for i, p in enumerate(posts):
            if results[i] is not None:
                continue
            if p.id in bad_analysis:
                results[i] = IndexResult(p.id, False, bad_analysis[p.id], retryable=False)
            elif failed is not None and p.id in prepared:
                results[i] = IndexResult(p.id, False, failed, retryable=True)
            else:
                results[i] = IndexResult(p.id, True)
        return [r for r in results if r is not None]

    def _analysis_plan(
        self, keyed: list[_Item]
    ) -> tuple[list[tuple[list[_Item], Callable[[], list[Any]]]], list[Any]]:
        """The posts in rid order as chunks, each with a call that returns its `an.analyze_many`
        results; and the pool futures behind those calls.

        Without a pool (the default, and bulks under `analysis_pool_min`): one chunk analysed
        here. With one: every chunk but a short head is sent to the worker processes *before*
        the write starts, so they analyse chunk k+1 while this process writes chunk k (the
        write is the larger half, and it needs one SQLite writer); chunks are written in rid
        order, so FTS5 still sees rising rowids."""
        pairs = [(item[2].title, item[2].text) for item in keyed]
        n = len(keyed)
        if self.analysis_processes <= 0 or n < self.analysis_pool_min:
            return [(keyed, lambda: an.analyze_many(pairs))], []
        pool = self._get_pool()
        head = min(n, _POOL_HEAD)
        plan: list[tuple[list[_Item], Callable[[], list[Any]]]] = []
        futures = []
        for s in range(head, n, _POOL_CHUNK):
            fut = pool.submit(an.analyze_many, pairs[s : s + _POOL_CHUNK])
            futures.append(fut)
            plan.append((keyed[s : s + _POOL_CHUNK], functools.partial(self._pool_result, fut, pairs[s : s + _POOL_CHUNK])))
        plan.insert(0, (keyed[:head], lambda: an.analyze_many(pairs[:head])))
        return plan, futures

    def _pool_result(self, fut: Any, pairs: list[tuple[str | None, str]]) -> list[Any]:
        """A chunk's results from the pool; analysed here instead when the pool broke (a
        worker killed, e.g. for memory): the bulk goes on, the next one starts a new pool."""
        from concurrent.futures.process import BrokenProcessPool

        try:
            return fut.result()  # type: ignore[no-any-return]
        except BrokenProcessPool:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            return an.analyze_many(pairs)

    def _get_pool(self) -> Any:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: a fork of a process with API or worker threads could inherit held locks
            self._pool = ProcessPoolExecutor(self.analysis_processes, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def _write(self, conn: sqlite3.Connection, good: list[tuple[_Item, an.IndexRow]]) -> None:
        """Insert one chunk (in rid order) inside the caller's transaction, first removing the
        stored copies of its ids."""
        ids = [item[2].id for item, _ in good]
        existing: dict[str, int] = {}
        for chunk in _chunks(ids, 999):
            q = f"SELECT id, rid FROM posts WHERE id IN ({','.join('?' * len(chunk))})"
            existing.update(conn.execute(q, chunk).fetchall())
        if existing:
            self._delete_rids(conn, sorted(existing.values()))
        # Rows go in in rid order: FTS5 flushes its pending-term hash to a new segment whenever
        # a rowid is lower than the one before (so a batch in arrival order would make one
        # tiny segment per post, and merging them is most of the cost), and every B-tree keyed
        # by rid is filled left to right.
        occupied: set[int] = set()
        cands = [item[0] for item, _ in good]
        for chunk in _chunks(cands, 999):
            occupied.update(r for (r,) in conn.execute(f"SELECT rid FROM posts WHERE rid IN ({','.join('?' * len(chunk))})", chunk))
        post_rows, doc_rows, fts_rows, tag_rows = [], [], [], []
        taken: set[int] = set()
        probed = False
        topic_kind, watch_kind = _TAG_KINDS["topic"], _TAG_KINDS["watchlist"]
        for (rid, _, p, js, eng), (zh, ar, en, std, terms) in good:
            ms = rid >> SLOT_BITS
            if rid in occupied or rid in taken:
                rid = self._free_rid(conn, ms, p.id, taken)
                probed = True
            taken.add(rid)
            c = p.classification
            post_rows.append(
                (
                    rid,
                    p.id,
                    ms,
                    p.source,
                    p.platform,
                    p.source_tier.value,
                    p.lang,
                    p.author.id,
                    c.sentiment if c else None,
                    c.rumor if c else None,
                    rumor_sort_of(p),
                    eng,
                )
            )
            doc_rows.append((rid, js, terms))
            fts_rows.append((rid, zh, ar, en, std))
            if c:
                for topic in dict.fromkeys(t.topic for t in c.topics):
                    tag_rows.append((topic_kind, topic, rid))
            for w in dict.fromkeys(p.watchlists):
                tag_rows.append((watch_kind, w, rid))
        if probed:  # a probed rid may break the order
            first = operator.itemgetter(0)
            post_rows.sort(key=first)
            doc_rows.sort(key=first)
            fts_rows.sort(key=first)
        conn.executemany("INSERT INTO posts VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", post_rows)
        conn.executemany("INSERT INTO docs VALUES (?,?,?)", doc_rows)
        conn.executemany("INSERT INTO fts (rowid, zh, ar, en, std) VALUES (?,?,?,?,?)", fts_rows)
        conn.executemany("INSERT INTO tags VALUES (?,?,?)", tag_rows)

    @staticmethod
    def _free_rid(conn: sqlite3.Connection, ms: int, doc_id: str, taken: set[int]) -> int:
        """`(ms << 16) | slot`, slot from a hash of the id, probing on the rare collision of two
        posts in the same millisecond (order within a millisecond is by id, not by slot)."""
        base = ms << SLOT_BITS
        slot = zlib.crc32(doc_id.encode()) & SLOT_MASK
        for k in range(SLOT_MASK + 1):
            rid = base | ((slot + k) & SLOT_MASK)
            if rid in taken:
                continue
            if conn.execute("SELECT 1 FROM posts WHERE rid = ?", (rid,)).fetchone() is None:
                return rid
        raise sqlite3.IntegrityError(f"more than {SLOT_MASK + 1} posts in one millisecond")

    @staticmethod
    def _delete_rids(conn: sqlite3.Connection, rids: list[int]) -> None:
        for chunk in _chunks(rids, 500):
            marks = ",".join("?" * len(chunk))
            for table, col in (("posts", "rid"), ("docs", "rid"), ("fts", "rowid"), ("tags", "rid")):
                conn.execute(f"DELETE FROM {table} WHERE {col} IN ({marks})", chunk)

    def delete_by_query(self, query: Query) -> int:
        w = self._where(query)
        if w.node == an.FALSE:
            return 0
        conn = self._conn()
        try:
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    rids = [r for (r,) in conn.execute(f"SELECT p.rid FROM posts p WHERE {w.clause()}", w.params)]
                    self._delete_rids(conn, rids)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            self._checkpoint_soon()
        except sqlite3.OperationalError as e:
            raise StoreUnavailable(f"cannot delete from {self.path}: {e}") from e
        return len(rids)

    # -- reading ----------------------------------------------------------------------------
    def get(self, doc_id: str) -> Post | None:
        row = self._conn().execute(
            "SELECT d.post FROM posts p JOIN docs d ON d.rid = p.rid WHERE p.id = ?", (doc_id,)
        ).fetchone()
        return Post.model_validate_json(row[0]) if row else None

    def _where(self, q: Query, with_text: bool = True) -> _Where:
        """Conditions on `posts p` for every filter of `q`; the text part as SQL too unless
        `with_text` is False (the caller drives the search from FTS5 itself)."""
        sql: list[str] = []
        params: list[Any] = []
        rng = _ms_range(q)
        if rng is None:  # a range no post can be in (e.g. starting after year 6429)
            return _Where(["0"], [], an.FALSE, None, None)
        start, end = rng
        lo_rid = hi_rid = None
        if start is not None:
            lo_rid = start << SLOT_BITS
            sql.append("p.rid >= ?")
            params.append(lo_rid)
        if end is not None:
            hi_rid = end << SLOT_BITS
            sql.append("p.rid < ?")
            params.append(hi_rid)
        for values, col in (
            (q.sources, "source"),
            (q.platforms, "platform"),
            (q.langs, "lang"),
            (q.sentiments, "sentiment"),
            (q.authors, "author"),
        ):
            if values is not None:
                sql.append(f"p.{col} IN ({','.join('?' * len(values))})" if values else "0")
                params.extend(values)
        for values, kind in ((q.topics, "topic"), (q.watchlists, "watchlist")):
            if values is not None:
                if not values:
                    sql.append("0")
                    continue
                sql.append(
                    f"p.rid IN (SELECT rid FROM tags WHERE kind = ? AND value IN ({','.join('?' * len(values))}))"
                )
                params.append(_TAG_KINDS[kind])
                params.extend(values)
        if q.rumor_min is not None:
            sql.append("p.rumor >= ?")
            params.append(q.rumor_min)
        if q.rumor_max is not None:
            sql.append("p.rumor <= ?")
            params.append(q.rumor_max)
        node = an.parse(q.text)
        if node == an.FALSE:
            sql.append("0")
        elif with_text and node != an.TRUE:
            tsql, tparams = _text_sql(node, lo_rid, hi_rid)
            sql.append(tsql)
            params.extend(tparams)
        return _Where(sql, params, node, lo_rid, hi_rid)

    def count(self, query: Query) -> int:
        w = self._where(query, with_text=False)
        if w.node == an.FALSE:
            return 0
        conn = self._conn()
        expr = _fts_expr(w.node) if w.node != an.TRUE else None
        if expr is not None and not w.sql:
            return conn.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (expr,)).fetchone()[0]
        if expr is not None and all(s.startswith("p.rid ") for s in w.sql):
            # time range only: count inside the full-text index
            rng, rparams = _rowid_range("rowid", w.lo_rid, w.hi_rid)
            return conn.execute(f"SELECT count(*) FROM fts WHERE fts MATCH ?{rng}", [expr, *rparams]).fetchone()[0]
        w = self._where(query)
        return conn.execute(f"SELECT count(*) FROM posts p WHERE {w.clause()}", w.params).fetchone()[0]

    def search(self, query: Query) -> SearchPage:
        total = self.count(query)
        w = self._where(query, with_text=False)
        if w.node == an.FALSE or query.size == 0 or total == 0:
            return SearchPage(total=total, hits=[], next_cursor=None)
        after = decode_cursor(query.cursor, query.sort) if query.cursor else None
        expr = _fts_expr(w.node) if w.node != an.TRUE else None
        sort = query.sort
        if sort == "relevance" and expr is None:
            sort_sql = "time"  # nothing to score: every post scores alike, so time decides
        else:
            sort_sql = sort
        if sort_sql == "time":
            if after is not None and sort == "relevance":
                after = after[1:]  # [score, ms, id] of an unscored relevance page
            rows = self._page_by_time(query, w, expr, after, query.size + 1)
            keyed = [((ms, id_), rid, None) for rid, id_, ms in rows]
        else:
            keyed = self._page_sorted(query, w, expr, sort_sql, after, query.size + 1)
        more = len(keyed) > query.size
        keyed = keyed[: query.size]
        docs = self._load_docs([rid for _, rid, _ in keyed])
        terms = an.positive_terms(w.node) if query.highlight else []
        hits: list[Hit] = []
        for key, rid, score in keyed:
            post = docs[rid]
            hl: dict[str, list[str]] = {}
            if terms:
                for name, value in (("title", post.title), ("text", post.text)):
                    if value:
                        frags = an.highlight(value, terms)
                        if frags:
                            hl[name] = frags
            hits.append(Hit(post=post, score=score, highlights=hl))
        next_cursor = None
        if more and keyed:
            key, _, score = keyed[-1]
            values: list[Any] = list(key)
            if sort == "relevance":
                values = [score if score is not None else 0.0, *values]
            next_cursor = encode_cursor(sort, values)
        return SearchPage(total=total, hits=hits, next_cursor=next_cursor)

    def _load_docs(self, rids: list[int]) -> dict[int, Post]:
        out: dict[int, Post] = {}
        conn = self._conn()
        for chunk in _chunks(rids, 500):
            for rid, js in conn.execute(
                f"SELECT rid, post FROM docs WHERE rid IN ({','.join('?' * len(chunk))})", chunk
            ):
                out[rid] = Post.model_validate_json(js)
        return out

    def _page_by_time(
        self, q: Query, w: _Where, expr: str | None, after: list[Any] | None, limit: int
    ) -> list[tuple[int, str, int]]:
        """Newest first by walking rids backwards (in FTS5 when there is text), regrouping each
        millisecond by id desc, which is the order Elasticsearch's sort gives."""
        hi = w.hi_rid
        after_ms = after_id = None
        if after is not None:
            after_ms, after_id = int(after[0]), str(after[1])
            if after_ms < MIN_MS:
                return []
            if after_ms < MAX_MS:  # else: no cap, every rid is below
                cap = (after_ms + 1) << SLOT_BITS
                hi = cap if hi is None else min(hi, cap)
        conn = self._conn()
        if expr is not None:
            # CROSS JOIN keeps FTS5 the outer loop, walking its rowids backwards. Left to choose,
            # SQLite 3.50 (measured with sqlean.py's build; a Python linked to a newer SQLite than
            # Debian 12's 3.40 gets its planner) scans a facet index such as posts_lang over the
            # time range and probes FTS5 once per post: ~500 ms instead of ~1 ms at 100k posts
            rng, rparams = _rowid_range("f.rowid", w.lo_rid, hi)
            sql = (
                f"SELECT p.rid, p.id, p.published_ms FROM fts f CROSS JOIN posts p ON p.rid = f.rowid "
                f"WHERE fts MATCH ?{rng} AND {w.clause()} ORDER BY f.rowid DESC"
            )
            params = [expr, *rparams, *w.params]
        else:
            full = self._where(q)
            rng, rparams = _rowid_range("p.rid", None, hi)
            sql = f"SELECT p.rid, p.id, p.published_ms FROM posts p WHERE {full.clause()}{rng} ORDER BY p.rid DESC"
            params = [*full.params, *rparams]
        out: list[tuple[int, str, int]] = []
        group: list[tuple[int, str, int]] = []
        cur = conn.execute(sql, params)
        while True:
            batch = cur.fetchmany(256)
            for row in batch:
                if group and row[2] != group[0][2]:
                    out.extend(_sorted_group(group, after_ms, after_id))
                    group = []
                    if len(out) >= limit:
                        cur.close()
                        return out[:limit]
                group.append(row)
            if not batch:
                break
        out.extend(_sorted_group(group, after_ms, after_id))
        return out[:limit]

    def _page_sorted(
        self, q: Query, w: _Where, expr: str | None, sort: str, after: list[Any] | None, limit: int
    ) -> list[tuple[tuple[Any, ...], int, float | None]]:
        """Engagement, rumour or relevance order with a keyset condition (value, time, id)."""
        conn = self._conn()
        if sort == "relevance":
            assert expr is not None
            rng, rparams = _rowid_range("f.rowid", w.lo_rid, w.hi_rid)  # FTS5 outer: see _page_by_time
            inner = (
                f"SELECT p.rid AS rid, p.id AS id, p.published_ms AS ms, -bm25(fts) AS v "
                f"FROM fts f CROSS JOIN posts p ON p.rid = f.rowid WHERE fts MATCH ?{rng} AND {w.clause()}"
            )
            params: list[Any] = [expr, *rparams, *w.params]
        else:
            col = "p.engagement" if sort == "engagement" else "p.rumor_sort"
            full = self._where(q)
            inner = f"SELECT p.rid AS rid, p.id AS id, p.published_ms AS ms, {col} AS v FROM posts p WHERE {full.clause()}"
            params = list(full.params)
        cond = ""
        if after is not None:
            v, ms, id_ = (_bindable(x) for x in after)
            cond = " WHERE (v < ? OR (v = ? AND (ms < ? OR (ms = ? AND id < ?))))"
            params += [v, v, ms, ms, id_]
        sql = f"SELECT rid, id, ms, v FROM ({inner}){cond} ORDER BY v DESC, ms DESC, id DESC LIMIT ?"
        params.append(limit)
        out = []
        for rid, id_, ms, v in conn.execute(sql, params):
            key = (v, ms, id_) if sort != "relevance" else (ms, id_)
            out.append((key, rid, float(v) if sort == "relevance" else None))
        return out

    # -- aggregations -----------------------------------------------------------------------
    def histogram(self, query: Query, interval: str, tz: str, split_by: TermsField | None = None) -> list[Bucket]:
        if interval not in INTERVALS_MS:
            raise ValueError(f"interval must be one of {sorted(INTERVALS_MS)}, got {interval!r}")
        zone = ZoneInfo(tz)
        w = self._where(query)
        if w.node == an.FALSE:
            return []
        conn = self._conn()
        rng = _ms_range(query)
        if rng is None:
            return []
        lo, hi = rng
        if lo is None or hi is None:
            row = conn.execute(
                f"SELECT min(p.published_ms), max(p.published_ms) FROM posts p WHERE {w.clause()}", w.params
            ).fetchone()
            if row[0] is None:
                return []
            lo = row[0] if lo is None else max(lo, row[0])
            hi = row[1] if hi is None else min(hi - 1, row[1])
        else:
            # only the instants that hold posts matter (buckets run from the first count to
            # the last): a range of centuries must not walk its days in offset_segments
            row = conn.execute("SELECT (SELECT min(rid) FROM posts), (SELECT max(rid) FROM posts)").fetchone()
            if row[0] is None:
                return []
            lo, hi = max(lo, row[0] >> SLOT_BITS), min(hi - 1, row[1] >> SLOT_BITS)
        if lo > hi:
            return []
        iv = INTERVALS_MS[interval]
        counts: Counter[int] = Counter()
        splits: dict[int, Counter[str]] = {}
        for seg_lo, seg_hi, off in offset_segments(zone, lo, hi):
            rng, rparams = _rowid_range("p.rid", seg_lo << SLOT_BITS, seg_hi << SLOT_BITS)
            key_sql = f"(p.published_ms + {int(off)}) / {iv}"
            if split_by is None:
                sql = f"SELECT {key_sql} AS b, NULL, count(*) FROM posts p WHERE {w.clause()}{rng} GROUP BY b"
                params = [*w.params, *rparams]
            elif split_by in _COLUMNS:
                col = _COLUMNS[split_by]
                sql = (
                    f"SELECT {key_sql} AS b, p.{col}, count(*) FROM posts p WHERE {w.clause()}{rng} "
                    f"GROUP BY b, p.{col}"
                )
                params = [*w.params, *rparams]
            elif split_by in _TAG_KINDS:
                # total per bucket first (a post with two topics counts once in `count`)
                sql = f"SELECT {key_sql} AS b, NULL, count(*) FROM posts p WHERE {w.clause()}{rng} GROUP BY b"
                for b, _, n in conn.execute(sql, [*w.params, *rparams]):
                    counts[self._bucket_key(b, iv, off, interval, zone)] += n
                sql = (
                    f"SELECT {key_sql} AS b, t.value, count(*) FROM posts p JOIN tags t ON t.rid = p.rid AND t.kind = ? "
                    f"WHERE {w.clause()}{rng} GROUP BY b, t.value"
                )
                params = [_TAG_KINDS[split_by], *w.params, *rparams]
            elif split_by == "term":
                sql = (
                    f"SELECT {key_sql} AS b, d.terms, 1 FROM posts p JOIN docs d ON d.rid = p.rid "
                    f"WHERE {w.clause()}{rng}"
                )
                params = [*w.params, *rparams]
            else:
                raise ValueError(f"cannot split by {split_by!r}")
            for b, value, n in conn.execute(sql, params):
                key = self._bucket_key(b, iv, off, interval, zone)
                if split_by in _TAG_KINDS:
                    splits.setdefault(key, Counter())[value] += n
                    continue
                if split_by == "term":
                    counts[key] += 1
                    if value:
                        splits.setdefault(key, Counter()).update(value.split("\n"))
                    continue
                counts[key] += n
                if split_by is not None and value is not None:
                    splits.setdefault(key, Counter())[value] += n
        if not counts:
            return []
        first, last = min(counts), max(counts)
        out = []
        for start in bucket_sequence(first, last, interval, zone):
            sp = splits.get(start, Counter())
            out.append(Bucket(start=from_ms(start, zone), count=counts.get(start, 0), split=dict(sorted(sp.items()))))
        return out

    def stories(self, query: Query, edges: Sequence[datetime]) -> list[StoryCount]:
        """One range scan per range over the rid key. The cluster id is read from the stored
        post (`docs.post` JSON) because the posts table has no column for it; a post without
        one counts as its own story, as on Elasticsearch (distinct cluster ids + posts with none)."""
        out = []
        conn = self._conn()
        for a, b, lo, hi in story_ranges(query, edges):
            posts = stories = 0
            if lo < hi:
                w = self._where(query.model_copy(update={"start": lo, "end": hi}))
                if w.node != an.FALSE:
                    cid = "json_extract(d.post, '$.cluster_id')"
                    posts, stories = conn.execute(
                        f"SELECT count(*), count(DISTINCT {cid}) + coalesce(sum({cid} IS NULL), 0) "
                        f"FROM posts p JOIN docs d ON d.rid = p.rid WHERE {w.clause()}",
                        w.params,
                    ).fetchone()
            out.append(StoryCount(start=a, end=b, posts=int(posts), stories=int(stories)))
        return out

    @staticmethod
    def _bucket_key(b: int, iv: int, off: int, interval: str, zone: ZoneInfo) -> int:
        """UTC start (ms) of the bucket whose local index in this offset segment is `b`."""
        if interval == "1d":
            return day_start_ms(local_date_of_day_index(b), zone)
        return b * iv - off

    def terms(self, query: Query, field: TermsField, size: int = 10) -> list[tuple[str, int]]:
        w = self._where(query)
        if w.node == an.FALSE or size <= 0:
            return []
        conn = self._conn()
        if field in _COLUMNS:
            col = _COLUMNS[field]
            sql = (
                f"SELECT p.{col}, count(*) AS n FROM posts p WHERE {w.clause()} AND p.{col} IS NOT NULL "
                f"GROUP BY p.{col} ORDER BY n DESC, p.{col} ASC LIMIT ?"
            )
            return [(v, n) for v, n in conn.execute(sql, [*w.params, size])]
        if field in _TAG_KINDS:
            sql = (
                f"SELECT t.value, count(*) AS n FROM posts p JOIN tags t ON t.rid = p.rid AND t.kind = ? "
                f"WHERE {w.clause()} GROUP BY t.value ORDER BY n DESC, t.value ASC LIMIT ?"
            )
            return [(v, n) for v, n in conn.execute(sql, [_TAG_KINDS[field], *w.params, size])]
        if field == "term":
            c: Counter[str] = Counter()
            sql = f"SELECT d.terms FROM posts p JOIN docs d ON d.rid = p.rid WHERE {w.clause()}"
            for (terms,) in conn.execute(sql, w.params):
                if terms:
                    c.update(terms.split("\n"))
            return sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
        raise ValueError(f"unknown terms field {field!r}")


# ---------------------------------------------------------------------------------------------
# helpers


def _create_fts(conn: sqlite3.Connection) -> None:
    """The FTS5 table of the analysed columns (rowid = rid), merging segments 16 at a time
    (`_FTS_AUTOMERGE`) and flushing postings in 16 MiB segments (`_FTS_HASHSIZE`); both are
    stored in the table's config, so they are set once, at creation."""
    try:
        conn.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(zh, ar, en, std, "
            f"tokenize=\"{_FTS_TOKENIZE}\", detail=full)"
        )
    except sqlite3.OperationalError:  # SQLite < 3.25 has no `categories`
        conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(zh, ar, en, std, "
            "tokenize=\"unicode61 remove_diacritics 0 tokenchars '_.:''\u2019\u00b7,;'\", detail=full)"
        )
    conn.execute("INSERT INTO fts (fts, rank) VALUES ('automerge', ?)", (_FTS_AUTOMERGE,))
    conn.execute("INSERT INTO fts (fts, rank) VALUES ('hashsize', ?)", (_FTS_HASHSIZE,))


def _set_version(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(SCHEMA_VERSION),),
    )


def _schema_version(conn: sqlite3.Connection) -> int | None:
    """The schema version recorded in `meta`, None for a file without our schema yet."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None
        raise
    return int(row[0]) if row else None


def _unstorable(p: Post, ms: int, engagement: int) -> str | None:
    """Why the post (published at `ms`, with that engagement) cannot be stored as it is (the
    same post would fail again), or None."""
    if not MIN_MS <= ms <= MAX_MS:
        return (
            f"published_at {p.published_at.isoformat()} is outside the times the SQLite index can "
            f"store (up to {from_ms(MAX_MS).isoformat()})"
        )
    if engagement > _INT64_MAX:
        return f"engagement {engagement} does not fit a 64-bit integer"
    return None


def _ms_range(q: Query) -> tuple[int | None, int | None] | None:
    """The query's [start, end) in epoch ms, clamped to what a rid can hold: a bound beyond
    every storable instant is dropped (it excludes nothing); None when the range excludes every
    storable instant (nothing can match). Keeps far-future or far-past times from overflowing
    SQLite's 64-bit integers."""
    start, end = time_range_ms(q)
    if start is not None:
        if start > MAX_MS:
            return None
        if start <= MIN_MS:
            start = None
    if end is not None:
        if end <= MIN_MS:
            return None
        if end > MAX_MS:
            end = None
    return start, end


def _bindable(x: Any) -> Any:
    """A cursor value SQLite can bind: integers beyond 64 bits clamped (same order against any
    stored value; the cursor is client-supplied, so anything may arrive)."""
    if isinstance(x, int) and not isinstance(x, bool):
        return max(-_INT64_MAX - 1, min(_INT64_MAX, x))
    return x


def _chunks(xs: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(xs), n):
        yield xs[i : i + n]


def _rowid_range(col: str, lo: int | None, hi: int | None) -> tuple[str, list[int]]:
    sql, params = "", []
    if lo is not None:
        sql += f" AND {col} >= ?"
        params.append(lo)
    if hi is not None:
        sql += f" AND {col} < ?"
        params.append(hi)
    return sql, params


def _sorted_group(
    group: list[tuple[int, str, int]], after_ms: int | None, after_id: str | None
) -> list[tuple[int, str, int]]:
    """One millisecond's rows by id desc, without those at or before the cursor."""
    group = sorted(group, key=lambda r: r[1], reverse=True)
    if after_ms is not None and group and group[0][2] == after_ms:
        group = [r for r in group if r[1] < after_id]  # type: ignore[operator]
    return group


def _phrase(t: an.Term) -> str:
    return f'{t.field} : "{" ".join(t.tokens)}"'


def _fts_expr(node: an.Node) -> str | None:
    """One FTS5 MATCH expression for the tree, or None where FTS5 cannot say it (a NOT with
    nothing positive beside it)."""
    if isinstance(node, an.Term):
        return _phrase(node)
    if isinstance(node, an.Or):
        parts = [_fts_expr(i) for i in node.items]
        return None if any(p is None for p in parts) else "(" + " OR ".join(parts) + ")"  # type: ignore[arg-type]
    if isinstance(node, an.And):
        pos = [_fts_expr(i) for i in node.items if not isinstance(i, an.Not)]
        neg = [_fts_expr(i.item) for i in node.items if isinstance(i, an.Not)]
        if not pos or any(p is None for p in pos) or any(n is None for n in neg):
            return None
        expr = "(" + " AND ".join(pos) + ")"  # type: ignore[arg-type]
        for n in neg:
            expr = f"({expr} NOT {n})"
        return expr
    return None


def _text_sql(node: an.Node, lo: int | None, hi: int | None) -> tuple[str, list[Any]]:
    """The text part as a condition on p.rid (used where FTS5 does not drive the query)."""
    expr = _fts_expr(node)
    if expr is not None:
        rng, rparams = _rowid_range("rowid", lo, hi)
        return f"p.rid IN (SELECT rowid FROM fts WHERE fts MATCH ?{rng})", [expr, *rparams]
    if isinstance(node, an.Not):
        inner, params = _text_sql(node.item, lo, hi)
        return f"NOT ({inner})", params
    if isinstance(node, (an.And, an.Or)):
        parts, params = [], []
        for item in node.items:
            s, p = _text_sql(item, lo, hi)
            parts.append(f"({s})")
            params.extend(p)
        return (" AND " if isinstance(node, an.And) else " OR ").join(parts), params
    if isinstance(node, an.Const):
        return ("1" if node.value else "0"), []
    raise TypeError(node)


__all__ = ["SqliteStore"]
