"""What only the embedded backend has to prove: readers in other threads while the worker
writes (WAL, one connection per thread), and a locked database reported per item as
retryable instead of losing posts."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC
from pathlib import Path

from index.base import Query
from index.sqlite import SqliteStore
from tests.index.corpus import generate

POSTS = [g.post for g in generate(120, seed=3)]


def test_readers_in_threads_while_writing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "index.db")
    store.ensure_schema()
    assert store._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    errors: list[BaseException] = []
    seen: list[list[int]] = [[], [], []]
    done = threading.Event()

    def read(mine: list[int]) -> None:
        try:
            while not done.is_set():
                n = store.count(Query())
                page = store.search(Query(size=5))
                assert page.total >= n  # committed batches only ever add posts
                mine.append(page.total)
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)

    readers = [threading.Thread(target=read, args=(seen[i],)) for i in range(3)]
    for t in readers:
        t.start()
    for i in range(0, len(POSTS), 10):
        assert all(r.ok for r in store.bulk_index(POSTS[i : i + 10]))
    done.set()
    for t in readers:
        t.join(10)
    assert not errors, errors
    for mine in seen:  # each reader saw whole batches appear, never a count going back
        assert mine and mine == sorted(mine) and all(n % 10 == 0 for n in mine)
        assert mine[-1] <= len(POSTS)
    assert store.count(Query()) == len(POSTS)
    store.close()


def test_locked_database_fails_every_item_retryable(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    store = SqliteStore(path, busy_timeout_s=0.2)
    store.ensure_schema()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        res = store.bulk_index(POSTS[:3])
        assert [r.id for r in res] == [p.id for p in POSTS[:3]]
        assert all(not r.ok and r.retryable and r.error for r in res)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert all(r.ok for r in store.bulk_index(POSTS[:3]))
    assert store.count(Query()) == 3
    store.close()


def test_reopen_keeps_data_and_schema_is_idempotent(tmp_path: Path) -> None:
    s1 = SqliteStore(tmp_path / "index.db")
    s1.ensure_schema()
    s1.bulk_index(POSTS[:10])
    s1.close()
    s2 = SqliteStore(tmp_path / "index.db")
    s2.ensure_schema()
    s2.ensure_schema()
    assert s2.count(Query()) == 10
    assert s2.get(POSTS[0].id) == POSTS[0]
    s2.close()


def test_pagination_is_stable_while_posts_arrive(tmp_path: Path) -> None:
    from tests.index.test_elastic import _pagination_stable

    store = SqliteStore(tmp_path / "index.db")
    store.ensure_schema()
    _pagination_stable(store)
    store.close()


def test_ensure_schema_does_not_wait_for_another_writer(tmp_path: Path) -> None:
    """A worker or the API starting while another process holds the index write lock (a long
    bulk) must find the existing schema with a read, not fail on "database is locked"."""
    path = tmp_path / "index.db"
    first = SqliteStore(path)
    first.ensure_schema()
    first.bulk_index(POSTS[:3])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    other.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    try:
        store = SqliteStore(path, busy_timeout_s=5.0)
        t0 = time.monotonic()
        store.ensure_schema()
        store.ensure_schema()
        assert store.count(Query()) == 3  # and it reads
        assert time.monotonic() - t0 < 1.0
        store.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    first.close()


def test_ensure_schema_creates_under_the_lock_once(tmp_path: Path) -> None:
    """A new file: the schema is created; a locked new file is reported as unavailable (the
    caller retries), not half-created."""
    import pytest

    from index.base import StoreUnavailable

    path = tmp_path / "index.db"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("PRAGMA journal_mode=WAL")
    blocker.execute("BEGIN IMMEDIATE")
    store = SqliteStore(path, busy_timeout_s=0.2)
    with pytest.raises(StoreUnavailable):
        store.ensure_schema()
    blocker.execute("ROLLBACK")
    blocker.close()
    store.close()
    store = SqliteStore(path)
    store.ensure_schema()
    from index.sqlite import SCHEMA_VERSION

    assert store._conn().execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    store.close()


def test_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    import pytest

    from index.base import StoreUnavailable

    path = tmp_path / "index.db"
    s = SqliteStore(path)
    s.ensure_schema()
    s._conn().execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    s.close()
    with pytest.raises(StoreUnavailable, match="newer"):
        SqliteStore(path).ensure_schema()


def test_post_time_beyond_the_storable_range_fails_alone(tmp_path: Path) -> None:
    """A rid is (ms << 16) | slot in 64 bits: a post after 6429 cannot be stored. It fails on
    its own, not retryable, with the reason; the rest of the batch is indexed."""
    from datetime import datetime

    from index.common import from_ms
    from index.sqlite import MAX_MS

    store = SqliteStore(tmp_path / "index.db")
    far = POSTS[1].model_copy(update={"published_at": datetime(7231, 1, 1, tzinfo=UTC)})
    last = POSTS[2].model_copy(update={"published_at": from_ms(MAX_MS)})
    huge = POSTS[3].model_copy(update={"engagement": POSTS[3].engagement.model_copy(update={"likes": 1 << 70})})
    res = store.bulk_index([POSTS[0], far, last, huge])
    assert [r.ok for r in res] == [True, False, True, False]
    assert res[1].retryable is False and "7231" in (res[1].error or "") and "6429" in (res[1].error or "")
    assert res[3].retryable is False and "64-bit" in (res[3].error or "")
    assert store.count(Query()) == 2
    assert store.get(last.id) == last
    assert store.search(Query(size=1)).hits[0].post.id == last.id
    assert store.count(Query(start=datetime(6000, 1, 1, tzinfo=UTC))) == 1
    store.close()


def test_cursor_with_out_of_range_numbers_does_not_overflow(tmp_path: Path) -> None:
    from index.common import encode_cursor

    store = SqliteStore(tmp_path / "index.db")
    store.bulk_index(POSTS[:20])
    for sort, values in (
        ("time", [1 << 80, "zzz"]),
        ("time", [-(1 << 80), "zzz"]),
        ("engagement", [1 << 80, 1 << 80, "zzz"]),
        ("rumor", [0.5, -(1 << 80), "zzz"]),
    ):
        page = store.search(Query(sort=sort, size=5, cursor=encode_cursor(sort, values)))  # type: ignore[arg-type]
        assert page.total == 20
    store.close()


def test_analysis_in_worker_processes_stores_the_same(tmp_path: Path) -> None:
    """A big bulk analysed partly in worker processes stores exactly what one process stores,
    and a post that fails analysis there still fails alone."""
    plain = SqliteStore(tmp_path / "plain.db")
    pooled = SqliteStore(tmp_path / "pooled.db", analysis_processes=1, analysis_pool_min=10)
    bad = POSTS[5].model_copy(update={"text": "broken \ud800 surrogate"})
    batch = [*POSTS[:5], bad, *POSTS[6:]]
    r1, r2 = plain.bulk_index(batch), pooled.bulk_index(batch)
    assert pooled._pool is not None
    assert [(r.id, r.ok, r.retryable) for r in r1] == [(r.id, r.ok, r.retryable) for r in r2]
    assert not r2[5].ok and not r2[5].retryable
    for sql in ("SELECT rowid, zh, ar, en, std FROM fts ORDER BY rowid", "SELECT * FROM docs ORDER BY rid", "SELECT * FROM posts ORDER BY rid"):
        assert plain._conn().execute(sql).fetchall() == pooled._conn().execute(sql).fetchall()
    plain.close()
    pooled.close()
    assert pooled._pool is None


def _fts_check(store: SqliteStore) -> None:
    """FTS5's own consistency check of its index against the content it indexes."""
    store._conn().execute("INSERT INTO fts (fts, rank) VALUES ('integrity-check', 1)")


