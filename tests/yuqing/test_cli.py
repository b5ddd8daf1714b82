"""The thin commands over the same code: search, alerts, token, check-config, crawl errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from index import open_store
from yuqing import ids
from yuqing.config import load_settings
from yuqing.records import Classification, Post
from yuqing.state.db import connect, migrate

ROOT = Path(__file__).resolve().parents[2]


def _yuqing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "yuqing.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "sources": [{"name": "news", "kind": "feed", "url": "http://127.0.0.1:9/feed.xml"}],
        "watchlists": [{"name": "agency", "terms": ["兰山市水务局"]}],
    }, allow_unicode=True), encoding="utf-8")
    settings = load_settings(p)
    store = open_store(settings)
    store.ensure_schema()
    now = datetime.now(timezone.utc)
    texts = [("zh", "兰山市水务局回应自来水发黄"), ("en", "Lanshan water bureau answers questions"), ("zh", "今天天气不错")]
    posts = [
        Post(id=ids.doc_id(url=f"http://x/{i}"), source="news", published_at=now - timedelta(minutes=i), fetched_at=now,
             lang=lang, text=text, watchlists=["agency"],
             classification=Classification(sentiment="negative", sentiment_scores={"negative": 0.8, "neutral": 0.1, "positive": 0.1},
                                           rumor=0.2, model="t@1"))
        for i, (lang, text) in enumerate(texts)
    ]
    assert all(r.ok for r in store.bulk_index(posts))
    store.close()
    return p


def test_search_finds_a_two_character_chinese_word(config: Path) -> None:
    r = _yuqing("search", "--config", str(config), "水务", "--json")
    assert r.returncode == 0, r.stderr
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert [h["text"] for h in hits] == ["兰山市水务局回应自来水发黄"]
    r = _yuqing("search", "--config", str(config), "bureau")
    assert r.returncode == 0 and r.stdout.startswith("1 posts") and "negative" in r.stdout


def test_token_then_alerts_list(config: Path) -> None:
    r = _yuqing("token", "--config", str(config), "dashboard", "--role", "viewer")
    assert r.returncode == 0 and len(r.stdout.strip()) > 20
    from api.security import authenticate

    settings = load_settings(config)
    engine = connect(settings.state_url)
    migrate(engine)
    assert authenticate(engine, r.stdout.strip()) is not None
    r = _yuqing("alerts", "--config", str(config))
    assert r.returncode == 0 and r.stdout == ""  # no alerts yet, and no noise


def test_missing_config_and_unknown_source_are_clear(tmp_path: Path, config: Path) -> None:
    r = _yuqing("search", "--config", str(tmp_path / "none.yaml"), "x")
    assert r.returncode == 2 and "configuration file not found" in r.stderr and "Traceback" not in r.stderr
    r = _yuqing("crawl", "--config", str(config), "nope")
    assert r.returncode == 2 and "no source named 'nope' (known: news)" in r.stderr


def test_backtest_prints_one_json_line_per_alert(tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = ["timestamp,value"]
    for i in range(12 * 24 * 4):  # four days of 5-minute counts, one spike
        v = 40 + (i % 12) + (400 if 12 * 24 * 3 + 100 <= i < 12 * 24 * 3 + 106 else 0)
        rows.append(f"{(start + timedelta(minutes=5 * i)).strftime('%Y-%m-%d %H:%M:%S')},{v}")
    series = tmp_path / "s.csv"
    series.write_text("\n".join(rows) + "\n")
    r = _yuqing("alerts", "backtest", "--series", str(series))
    assert r.returncode == 0, r.stderr
    alerts = [json.loads(line) for line in r.stdout.splitlines()]
    assert alerts, "the spike raised nothing"
    assert set(alerts[0]) >= {"timestamp", "level", "score", "rule"}
    spike_start = start + timedelta(minutes=5 * (12 * 24 * 3 + 100))
    first = datetime.fromisoformat(alerts[0]["timestamp"]).replace(tzinfo=timezone.utc)
    assert spike_start <= first <= spike_start + timedelta(minutes=30)
