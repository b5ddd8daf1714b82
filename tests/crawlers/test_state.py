"""The source cursor and health row, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from crawlers.state import Cursor, SourceStore

T0 = datetime(2024, 12, 15, 8, 0, tzinfo=timezone.utc)


def test_record_runs_and_cursor(state_engine: sa.Engine) -> None:
    store = SourceStore(state_engine)
    assert store.get("s") is None and store.cursor("s") == Cursor()

    c1 = Cursor(http={"http://x/feed": {"etag": '"a"'}}, seen={"d1": "2024-12-15T08:00:00+00:00"})
    store.record_run("s", finished=T0, cursor=c1, succeeded=True, error=None, enqueued=3)
    store.record_run("s", finished=T0 + timedelta(minutes=5), cursor=None, succeeded=False,
                     error="source s: http://x/feed: HTTP 500", enqueued=0)
    h = store.get("s")
    assert h is not None
    assert (h.runs, h.errors, h.items_last_run, h.items_total) == (2, 1, 0, 3)
    assert h.last_success == T0 and h.last_run == T0 + timedelta(minutes=5)
    assert h.last_error == "source s: http://x/feed: HTTP 500"
    assert h.cursor.http == c1.http and h.cursor.seen == c1.seen  # a failed run kept the cursor

    store.record_run("s", finished=T0 + timedelta(minutes=10), cursor=c1, succeeded=True, error=None, enqueued=2)
    h = store.get("s")
    assert h is not None and h.last_error is None and h.items_total == 5 and h.runs == 3


def test_cursor_bounds_the_seen_set_and_keeps_unknown_keys() -> None:
    seen = {f"d{i:04d}": (T0 + timedelta(seconds=i)).isoformat() for i in range(50)}
    c = Cursor(seen=seen, extra={"since_id": "123"})
    back = Cursor.from_json(c.to_json(seen_max=10))
    assert sorted(back.seen) == [f"d{i:04d}" for i in range(40, 50)]  # the newest kept
    assert back.extra == {"since_id": "123"}
    assert Cursor.from_json("{not json") == Cursor()
