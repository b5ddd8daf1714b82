"""What only the embedded backend has to prove: readers in other threads while the worker
writes (WAL, one connection per thread), and a locked database reported per item as
retryable instead of losing posts."""

from __future__ import annotations

import sqlite3
import threading
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
