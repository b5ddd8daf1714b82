"""The daily retention job removes what is past `privacy.retention_days`, and only that."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from index import Query, open_store
from yuqing import ids
from yuqing.config import load_settings
from yuqing.records import Post
from yuqing.scheduler import retention_job
from yuqing.state.db import connect, migrate
from yuqing.state.inbox import Inbox


def test_retention_removes_old_posts_and_processed_inbox_rows(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "d"), "privacy": {"retention_days": 30}}))
    settings = load_settings(config)
    engine = connect(settings.state_url)
    migrate(engine)
    store = open_store(settings)
    store.ensure_schema()
    now = datetime.now(timezone.utc)
    posts = [
        Post(id=ids.doc_id(url=f"http://x/{age}"), source="s", published_at=now - timedelta(days=age), fetched_at=now,
             text=f"兰山市水务局 {age}", text_hash=ids.text_hash(f"兰山市水务局 {age}"))
        for age in (1, 29, 31, 400)
    ]
    assert all(r.ok for r in store.bulk_index(posts))
    inbox = Inbox(engine)
    inbox.enqueue(posts, now=now - timedelta(days=40))
    claimed = inbox.claim("w", 10, timedelta(minutes=1), now=now - timedelta(days=40))
    inbox.complete([c.inbox_id for c in claimed], "w", now=now - timedelta(days=40))

    retention_job(str(config))

    store.refresh()
    kept = {h.post.id for h in store.search(Query(size=10)).hits}
    assert kept == {posts[0].id, posts[1].id}
    assert inbox.depth()["done"] == 0
    store.close()
    engine.dispose()
