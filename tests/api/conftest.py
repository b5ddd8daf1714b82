"""One real world for the API tests: a migrated SQLite state database, a real `SqliteStore`
holding a small multilingual corpus (with hostile payloads), tokens for every role, and the
app served by uvicorn on 127.0.0.1 in a background thread (stopped at the end of the session).

Why a live server rather than an in-process transport: the alert stream is an endless SSE
response, which httpx's ASGI transport buffers until the app finishes; over a socket the test
reads events as they come, exactly as a browser does. The same server serves the browser test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from alerts.models import Evidence, EvidencePost, SeriesPoint
from alerts.store import dumps, event_payload, insert_event
from api.main import create_app
from api.security import Role, create_token
from index.base import Store
from yuqing.config import Settings, load_settings
from yuqing.records import Author, Classification, Engagement, Post, TopicScore
from yuqing.state.db import connect, migrate
from yuqing.state.schema import alerts as alerts_table

# The world's configuration file (the configuration endpoints write to it). Comments matter:
# a write must keep them.
WORLD_CONFIG = """\
# Yuqing test world
agency: "市环保局 <Agency>"
data_dir: "{data}"
timezone: Asia/Shanghai
api:
  cors_origins: ["http://dashboard.example"]

# who we watch
watchlists:
  - name: agency
    terms: ["环保局", "bureau", "المكتب"]

# the taxonomy (corrections must use these names)
topics:
  - name: pollution
    keywords: ["泄漏", "leak"]
  - name: air
  - name: rumor

channels:
  - name: duty-wecom
    url: "wecom://s3cr3t-corp/s3cr3t-secret/agent"
    min_level: orange
  - name: ops-env
    url: "env:OPS_WEBHOOK"