def test_reindex_replaces_the_indexed_tokens(tmp_path: Path) -> None:
    """Replacing a post (its older copy deleted in the same transaction, chunk by chunk) must
    remove the old copy's tokens from the index, or the old text would still match."""
    store = SqliteStore(tmp_path / "index.db")
    assert all(r.ok for r in store.bulk_index(POSTS[:40]))
    old = POSTS[0]
    new = old.model_copy(update={"title": None, "text": "zebrafish quokka 斑马鱼"})
    assert store.count(Query(text="quokka")) == 0
    assert all(r.ok for r in store.bulk_index([new]))
    assert store.count(Query(text="quokka")) == 1 and store.count(Query(text="斑马")) == 1
    assert store.get(old.id) == new
    for w in {w for w in old.text.split() if len(w) > 3}:
        ids = {h.post.id for h in store.search(Query(text=f'"{w}"', size=100)).hits}
        assert old.id not in ids or w in new.text
    _fts_check(store)
    store.delete_by_query(Query(text="quokka"))
    assert store.count(Query(text="quokka")) == 0 and store.count(Query()) == 39
    _fts_check(store)
    store.close()


def test_pooled_bulk_over_many_chunks_replaces_and_dedupes_like_one_process(tmp_path: Path) -> None:
    """Several chunks analysed in a worker process while this one writes: re-indexed posts
    (older copies stored before), an id twice in one call (the last copy wins) and a post
    that fails analysis give exactly what one process gives, and FTS5 stays consistent."""
    big = [g.post for g in generate(420, seed=7)]
    changed = [p.model_copy(update={"text": p.text + " refreshed"}) for p in big[:30]]
    bad = big[100].model_copy(update={"text": "broken \ud800 surrogate"})
    batch = [*big[30:100], bad, *big[101:], *changed, big[200]]
    plain = SqliteStore(tmp_path / "plain.db")
    pooled = SqliteStore(tmp_path / "pooled.db", analysis_processes=1, analysis_pool_min=10)
    for s in (plain, pooled):
        assert all(r.ok for r in s.bulk_index(big[:40]))
    r1, r2 = plain.bulk_index(batch), pooled.bulk_index(batch)
    assert pooled._pool is not None
    assert [(r.id, r.ok, r.retryable, r.error) for r in r1] == [(r.id, r.ok, r.retryable, r.error) for r in r2]
    assert sum(not r.ok for r in r2) == 1
    for sql in ("SELECT * FROM docs ORDER BY rid", "SELECT * FROM posts ORDER BY rid", "SELECT * FROM tags ORDER BY rid, kind, value"):
        assert plain._conn().execute(sql).fetchall() == pooled._conn().execute(sql).fetchall()
    assert pooled.count(Query(text="refreshed")) == 30 and pooled.count(Query()) == 419
    _fts_check(pooled)
    plain.close()
    pooled.close()


