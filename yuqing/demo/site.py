"""The demo's public web: news feeds, a forum and the bureau's own site, served on 127.0.0.1.

Pages appear over accelerated time: the scenario's minute `at` is published `at / speed`
seconds after the site starts, so at speed 60 a 40-minute incident unfolds in 40 seconds
while the quiet days before it are already online as history.
The pipeline that reads it is the real one (Scrapy crawls, inbox, worker, index, detector); only
the web is scripted.
"""

from __future__ import annotations

import hashlib
import html
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import yaml

CHANNELS = ("news-zh", "news-en", "news-ar", "forum", "official")


@dataclass(frozen=True)
class DemoPost:
    id: str
    channel: str
    lang: str
    title: str
    text: str
    author: str
    tier: str
    published_at: datetime  # also the moment it appears on the site

    @property
    def path(self) -> str:
        if self.channel.startswith("news-"):
            return f"/news/{self.lang}/{self.id}.html"
        return f"/{self.channel}/{self.id}.html"


def load_scenario() -> dict[str, Any]:
    text = resources.files("yuqing.demo").joinpath("scenario.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def expand(scenario: dict[str, Any], start: datetime, speed: float) -> list[DemoPost]:
    """Every post of the scenario with its real publication instant."""
    posts: list[DemoPost] = []

    def add(p: dict[str, Any], when: datetime, n: int, author: str | None = None) -> None:
        key = f"{p['channel']}|{p['title']}|{n}|{when.isoformat()}"
        pid = hashlib.sha1(key.encode()).hexdigest()[:12]
        posts.append(
            DemoPost(
                id=pid,
                channel=p["channel"],
                lang=p["lang"],
                title=p["title"],
                text=p["text"],
                author=author or p.get("author") or "",
                tier=p.get("tier", "public"),
                published_at=when,
            )
        )

    bg = scenario["background"]
    every = timedelta(minutes=bg["every_minutes"])
    n_bg = int(bg["span_hours"] * 60 // bg["every_minutes"])
    for i in range(n_bg):
        p = bg["posts"][i % len(bg["posts"])]
        add(p, start - every * (n_bg - i), i, p.get("author") or f"resident{i % 7}")
    for i, p in enumerate(scenario["incident"]):
        at = start + timedelta(seconds=float(p["at"]) * 60 / speed)
        add(p, at, i)
        for k in range(int(p.get("copies", 0))):
            later = at + timedelta(seconds=(k + 1) * 20 / speed)
            add(p, later, 1000 * (i + 1) + k, f"{p.get('author', 'user')}_{k + 1}")
    posts.sort(key=lambda x: x.published_at)
    return posts


def _page(title: str, body: str, lang: str = "zh") -> bytes:
    dir_ = "rtl" if lang == "ar" else "ltr"
    return (
        f'<!doctype html><html lang="{lang}" dir="{dir_}"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    ).encode("utf-8")


def _article(p: DemoPost) -> bytes:
    body = (
        f'<article class="post"><h1 class="title">{html.escape(p.title)}</h1>'
        f'<p class="meta"><span class="author">{html.escape(p.author)}</span> '
        f'<time datetime="{p.published_at.isoformat()}">{p.published_at.strftime("%Y-%m-%d %H:%M:%S")} UTC</time></p>'
        f'<div class="content"><p>{html.escape(p.text)}</p></div></article>'
    )
    return _page(p.title, body, p.lang)


def _listing(title: str, posts: list[DemoPost]) -> bytes:
    items = "".join(
        f'<li><a class="post-link" href="{p.path}">{html.escape(p.title)}</a> '
        f'<span class="author">{html.escape(p.author)}</span></li>'
        for p in reversed(posts)
    )
    return _page(title, f"<h1>{html.escape(title)}</h1><ul class=\"posts\">{items}</ul>")


def _rss(base: str, lang: str, posts: list[DemoPost]) -> bytes:
    items = "".join(
        "<item>"
        f"<title>{html.escape(p.title)}</title>"
        f"<link>{base}{p.path}</link>"
        f'<guid isPermaLink="true">{base}{p.path}</guid>'
        f"<pubDate>{format_datetime(p.published_at)}</pubDate>"
        f"<dc:creator>{html.escape(p.author)}</dc:creator>"
        f"<description>{html.escape(p.text)}</description>"
        "</item>"
        for p in reversed(posts)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>Lanshan news ({lang})</title><link>{base}/news/{lang}/</link>"
        f"<description>demo feed</description><language>{lang}</language>{items}</channel></rss>"
    ).encode("utf-8")


class DemoSite:
    """`start()` serves the scenario on 127.0.0.1 and returns the base URL; `stop()` ends it."""

    def __init__(self, speed: float = 60.0, port: int = 0, start: datetime | None = None) -> None:
        self.start_at = start or datetime.now(timezone.utc)
        self.posts = expand(load_scenario(), self.start_at, speed)
        self.by_path = {p.path: p for p in self.posts}
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def visible(self, channel: str, now: datetime | None = None) -> list[DemoPost]:
        now = now or datetime.now(timezone.utc)
        return [p for p in self.posts if p.channel == channel and p.published_at <= now]

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # the crawler logs what matters
                pass

            def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                now = datetime.now(timezone.utc)
                if path == "/robots.txt":
                    return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain")
                for lang in ("zh", "en", "ar"):
                    if path == f"/news/{lang}/rss.xml":
                        return self._send(
                            200, _rss(site.url, lang, site.visible(f"news-{lang}", now)), "application/rss+xml; charset=utf-8"
                        )
                if path in ("/forum/", "/official/"):
                    ch = path.strip("/")
                    return self._send(200, _listing(ch, site.visible(ch, now)))
                post = site.by_path.get(path)
                if post is not None and post.published_at <= now:
                    return self._send(200, _article(post))
                if path == "/":
                    return self._send(200, _page("Lanshan", '<a href="/forum/">forum</a> <a href="/official/">official</a>'))
                return self._send(404, _page("not found", "<h1>404</h1>"))

        return Handler
