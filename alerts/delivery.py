"""Delivering alert changes to people: Apprise channels, retries, a delivery log.

    Notifier(settings, engine, sleep=time.sleep, clock=utcnow, ack_key=None).deliver(changes)
        -> list[Delivery]

- **What pages.** `opened`, `escalated`, `reopened` and `resolved` changes (the resolved notice
  tells people they may stand down); `updated` only feeds the console, it never pages. A
  channel receives a change when the alert's level reaches its `min_level`.
- **Channels through Apprise** (WeCom, DingTalk, Feishu/Lark, Slack, Telegram, email, JSON
  webhook ... any Apprise URL; `env:NAME` reads the URL from the environment so secrets stay out
  of the file). Email gets an HTML body whose sections carry `lang` and `dir` (Arabic
  right-to-left); chat channels get plain text, with Arabic lines marked right-to-left and facts
  isolated (U+2068 ... U+2069) so Latin names and numbers keep their place.
- **Retries.** A failed send is retried `channel.retries` times after `backoff`, 2x, 4x ...
  Each channel runs in its own thread, in order, so a dead webhook never delays the email.
- **Delivery log.** Every attempt series ends in one `audit_log` row (actor `delivery`, action
  `alert.delivered` or `alert.delivery_failed`, target `alert:<id>`, detail: channel, event
  id, kind, attempts, error) — what the duty officer and the after-action review read.
- **Links.** Each message links to the alert in the console and, when an `ack_key` is given,
  carries a signed one-click acknowledge link that expires with the first-statement deadline
  (at least an hour, at most a day; see `alerts.links`).
- Templates: `alerts/templates/notify.<lang>.j2` per language, `email.html.j2` for email.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import apprise
import jinja2
import sqlalchemy as sa

from alerts.detector import level_rank
from alerts.links import sign_ack
from alerts.service import AlertChange
from alerts.statement import FSI, PDI, TEMPLATES, format_time, snippet
from alerts.store import insert_audit
from yuqing.config import ChannelConfig, Settings

log = logging.getLogger(__name__)

NOTIFY_KINDS = frozenset({"opened", "escalated", "reopened", "resolved"})
RTL = {"ar"}
RLM = "\u200f"
LEVEL_LABELS = {
    "zh": {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"},
    "en": {"blue": "BLUE", "yellow": "YELLOW", "orange": "ORANGE", "red": "RED"},
    "ar": {"blue": "أزرق", "yellow": "أصفر", "orange": "برتقالي", "red": "أحمر"},
}
KIND_LABELS = {
    "zh": {"opened": "新预警", "escalated": "预警升级", "reopened": "预警重新打开", "resolved": "预警解除"},
    "en": {"opened": "New alert", "escalated": "Alert escalated", "reopened": "Alert reopened", "resolved": "Alert resolved"},
    "ar": {"opened": "تنبيه جديد", "escalated": "تصعيد التنبيه", "reopened": "إعادة فتح التنبيه", "resolved": "انتهاء التنبيه"},
}
NOTIFY_TYPE = {"blue": apprise.NotifyType.INFO, "yellow": apprise.NotifyType.WARNING, "orange": apprise.NotifyType.WARNING, "red": apprise.NotifyType.FAILURE}


@dataclass(frozen=True)
class Delivery:
    channel: str
    alert_id: int
    event_id: int
    kind: str
    ok: bool
    attempts: int
    error: str | None = None


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _duration(d: timedelta, lang: str) -> str:
    minutes = max(0, int(d.total_seconds() // 60))
    h, m = divmod(minutes, 60)
    if lang == "zh":
        return f"{h}小时{m}分" if h else f"{m}分钟"
    if lang == "ar":
        return f"{h} س {m} د" if h else f"{m} د"
    return f"{h} h {m} min" if h else f"{m} min"


def render_message(
    alert: Mapping[str, Any], kind: str, lang: str, *, tz: str, now: datetime, link: str, ack_link: str | None = None
) -> str:
    """One language's text of a notification about `alert` (an Alert JSON dict)."""
    f = alert["figures"]
    evidence = alert.get("evidence") or {}
    deadline = datetime.fromisoformat(alert["deadline_at"]) if alert.get("deadline_at") and kind != "resolved" else None
    share = f.get("negative_share")
    ctx = {
        "kind_label": KIND_LABELS[lang][kind],
        "level_label": LEVEL_LABELS[lang][alert["level"]],
        "title": alert["title"],
        "explain": f.get("explain", ""),
        "f": f,
        "expected": f"{f['expected']:.1f}",
        "ratio": f"{f['ratio']:.1f}",
        "negative": "—" if share is None else f"{round(100 * share)}%",
        "p": f"{f['p_value']:.1e}",
        "deadline": format_time(deadline, lang, tz) if deadline else None,
        "remaining": _duration(deadline - now, lang) if deadline else None,
        "posts": [{"source": p["source"], "text": snippet(p["text"])} for p in (evidence.get("posts") or [])[:3]],
        "claims": [snippet(c["text"]) for c in (evidence.get("rumor_candidates") or [])[:3]],
        "link": link,
        "ack_link": ack_link if kind != "resolved" else None,
        "rlm": RLM,
        "iso": (lambda v: f"{FSI}{v}{PDI}"),
    }
    return _env().get_template(f"notify.{lang}.j2").render(**ctx).strip()


def render_email(subject: str, sections: Sequence[tuple[str, str]]) -> str:
    """HTML email: one block per (lang, text), each with its `lang` and `dir`."""
    return _env().get_template("email.html.j2").render(
        subject=subject,
        sections=[{"lang": lang, "dir": "rtl" if lang in RTL else "ltr", "lines": [l for l in text.splitlines() if l.strip()]} for lang, text in sections],
    )


