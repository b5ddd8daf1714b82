"""The crawl queue between the scheduler and the crawler processes, on SQLite and PostgreSQL:
requests coalesce per source, claims never collide, a dead crawler's request is taken over."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
import yaml

from yuqing.crawler import run_one
from yuqing.state.crawls import CrawlQueue
from yuqing.state.schema import crawl_queue

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def test_one_active_request_per_source(state_engine: sa.Engine) -> None:
    q = CrawlQueue(state_engine)
    assert q.request("news", T0) is True
    assert q.request("news", T0) is False  # still pending: coalesced
    assert q.request("forum", T0) is True
    r = q.claim("c1", timedelta(minutes=5), T0)
    assert r is not None and r.source == "news"
    assert q.request("news", T0) is False  # running: still one at a time
    assert q.finish(r.id, "c1", True, {"enqueued": 3}, T0) is True
    assert q.request("news", T0) is True  # done: the next run may be asked for


def test_lease_takeover_and_the_late_crawler_cannot_finish(state_engine: sa.Engine) -> None:
    q = CrawlQueue(state_engine)
    q.request("news", T0)
    first = q.claim("dead", timedelta(minutes=5), T0)
    assert first is not None
    assert q.claim("other", timedelta(minutes=5), T0 + timedelta(minutes=1)) is None
    again = q.claim("other", timedelta(minutes=5), T0 + timedelta(minutes=6))
    assert again is not None and again.id == first.id and again.attempts == 2
    assert q.finish(first.id, "dead", True, {}) is False
    assert q.finish(again.id, "other", False, {"messages": ["x"]}) is True
    with state_engine.connect() as c:
        row = c.execute(sa.select(crawl_queue)).one()
    assert row.status == "failed" and json.loads(row.report) == {"messages": ["x"]}


def test_concurrent_crawlers_never_take_the_same_request(state_engine: sa.Engine) -> None:
    q = CrawlQueue(state_engine)
    for i in range(60):
        q.request(f"s{i}", T0)
    got: list[int] = []
    lock = threading.Lock()

    def crawler(name: str) -> None:
        while (r := q.claim(name, timedelta(minutes=5))) is not None:
            with lock:
                got.append(r.id)
            q.finish(r.id, name, True, {})

    threads = [threading.Thread(target=crawler, args=(f"c{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(set(got)) and len(got) == 60


def test_a_request_for_a_removed_source_fails_with_the_reason(tmp_path: Path, state_url: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "d"), "state": {"url": state_url},
                                      "sources": [{"name": "kept", "kind": "feed", "url": "http://127.0.0.1:9/f"}]}))
    from yuqing.state.db import connect, migrate

    engine = connect(state_url)
    migrate(engine)
    q = CrawlQueue(engine)
    q.request("removed")
    assert run_one(q, str(config), "c1") is True
    with engine.connect() as c:
        row = c.execute(sa.select(crawl_queue)).one()
    assert row.status == "failed" and "no source named 'removed' (known: kept)" in row.report
    assert run_one(q, str(config), "c1") is False  # nothing left
    engine.dispose()
