"""SIGKILL the worker while it holds a batch taken from the inbox; after a restart every post is
indexed exactly once.

The worker is made to hold its batch by a real condition, not a hook: the test holds the
SQLite index's write lock, so the worker's bulk write waits with the batch claimed."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa
import yaml

from index import Query, open_store
from yuqing import ids
from yuqing.config import load_settings
from yuqing.records import Post
from yuqing.state.db import connect, migrate
from yuqing.state.inbox import Inbox
from yuqing.state.schema import inbox as inbox_t

ROOT = Path(__file__).resolve().parents[2]
N = 120


def _config(tmp_path: Path, model_dir: Path) -> Path:
    cfg = {
        "data_dir": str(tmp_path / "data"),
        "models_dir": str(model_dir.parent),
        "nlp": {"model": model_dir.name, "batch_size": 16},
        "worker": {"batch_size": 20, "lease": "2s", "poll": "0.2s"},
        "watchlists": [{"name": "agency", "terms": ["兰山市水务局"]}],
    }
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return p


def _posts() -> list[Post]:
    now = datetime.now(timezone.utc)
    texts = ["兰山市水务局 北湖停水 {i}", "Lanshan Water Affairs Bureau says repairs underway {i}", "هيئة المياه في لانشان {i}"]
    out = []
    for i in range(N):
        text = texts[i % 3].format(i=i)
        out.append(Post(id=ids.doc_id(url=f"http://example.cn/p/{i}"), url=f"http://example.cn/p/{i}", source="s",
                        published_at=now - timedelta(minutes=i), fetched_at=now, text=text,
                        text_hash=ids.text_hash(text), watchlists=["agency"]))
    return out


def _worker(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "yuqing.cli", "worker", "--config", str(config), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigkill_while_holding_a_batch_loses_nothing_and_duplicates_nothing(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = _config(tmp_path, tiny_model_dir)
    settings = load_settings(config)
    engine = connect(settings.state_url)
    migrate(engine)
    store = open_store(settings)
    store.ensure_schema()
    inbox = Inbox(engine)
    proc = _worker(config)
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    lock = sqlite3.connect(settings.sqlite_index_path, timeout=1, isolation_level=None)
    try:
        deadline = time.monotonic() + 120
        while not any(b"ready" in line for line in lines) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert any(b"ready" in line for line in lines), b"".join(lines).decode()
        lock.execute("BEGIN IMMEDIATE")  # the index is busy: the worker's write must wait
        assert all(e.accepted for e in inbox.enqueue(_posts()))
        held: list[sa.Row] = []
        deadline = time.monotonic() + 60
        while not held and time.monotonic() < deadline:
            with engine.connect() as c:
                held = c.execute(sa.select(inbox_t.c.id, inbox_t.c.claimed_by).where(inbox_t.c.status == "claimed")).all()
            time.sleep(0.05)
        assert held, "the worker never claimed a batch: " + b"".join(lines).decode()
        time.sleep(0.5)  # it is now classifying or blocked on the index write
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        lock.execute("ROLLBACK")
        lock.close()

    assert store.count(Query()) == 0
    assert inbox.depth()["done"] == 0
    assert inbox.depth()["claimed"] == len(held)

    time.sleep(2.2)  # the dead worker's lease runs out
    restarted = _worker(config, "--once")
    out, _ = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, out.decode()

    store.refresh()
    assert inbox.depth() == {"pending": 0, "claimed": 0, "done": N, "failed": 0}
    assert store.count(Query()) == N
    page = store.search(Query(size=1000))
    got = [h.post.id for h in page.hits]
    assert len(got) == N and len(set(got)) == N
    assert set(got) == {p.id for p in _posts()}
    assert all(h.post.classification is not None for h in page.hits)
    with engine.connect() as c:
        retaken = c.execute(sa.select(sa.func.count()).where(inbox_t.c.id.in_([r.id for r in held]), inbox_t.c.attempts == 2)).scalar()
    assert retaken == len(held)
    store.close()
    engine.dispose()
