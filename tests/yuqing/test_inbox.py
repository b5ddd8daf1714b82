"""The durable inbox on SQLite and PostgreSQL: idempotent enqueue, text folding, leases,
concurrent workers that never take the same post."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from yuqing import ids
from yuqing.records import Post
from yuqing.state.inbox import Inbox

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def _post(i: int, text: str | None = None) -> Post:
    text = text or f"兰山市水务局 post {i}"
    return Post(
        id=ids.doc_id(url=f"http://example.cn/p/{i}"), source="s", published_at=NOW, fetched_at=NOW,
        text=text, text_hash=ids.text_hash(text),
    )


def test_enqueue_is_idempotent_and_folds_identical_texts(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    first = inbox.enqueue([_post(1, "水有毒 转发"), _post(2, "水有毒  转发"), _post(3)], now=NOW)
    assert [e.accepted for e in first] == [True, True, True]
    assert first[1].cluster_id == first[0].doc_id and first[1].cluster_size == 2
    again = inbox.enqueue([_post(1), _post(2)], now=NOW)
    assert [e.accepted for e in again] == [False, False]
    assert inbox.depth()["pending"] == 3
    claimed = inbox.claim("w", 10, timedelta(minutes=1), now=NOW)
    assert [c.post.cluster_size for c in claimed] == [1, 2, 1]


def test_lease_expiry_hands_the_batch_to_another_worker(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    inbox.enqueue([_post(i) for i in range(5)], now=NOW)
    a = inbox.claim("a", 3, timedelta(minutes=1), now=NOW)
    assert len(a) == 3
    assert len(inbox.claim("b", 10, timedelta(minutes=10), now=NOW)) == 2  # only the unclaimed
    late = inbox.claim("c", 10, timedelta(minutes=1), now=NOW + timedelta(minutes=2))
    assert sorted(c.inbox_id for c in late) == sorted(c.inbox_id for c in a)
    assert all(c.attempts == 2 for c in late)
    # the worker that lost its lease can no longer complete
    assert inbox.complete([c.inbox_id for c in a], "a") == 0
    assert inbox.complete([c.inbox_id for c in late], "c") == 3


def test_release_retries_then_fails_but_an_outage_costs_no_attempt(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    inbox.enqueue([_post(1)], now=NOW)
    for _ in range(3):
        (c,) = inbox.claim("w", 1, timedelta(minutes=1))
        status = inbox.release([c.inbox_id], "w", "index down", max_attempts=3, charge=False)
        assert status == {c.inbox_id: "pending"}
    for attempt in range(1, 4):
        (c,) = inbox.claim("w", 1, timedelta(minutes=1))
        assert c.attempts == attempt
        status = inbox.release([c.inbox_id], "w", "mapping error", max_attempts=3)
    assert status == {c.inbox_id: "failed"}
    assert inbox.depth()["failed"] == 1
    assert inbox.claim("w", 1, timedelta(minutes=1)) == []
    assert inbox.retry_failed() == 1


def test_concurrent_workers_never_take_the_same_post(state_engine: sa.Engine) -> None:
    inbox = Inbox(state_engine)
    inbox.enqueue([_post(i) for i in range(300)], now=NOW)
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        mine: list[int] = []
        try:
            while batch := inbox.claim(name, 7, timedelta(minutes=5)):
                mine += [c.inbox_id for c in batch]
                inbox.complete([c.inbox_id for c in batch], name)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        taken[name] = mine

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    every = [i for ids_ in taken.values() for i in ids_]
    assert len(every) == 300 and len(set(every)) == 300
    assert inbox.depth() == {"pending": 0, "claimed": 0, "done": 300, "failed": 0}