def test_fts_settings_are_stored_and_postings_flushed_mid_transaction_are_all_found(tmp_path: Path) -> None:
    """`automerge` and `hashsize` are set on the new FTS table (persistent); and a bulk whose
    postings overflow the hash many times within one transaction (forced here with a 4 KiB
    hash, so segments are flushed mid-transaction) finds exactly what a store that flushes
    once finds, for every word of every post, and for phrases."""
    big = SqliteStore(tmp_path / "big.db")
    big.ensure_schema()
    SqliteStore(tmp_path / "small.db").ensure_schema()
    with sqlite3.connect(tmp_path / "big.db") as c:
        assert dict(c.execute("SELECT k, v FROM fts_config WHERE k IN ('automerge', 'hashsize')")) == {
            "automerge": 16, "hashsize": 16 * 1024 * 1024}
    with sqlite3.connect(tmp_path / "small.db") as c:
        c.execute("INSERT INTO fts (fts, rank) VALUES ('hashsize', 4096)")
    small = SqliteStore(tmp_path / "small.db")
    big.bulk_index(POSTS)
    small.bulk_index(POSTS)
    with sqlite3.connect(tmp_path / "small.db") as c:
        segments = c.execute("SELECT count(*) FROM fts_idx").fetchone()[0]
    with sqlite3.connect(tmp_path / "big.db") as c:
        assert c.execute("SELECT count(*) FROM fts_idx").fetchone()[0] < segments  # the flushes happened
    words = sorted({w for p in POSTS for w in p.text.split() if w.isalpha()})[:200]
    phrases = [" ".join(p.text.split()[:2]) for p in POSTS[:20]]
    for q in words + [f'"{ph}"' for ph in phrases if ph.strip()]:
        query = Query(text=q, size=1000)
        assert [h.post.id for h in big.search(query).hits] == [h.post.id for h in small.search(query).hits], q
    assert big.count(Query(text=words[0])) > 0
    big.close()
    small.close()