"""

# A fixed "now" for the corpus: all posts sit in the 48 hours before it.
T0 = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.utc)
XSS_TEXT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">泄漏 leak'
FORMULA_TEXT = '=HYPERLINK("http://evil.example","click") 泄漏'


def make_post(
    i: int,
    text: str,
    *,
    lang: str,
    hours_ago: float,
    sentiment: str = "neutral",
    source: str = "forum",
    platform: str = "web",
    topics: tuple[str, ...] = (),
    watchlists: tuple[str, ...] = ("agency",),
    rumor: float = 0.1,
    author: str | None = None,
    title: str | None = None,
    reply_to: str | None = None,
    likes: int = 0,
) -> Post:
    published = T0 - timedelta(hours=hours_ago)
    scores = {"negative": 0.1, "neutral": 0.1, "positive": 0.1}
    scores[sentiment] = 0.8
    return Post(
        id=f"p{i:04d}",
        url=f"https://news.example/{i}",
        source=source,
        platform=platform,
        author=Author(id=author or f"a{i % 5}", name=f"作者{i % 5}"),
        published_at=published,
        fetched_at=published + timedelta(minutes=2),
        lang=lang,
        title=title,
        text=text,
        engagement=Engagement(likes=likes, reposts=i % 3, comments=i % 4),
        reply_to=reply_to,
        watchlists=list(watchlists),
        matched_terms=["环保局"],
        classification=Classification(
            sentiment=sentiment,
            sentiment_scores=scores,
            topics=[TopicScore(topic=t, score=0.9) for t in topics],
            rumor=rumor,
            model="test@1",
        ),
    )


def corpus() -> list[Post]:
    """30 posts in zh/en/ar over 48 hours; ids p0000..p0029."""
    posts = [
        make_post(0, "市环保局回应化工厂泄漏事件，称水质达标", lang="zh", hours_ago=1, sentiment="neutral",
                  source="weibo", platform="weibo", topics=("pollution",), title="环保局回应泄漏", likes=500),
        make_post(1, "化工厂泄漏后河水发黑，环保局至今沉默", lang="zh", hours_ago=2, sentiment="negative",
                  source="weibo", platform="weibo", topics=("pollution",), rumor=0.7),
        make_post(2, "网传泄漏致三人死亡，消息未经证实", lang="zh", hours_ago=3, sentiment="negative",
                  source="forum", topics=("pollution", "rumor"), rumor=0.95),
        make_post(3, "The environment bureau says the chemical leak is contained", lang="en", hours_ago=4,
                  sentiment="neutral", source="wire", topics=("pollution",), title="Leak contained"),
        make_post(4, "Residents angry at the bureau's slow response to the leak", lang="en", hours_ago=5,
                  sentiment="negative", source="wire", topics=("pollution",)),
        make_post(5, "مكتب البيئة يؤكد احتواء التسرب الكيميائي", lang="ar", hours_ago=6, sentiment="neutral",
                  source="arabic_news", topics=("pollution",)),
        make_post(6, "غضب السكان من بطء استجابة المكتب للتسرب", lang="ar", hours_ago=7, sentiment="negative",
                  source="arabic_news", topics=("pollution",)),
        make_post(7, XSS_TEXT, lang="zh", hours_ago=8, sentiment="negative", source="forum", title="<b>标题</b>"),
        make_post(8, FORMULA_TEXT, lang="zh", hours_ago=9, sentiment="negative", source="forum"),
        make_post(9, "感谢环保局及时通报，处置很专业", lang="zh", hours_ago=10, sentiment="positive",
                  source="weibo", platform="weibo", reply_to="p0000", author="fan1"),
    ]
    # filler: routine coverage, spread over two days
    for i in range(10, 30):
        lang = ("zh", "en", "ar")[i % 3]
        text = {
            "zh": f"环保局例行发布第{i}期空气质量周报",
            "en": f"Bureau publishes weekly air quality report number {i}",
            "ar": f"المكتب ينشر التقرير الأسبوعي لجودة الهواء رقم {i}",
        }[lang]
        posts.append(make_post(i, text, lang=lang, hours_ago=11 + i * 1.3, sentiment=("neutral", "positive")[i % 2],
                               source=("weibo", "wire", "arabic_news")[i % 3], topics=("air",),
                               watchlists=("agency", "air") if i % 2 else ("agency",)))
    return posts


def open_alert(
    engine: sa.Engine,
    *,
    level: str = "orange",
    title: str = "环保局：化工厂泄漏舆情升温 Leak discussion rising",
    post_ids: tuple[str, ...] = ("p0001", "p0002", "p0007"),
    posts: list[Post] | None = None,
    deadline: timedelta = timedelta(hours=4),
    key: str | None = None,
) -> tuple[int, int]:
    """Write an alert the way the detector does (row + `opened` event, one transaction),
    with evidence validated by `alerts.models.Evidence`. Returns (alert id, event id)."""
    now = datetime.now(timezone.utc)
    by_id = {p.id: p for p in (posts or corpus())}
    ev_posts = [
        EvidencePost(id=p.id, why=["earliest"], url=p.url, source=p.source, source_tier=p.source_tier.value,
                     platform=p.platform, lang=p.lang, published_at=p.published_at, title=p.title, text=p.text,
                     sentiment=p.classification.sentiment if p.classification else None,
                     rumor=p.classification.rumor if p.classification else None)
        for p in (by_id[i] for i in post_ids)
    ]
    evidence = Evidence(
        post_ids=list(post_ids), posts=ev_posts,
        rumor_candidates=[e for e in ev_posts if (e.rumor or 0) >= 0.5],
        interval="1m", expected_per_interval=0.5,
        series=[SeriesPoint(t=now - timedelta(minutes=10 - k), total=k * 3, negative=k * 2) for k in range(10)],
        window_start=now - timedelta(minutes=15), window_end=now,
    )
    figures = {"observed": 42, "expected": 3.0, "ratio": 14.0, "negative_share": 0.6, "p_value": 1e-9,
               "explain": "volume: 42 posts vs 3.0 expected (14×), 60% negative"}
    with engine.begin() as conn:
        res = conn.execute(sa.insert(alerts_table).values(
            key=key or f"agency/volume/{time.monotonic_ns()}", state="open", level=level, rule="volume",
            watchlist="agency", title=title, figures=dumps(figures), evidence=dumps(evidence.model_dump(mode="json")),
            opened_at=now, updated_at=now, deadline_at=now + deadline,
        ))
        alert_id = int(res.inserted_primary_key[0])
        row = conn.execute(sa.select(alerts_table).where(alerts_table.c.id == alert_id)).one()
        event_id = insert_event(conn, alert_id, "opened", now, "detector", event_payload(row, figures=figures))
    return alert_id, event_id


class LiveServer:
    """uvicorn on 127.0.0.1 with an ephemeral port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1, ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api-test-server", daemon=True)
        self.url = ""

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test API server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class World:
    settings: Settings
    store: Store
    engine: sa.Engine
    app: Any
    url: str
    tokens: dict[str, str]
    posts: list[Post]
    data_dir: Path
    config_path: Path
    _clients: list[httpx.Client] = field(default_factory=list)

    def client(self, role: str | None = "admin", token: str | None = None) -> httpx.Client:
        """An httpx client for the live server; `role` picks the token, None sends none."""
        headers = {}
        tok = token or (self.tokens[role] if role else None)
        if tok:
            headers["Authorization"] = f"Bearer {tok}"
        c = httpx.Client(base_url=self.url, headers=headers, timeout=20)
        self._clients.append(c)
        return c

    def open_alert(self, **kw: Any) -> tuple[int, int]:
        return open_alert(self.engine, posts=self.posts, **kw)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from index.sqlite import SqliteStore

    data = tmp_path_factory.mktemp("api-world")
    config_path = data / "config.yaml"
    config_path.write_text(WORLD_CONFIG.format(data=data), encoding="utf-8")
    settings = load_settings(config_path)
    engine = connect(f"sqlite:///{data / 'state.db'}")
    migrate(engine)
    store = SqliteStore(data / "index.db")
    store.ensure_schema()
    posts = corpus()
    results = store.bulk_index(posts)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    store.refresh()
    tokens = {role.name: create_token(engine, f"test-{role.name}", role) for role in Role}
    app = create_app(settings, store=store, engine=engine, sse_poll_seconds=0.1, sse_ping_seconds=5,
                     config_path=config_path, config_check_seconds=0.2)
    with LiveServer(app) as server:
        w = World(settings=settings, store=store, engine=engine, app=app, url=server.url, tokens=tokens,
                  posts=posts, data_dir=data, config_path=config_path)
        yield w
        for c in w._clients:
            c.close()
    store.close()
    engine.dispose()


class SSEReader:
    """Reads events (not pings or comments) from a streaming SSE response, across calls."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def read(self, count: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        for line in self.lines:
            if line.startswith(":"):
                continue
            if line == "":
                if "data" in current or "id" in current:
                    if "data" in current:
                        try:
                            current["json"] = json.loads(current["data"])
                        except ValueError:
                            pass
                    events.append(current)
                    if len(events) >= count:
                        return events
                current = {}
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                current["data"] = current.get("data", "") + value
            elif name in ("id", "event", "retry"):
                current[name] = value
        raise AssertionError(f"the stream ended after {len(events)} of {count} events: {events}")