def resolve_url(url: str) -> str:
    """`env:NAME` -> the value of $NAME (a secret URL kept out of the config file)."""
    if url.startswith("env:"):
        name = url[4:]
        value = os.environ.get(name)
        if not value:
            raise LookupError(f"environment variable {name} (the channel's URL) is not set")
        return value
    return url


def is_email(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("mailto", "mailtos")


def send(url: str, title: str, body: str, *, html: bool, notify_type: str, retries: int, backoff: timedelta, sleep: Callable[[float], None]) -> tuple[bool, int, str | None]:
    """Send through Apprise with retries. Returns (ok, attempts, last error)."""
    error: str | None = None
    attempts = 0
    for attempt in range(retries + 1):
        attempts = attempt + 1
        ap = apprise.Apprise()
        if not ap.add(url):
            return False, attempts, "not a valid Apprise URL"  # retrying cannot fix this
        with apprise.LogCapture(level=logging.WARNING) as captured:
            ok = ap.notify(
                body=body,
                title=title,
                notify_type=notify_type,
                body_format=apprise.NotifyFormat.HTML if html else apprise.NotifyFormat.TEXT,
            )
            text = captured.getvalue().strip()
        if ok:
            return True, attempts, None
        error = text.splitlines()[-1] if text else "the channel refused the message"
        if attempt < retries:
            sleep(backoff.total_seconds() * (2**attempt))
    return False, attempts, error


class Notifier:
    """Sends alert changes to the configured channels (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        engine: sa.Engine,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        ack_key: bytes | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sleep = sleep
        self.clock = clock
        self.ack_key = ack_key
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        api = self.settings.api
        return (api.public_url or f"http://{api.host}:{api.port}").rstrip("/")

    def _ack_link(self, alert: Mapping[str, Any], channel: str, now: datetime) -> str | None:
        if self.ack_key is None:
            return None
        deadline = datetime.fromisoformat(alert["deadline_at"]) if alert.get("deadline_at") else now + timedelta(hours=4)
        expires = min(max(deadline, now + timedelta(hours=1)), now + timedelta(days=1))
        return f"{self.base_url}/api/v1/alerts/ack?token={sign_ack(self.ack_key, int(alert['id']), channel, expires)}"

    def compose(self, change: AlertChange, channel: ChannelConfig, url: str, now: datetime) -> tuple[str, str, bool]:
        """(title, body, is_html) for one change on one channel, in the channel's languages."""
        alert = change.alert
        first = channel.languages[0]
        title = f"[{LEVEL_LABELS[first][alert['level']]}] {KIND_LABELS[first][change.kind]}: {alert['title']}"
        link = f"{self.base_url}/?alert={alert['id']}"
        ack = self._ack_link(alert, channel.name, now)
        sections = [
            (lang, render_message(alert, change.kind, lang, tz=self.settings.timezone, now=now, link=link, ack_link=ack))
            for lang in channel.languages
        ]
        if is_email(url):
            return title, render_email(title, sections), True
        return title, "\n\n".join(text for _, text in sections), False

    def _channel(self, channel: ChannelConfig, changes: Sequence[AlertChange]) -> list[Delivery]:
        out = []
        for change in changes:
            now = self.clock()
            try:
                url = resolve_url(channel.url)
                title, body, html = self.compose(change, channel, url, now)
                ok, attempts, error = send(
                    url, title, body, html=html, notify_type=NOTIFY_TYPE[change.level] if change.kind != "resolved" else apprise.NotifyType.SUCCESS,
                    retries=channel.retries, backoff=channel.backoff, sleep=self.sleep,
                )
            except Exception as e:  # noqa: BLE001 - one broken channel is logged, never raised into the others
                ok, attempts, error = False, 0, f"{type(e).__name__}: {e}"
            d = Delivery(channel.name, change.alert_id, change.event_id, change.kind, ok, attempts, error)
            self._record(d, now)
            out.append(d)
        return out

    def _record(self, d: Delivery, now: datetime) -> None:
        if not d.ok:
            log.error("delivery to %s of alert %s (%s) failed after %d attempt(s): %s", d.channel, d.alert_id, d.kind, d.attempts, d.error)
        with self._lock, self.engine.begin() as conn:
            insert_audit(
                conn, now, "delivery", "alert.delivered" if d.ok else "alert.delivery_failed", f"alert:{d.alert_id}",
                {"channel": d.channel, "event_id": d.event_id, "kind": d.kind, "attempts": d.attempts, "error": d.error},
            )

    def deliver(self, changes: Sequence[AlertChange]) -> list[Delivery]:
        """Send every paging change to every channel whose `min_level` it reaches; channels in
        parallel, each channel's messages in order. Returns one `Delivery` per (change, channel)."""
        per_channel: dict[str, list[AlertChange]] = {}
        for ch in self.settings.channels:
            todo = [c for c in changes if c.kind in NOTIFY_KINDS and level_rank(c.level) >= level_rank(ch.min_level)]
            if todo:
                per_channel[ch.name] = todo
        if not per_channel:
            return []
        channels = {c.name: c for c in self.settings.channels}
        with ThreadPoolExecutor(max_workers=min(8, len(per_channel)), thread_name_prefix="deliver") as pool:
            futures = [pool.submit(self._channel, channels[name], todo) for name, todo in per_channel.items()]
            return [d for fut in futures for d in fut.result()]