def test_commits_are_checkpointed_by_the_background_thread(tmp_path: Path) -> None:
    """The writer's connections never checkpoint inside a commit (wal_autocheckpoint 0); the
    checkpointer thread copies each commit's WAL frames into the database file, a reader in
    another connection sees everything meanwhile, and close() ends the thread."""
    path = tmp_path / "index.db"
    store = SqliteStore(path)
    store.ensure_schema()
    assert store._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    assert all(r.ok for r in store.bulk_index(POSTS[:60]))

    def in_file() -> int:  # posts in the database file itself, the WAL ignored
        raw = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            return int(raw.execute("SELECT count(*) FROM posts").fetchone()[0])
        except sqlite3.Error:  # the schema itself not copied yet
            return -1
        finally:
            raw.close()

    deadline = time.monotonic() + 10
    while in_file() != 60 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert in_file() == 60 and store.checkpoints >= 1
    other = sqlite3.connect(path, isolation_level=None)  # a reader sees the same
    assert other.execute("SELECT count(*) FROM posts").fetchone()[0] == 60
    other.close()
    thread = store._ckpt_thread
    assert thread is not None and thread.is_alive()
    store.close()
    assert not thread.is_alive()


# Runs the store on another SQLite in a process of its own: two copies of SQLite must never open
# one file in one process (they do not see each other's POSIX locks).
_CURRENT_SQLITE_PLAN = r"""
import json, sys
import sqlean
sys.modules["sqlite3"] = sqlean  # index.sqlite imports this instead of the interpreter's SQLite
from index.base import Query
from index.sqlite import SqliteStore
from tests.index.corpus import generate

store = SqliteStore(sys.argv[1])
assert all(r.ok for r in store.bulk_index([g.post for g in generate(300, seed=3)]))
conn = store._conn()
out = {"version": sqlean.sqlite_version, "queries": []}
for q in json.loads(sys.argv[2]):
    seen = []
    conn.set_trace_callback(seen.append)
    page = store.search(Query.model_validate(q))
    conn.set_trace_callback(None)
    sql = [s for s in seen if "FROM fts f" in s]
    plan = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql[0])]
    out["queries"].append({"ids": [h.post.id for h in page.hits], "total": page.total, "plan": plan})
store.close()
print(json.dumps(out))
"""


def test_full_text_search_drives_from_fts5_on_a_current_sqlite(tmp_path: Path) -> None:
    """A text search with a facet filter must walk FTS5 and look each hit up in `posts`, on any
    SQLite. SQLite 3.50's planner, left to choose, scanned the facet's index over the whole time
    range and probed FTS5 once per post (~500x slower at 100k posts); the store's CROSS JOIN pins
    the order. The same queries must also return the same pages as on this interpreter's SQLite."""
    span = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}  # the bad plan needs a time range
    queries = [
        {"text": "政府", "langs": ["zh"], "size": 5, **span},
        {"text": "flood OR rescue", "sentiments": ["negative"], "size": 5, **span},
        {"text": "flood", "platforms": ["weibo"], "sort": "relevance", "size": 5, **span},
    ]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _CURRENT_SQLITE_PLAN, str(tmp_path / "current.db"), json.dumps(queries)],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr  # sqlean.py is a dev dependency: pip install -e .[dev]
    out = json.loads(proc.stdout)
    assert tuple(int(x) for x in out["version"].split(".")[:2]) > (3, 40), out["version"]
    here = SqliteStore(tmp_path / "here.db")
    assert all(r.ok for r in here.bulk_index([g.post for g in generate(300, seed=3)]))
    for q, got in zip(queries, out["queries"]):
        steps = [s for s in got["plan"] if s.startswith(("SCAN", "SEARCH"))]
        assert steps[0].startswith("SCAN f VIRTUAL TABLE"), (q, got["plan"])
        assert any(s.startswith("SEARCH p USING INTEGER PRIMARY KEY") for s in steps[1:]), (q, got["plan"])
        page = here.search(Query.model_validate(q))
        assert got["total"] > 0 and got["ids"], q  # the queries are not vacuous
        assert (got["ids"], got["total"]) == ([h.post.id for h in page.hits], page.total), q
    here.close()
