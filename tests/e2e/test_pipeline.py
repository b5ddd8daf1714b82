"""The whole flow on one machine: a fixture news site (RSS + article pages in zh/en/ar) on
127.0.0.1 → a real Scrapy crawl → the durable inbox → the worker with a tiny model built at test
time → the SQLite index → the detector on a spike → the alert and the posts read back through
the HTTP API."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from alerts.service import run_detection
from api.main import create_app
from api.security import create_token
from crawlers.run import crawl_in_subprocess
from index import Query, open_store
from yuqing.config import load_settings
from yuqing.state.db import connect, migrate
from yuqing.state.inbox import Inbox
from yuqing.worker import run_worker

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TEXTS = {
    "zh": "北湖区自来水发黄，兰山市水务局热线一直占线，居民很担心。第{i}条",
    "en": "Residents say the Lanshan Water Affairs Bureau has not explained the brown water, report {i}",
    "ar": "السكان يشتكون من لون المياه وهيئة المياه في لانشان لم ترد بعد، رقم {i}",
}


def _articles() -> list[dict]:
    """8 quiet posts over the last 8 hours, then a spike of 30 in the last 10 minutes, plus one
    post that mentions nobody we watch (it must be dropped)."""
    out = []
    for i in range(8):
        lang = ("zh", "en", "ar")[i % 3]
        out.append({"i": i, "lang": lang, "when": NOW - timedelta(hours=8) + timedelta(hours=i), "text": TEXTS[lang].format(i=i)})
    for j in range(30):
        i = 100 + j
        lang = ("zh", "en", "ar")[j % 3]
        out.append({"i": i, "lang": lang, "when": NOW - timedelta(minutes=10) + timedelta(seconds=19 * j), "text": TEXTS[lang].format(i=i)})
    out.append({"i": 999, "lang": "en", "when": NOW - timedelta(minutes=3), "text": "Football results from the weekend."})
    return out


class _Site(BaseHTTPRequestHandler):
    articles = {f"/a/{a['i']}.html": a for a in _articles()}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/robots.txt":
            body, ctype = b"User-agent: *\nAllow: /\n", "text/plain"
        elif self.path == "/feed.xml":
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            items = "".join(
                f"<item><title>{html.escape(a['text'][:30])}</title><link>{base}{p}</link><guid>{base}{p}</guid>"
                f"<pubDate>{format_datetime(a['when'])}</pubDate><description>{html.escape(a['text'])}</description></item>"
                for p, a in self.articles.items()
            )
            body = (f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Lanshan</title>'
                    f"<link>{base}/</link><description>x</description>{items}</channel></rss>").encode()
            ctype = "application/rss+xml; charset=utf-8"
        elif self.path in self.articles:
            a = self.articles[self.path]
            body = (f'<!doctype html><html lang="{a["lang"]}"><head><meta charset="utf-8"><title>{html.escape(a["text"][:30])}</title></head>'
                    f'<body><article><h1>{html.escape(a["text"][:30])}</h1><time datetime="{a["when"].isoformat()}"></time>'
                    f'<p>{html.escape(a["text"])}</p></article></body></html>').encode()
            ctype = "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_crawl_classify_index_detect_and_serve(tmp_path: Path, site: str, tiny_model_dir: Path) -> None:
    cfg = {
        "timezone": "Asia/Shanghai",
        "data_dir": str(tmp_path / "data"),
        "models_dir": str(tiny_model_dir.parent),
        "nlp": {"model": tiny_model_dir.name},
        "sources": [{"name": "lanshan-news", "kind": "feed", "url": f"{site}/feed.xml", "interval": "5m", "platform": "news",
                     "tier": "local_media", "timezone": "Asia/Shanghai"}],
        "watchlists": [{"name": "agency", "terms": ["兰山市水务局", "Lanshan Water Affairs Bureau", "هيئة المياه في لانشان"]}],
        # posts, not story clusters: the spike is one templated text per language ("report {i}"),
        # which the inbox folds into three near-duplicate stories (tests/alerts covers stories)
        "alerts": {"window": "15m", "baseline": "8h", "count_by": "posts"},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    settings = load_settings(config)
    engine = connect(settings.state_url)
    migrate(engine)

    # crawl: real Scrapy, in its own process, into the durable inbox
    report = crawl_in_subprocess(config, "lanshan-news", timeout=180)
    assert report.ok, report.summary()
    assert report.enqueued == 38, report.summary()
    assert report.unmatched == 1, report.summary()
    assert Inbox(engine).depth()["pending"] == 38

    # classify + index: the worker drains the inbox
    run_worker(settings, once=True)
    assert Inbox(engine).depth() == {"pending": 0, "claimed": 0, "done": 38, "failed": 0}
    store = open_store(settings)
    store.refresh()
    assert store.count(Query()) == 38
    posts = store.search(Query(size=100)).hits
    assert {h.post.lang for h in posts} == {"zh", "en", "ar"}
    assert all(h.post.classification and h.post.classification.model.startswith("tiny@") for h in posts)
    assert all(h.post.watchlists == ["agency"] for h in posts)

    # a second crawl of the same site adds nothing
    again = crawl_in_subprocess(config, "lanshan-news", timeout=180)
    assert again.enqueued == 0, again.summary()

    # detect: the spike of the last ten minutes against the quiet hours before it
    changes = run_detection(settings, store, engine, NOW + timedelta(seconds=30))
    assert changes, "the spike raised no alert"

    # serve: the alert and its posts through the HTTP API, behind a token
    token = create_token(engine, "e2e", "viewer")
    app = create_app(settings, store=store, engine=engine)
    with TestClient(app) as client:
        assert client.get("/api/v1/alerts").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        alerts = client.get("/api/v1/alerts", headers=auth).json()
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert["level"] in {"blue", "yellow", "orange", "red"}
        assert alert["state"] == "open"
        detail = client.get(f"/api/v1/alerts/{alert['id']}", headers=auth).json()
        evidence_ids = {p["id"] for p in detail["evidence"]["posts"]}
        spike_ids = {h.post.id for h in posts if h.post.published_at >= NOW - timedelta(minutes=11)}
        assert evidence_ids and evidence_ids <= spike_ids
        page = client.get("/api/v1/posts", params={"q": "水务局", "size": 50}, headers=auth).json()
        assert page["total"] == 13  # the zh posts: 8 quiet ones split 3/3/2 → 3, spike → 10
        assert all("水务局" in h["post"]["text"] for h in page["hits"])
    store.close()
    engine.dispose()
