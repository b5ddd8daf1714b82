"""Delivering alert changes to people: the outbox drain, Apprise channels, retries, a delivery log.

    notifier = Notifier(settings, engine, sleep=time.sleep, clock=utcnow, ack_key=None)
    notifier.drain(now=None, limit=200) -> list[Delivery]    # what `alerts.service.tick` calls
    notifier.deliver(changes) -> list[Delivery]              # drain these changes' rows now

- **The outbox.** The detector and the escalation ladder write one `deliveries` row per
  (event, channel) in the same transaction as the event (`alerts.outbox`), so a crash between
  detecting and sending loses nothing. `drain` claims due rows (status `sending`, with a lease
  of `alerts.delivery_lease`: a drainer that dies mid-send leaves them to be retried), sends
  each through Apprise, and records `sent` (with `sent_at`) or, after `channel.retries` failed
  retries, `failed` with the last error. Between attempts a row waits `backoff`, 2x, 4x ...
  (`next_attempt_at`), so a dead channel never holds up a tick. A channel's messages go out in
  order: a row waits while an earlier row of its channel is waiting. Rows older than
  `alerts.delivery_expiry` are not sent any more (a page from yesterday is noise): `failed`,
  "expired before delivery".
- **What pages.** `opened`, `escalated`, `reopened` and `resolved` changes (the resolved notice
  tells people they may stand down); `updated` only feeds the console, it never pages. A
  broadcast channel receives a change when the alert's level reaches its `min_level`; on-call
  contacts get the events of the escalation ladder (`alerts.oncall`), `paged` included.
- **Channels through Apprise** (WeCom, DingTalk, Feishu/Lark, Slack, Telegram, email, JSON
  webhook ... any Apprise URL; `env:NAME` reads the URL from the environment so secrets stay out
  of the file). Email gets an HTML body whose sections carry `lang` and `dir` (Arabic
  right-to-left); chat channels get plain text, with Arabic lines marked right-to-left and facts
  isolated (U+2068 ... U+2069) so Latin names and numbers keep their place.
- **Retries.** `drain` makes one attempt per due row (the backoff lives in the row); `deliver`
  retries in the call, sleeping `backoff`, 2x, 4x ... Each channel runs in its own thread, in
  order, so a dead webhook never delays the email.
- **Delivery log.** Every attempt series ends in one `audit_log` row (actor `delivery`, action
  `alert.delivered` or `alert.delivery_failed`, target `alert:<id>`, detail: channel, event
  id, kind, attempts, error) — what the duty officer and the after-action review read.
- **Links.** Each message links to the alert in the console and, when an `ack_key` is given,
  carries a signed one-click acknowledge link that expires with the first-statement deadline
  (at least an hour, at most a day; see `alerts.links`).
- Templates: `alerts/templates/notify.<lang>.j2` per language, `email.html.j2` for email.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import apprise
import sqlalchemy as sa

from alerts.changes import AlertChange
from alerts.links import sign_ack
from alerts.outbox import NOTIFY_KINDS  # noqa: F401 - re-exported: what pages
from alerts.statement import FSI, PDI, format_time, snippet, template_env
from alerts.store import insert_audit, row_to_alert
from yuqing.config import ChannelConfig, Settings
from yuqing.state.schema import alert_events, alerts, deliveries

log = logging.getLogger(__name__)

EXPIRED = "expired before delivery"
INVALID_URL = "not a valid Apprise URL"
RTL = {"ar"}
RLM = "\u200f"
LEVEL_LABELS = {
    "zh": {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"},
    "en": {"blue": "BLUE", "yellow": "YELLOW", "orange": "ORANGE", "red": "RED"},
    "ar": {"blue": "أزرق", "yellow": "أصفر", "orange": "برتقالي", "red": "أحمر"},
}
KIND_LABELS = {
    "zh": {"opened": "新预警", "escalated": "预警升级", "reopened": "预警重新打开", "resolved": "预警解除", "paged": "预警未确认，逐级通知"},
    "en": {"opened": "New alert", "escalated": "Alert escalated", "reopened": "Alert reopened", "resolved": "Alert resolved", "paged": "Unacknowledged alert passed to you"},
    "ar": {"opened": "تنبيه جديد", "escalated": "تصعيد التنبيه", "reopened": "إعادة فتح التنبيه", "resolved": "انتهاء التنبيه", "paged": "تنبيه لم يُؤكَّد أُحيل إليك"},
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


def _duration(d: timedelta, lang: str) -> str:
    minutes = max(0, int(d.total_seconds() // 60))
    h, m = divmod(minutes, 60)
    if lang == "zh":
        return f"{h}小时{m}分" if h else f"{m}分钟"
    if lang == "ar":
        return f"{h} س {m} د" if h else f"{m} د"
    return f"{h} h {m} min" if h else f"{m} min"


def _page_note(page: Mapping[str, Any] | None, lang: str) -> str | None:
    """The line a paged contact reads: how long the alert went unacknowledged, which rung."""
    if not page:
        return None
    waited = _duration(timedelta(seconds=float(page.get("waited_s") or 0)), lang)
    step, rungs = int(page.get("step", 0)) + 1, int(page.get("rungs", 1))
    if lang == "zh":
        return f"已 {waited} 无人确认；逐级通知第 {step}/{rungs} 级"
    if lang == "ar":
        return f"لم يؤكده أحد منذ {FSI}{waited}{PDI}؛ الدرجة {FSI}{step}/{rungs}{PDI} من سلّم التصعيد"
    return f"Not acknowledged for {waited}; escalation step {step} of {rungs}"


def render_message(
    alert: Mapping[str, Any], kind: str, lang: str, *, tz: str, now: datetime, link: str, ack_link: str | None = None,
    page: Mapping[str, Any] | None = None,
) -> str:
    """One language's text of a notification about `alert` (an Alert JSON dict). `page`: the
    payload of a `paged` event (the ladder's rung). An alert without volume figures (a silent
    source) skips the figures line instead of failing to render."""
    f = alert["figures"]
    volume = all(k in f for k in ("observed", "expected", "ratio", "p_value"))
    evidence = alert.get("evidence") or {}
    deadline = datetime.fromisoformat(alert["deadline_at"]) if alert.get("deadline_at") and kind != "resolved" else None
    share = f.get("negative_share")
    ctx = {
        "kind_label": KIND_LABELS[lang][kind],
        "level_label": LEVEL_LABELS[lang][alert["level"]],
        "title": alert["title"],
        "explain": f.get("explain", ""),
        "f": f,
        "volume": volume,
        "expected": f"{f['expected']:.1f}" if volume else "",
        "ratio": f"{f['ratio']:.1f}" if volume else "",
        "negative": "—" if share is None else f"{round(100 * share)}%",
        "p": f"{f['p_value']:.1e}" if volume else "",
        "page_note": _page_note(page, lang),
        "unit": "stories" if f.get("unit") == "clusters" else "posts",
        "deadline": format_time(deadline, lang, tz) if deadline else None,
        "remaining": _duration(deadline - now, lang) if deadline else None,
        "posts": [{"source": p["source"], "text": snippet(p["text"])} for p in (evidence.get("posts") or [])[:3]],
        "claims": [snippet(c["text"]) for c in (evidence.get("rumor_candidates") or [])[:3]],
        "link": link,
        "ack_link": ack_link if kind != "resolved" else None,
        "rlm": RLM,
        "iso": (lambda v: f"{FSI}{v}{PDI}"),
    }
    return template_env().get_template(f"notify.{lang}.j2").render(**ctx).strip()


def render_email(subject: str, sections: Sequence[tuple[str, str]]) -> str:
    """HTML email: one block per (lang, text), each with its `lang` and `dir`."""
    return template_env().get_template("email.html.j2").render(
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
            return False, attempts, INVALID_URL  # retrying cannot fix this
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

    def compose(
        self, change: AlertChange, channel: ChannelConfig, url: str, now: datetime, page: Mapping[str, Any] | None = None
    ) -> tuple[str, str, bool]:
        """(title, body, is_html) for one change on one channel, in the channel's languages."""
        alert = change.alert
        first = channel.languages[0]
        title = f"[{LEVEL_LABELS[first][alert['level']]}] {KIND_LABELS[first][change.kind]}: {alert['title']}"
        link = f"{self.base_url}/?alert={alert['id']}"
        ack = self._ack_link(alert, channel.name, now)
        sections = [
            (lang, render_message(alert, change.kind, lang, tz=self.settings.timezone, now=now, link=link, ack_link=ack, page=page))
            for lang in channel.languages
        ]
        if is_email(url):
            return title, render_email(title, sections), True
        return title, "\n\n".join(text for _, text in sections), False

    # -- the outbox --------------------------------------------------------------------------
    def _due(self, conn: sa.Connection, now: datetime, limit: int, events: set[int] | None) -> list[Any]:
        """Rows to send now, per channel in id order, stopping at a channel's first row that is
        not due (its messages keep their order)."""
        q = (
            sa.select(deliveries)
            .where(deliveries.c.status.in_(("pending", "sending")))
            .order_by(deliveries.c.id)
            .limit(max(limit * 4, 100))
        )
        if events is not None:
            q = q.where(deliveries.c.alert_event_id.in_(sorted(events)))
        blocked: set[str] = set()
        out = []
        for r in conn.execute(q):
            if r.channel in blocked:
                continue
            if r.next_attempt_at is not None and r.next_attempt_at > now:
                blocked.add(r.channel)
                continue
            out.append(r)
            if len(out) >= limit:
                break
        return out

    def _claim(self, row: Any, now: datetime) -> bool:
        """Take the row for this drainer (status `sending`, leased); False when another took it."""
        lease = now + self.settings.alerts.delivery_lease
        with self._lock, self.engine.begin() as conn:
            res = conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id == row.id, deliveries.c.status == row.status, deliveries.c.attempts == row.attempts)
                .values(status="sending", next_attempt_at=lease, updated_at=now)
            )
            return res.rowcount == 1

    def _change_for(self, event_id: int) -> tuple[AlertChange, dict[str, Any]]:
        """The change an outbox row announces, rebuilt from the event and the alert (the level
        is the one at the event, the rest the alert as it is now)."""
        with self.engine.connect() as conn:
            ev = conn.execute(sa.select(alert_events).where(alert_events.c.id == event_id)).one()
            row = conn.execute(sa.select(alerts).where(alerts.c.id == ev.alert_id)).one()
        payload = json.loads(ev.payload) if ev.payload else {}
        alert = row_to_alert(row, with_evidence=True)
        level = payload.get("level") or row.level
        alert["level"] = level
        change = AlertChange(
            kind=ev.kind, alert_id=row.id, event_id=ev.id, key=row.key, rule=row.rule, watchlist=row.watchlist, level=level,
            previous_level=payload.get("previous_level"), at=ev.at, title=row.title, alert=alert,
        )
        return change, payload

    def _finish(self, row: Any, channel: ChannelConfig | None, kind: str, alert_id: int, ok: bool, tried: int, error: str | None, now: datetime) -> Delivery:
        attempts = row.attempts + tried
        retries = channel.retries if channel is not None else 0
        final = ok or channel is None or attempts > retries or error in (EXPIRED, INVALID_URL)
        values: dict[str, Any] = {"attempts": attempts, "updated_at": now, "last_error": error}
        if ok:
            values.update(status="sent", sent_at=now, next_attempt_at=None)
        elif final:
            values.update(status="failed", next_attempt_at=None)
        else:
            assert channel is not None
            values.update(status="pending", next_attempt_at=now + channel.backoff * (2 ** (attempts - 1)))
        d = Delivery(row.channel, alert_id, row.alert_event_id, kind, ok, attempts, error)
        with self._lock, self.engine.begin() as conn:
            conn.execute(sa.update(deliveries).where(deliveries.c.id == row.id).values(**values))
            if final:
                if not ok:
                    log.error("delivery to %s of alert %s (%s) failed after %d attempt(s): %s", d.channel, d.alert_id, d.kind, d.attempts, d.error)
                insert_audit(
                    conn, now, "delivery", "alert.delivered" if ok else "alert.delivery_failed", f"alert:{alert_id}",
                    {"channel": d.channel, "event_id": d.event_id, "kind": d.kind, "attempts": d.attempts, "error": d.error},
                )
        return d

    def _send_rows(self, channel_name: str, rows: Sequence[Any], now: datetime, wait: bool) -> list[Delivery]:
        channel = next((c for c in self.settings.channels if c.name == channel_name), None)
        out: list[Delivery] = []
        for n, row in enumerate(rows):
            if out and not out[-1].ok and channel is not None and out[-1].attempts <= channel.retries and out[-1].error not in (EXPIRED, INVALID_URL):
                # the previous message waits for its retry: later ones wait behind it (order)
                self._release(rows[n:], now)
                break
            try:
                change, payload = self._change_for(row.alert_event_id)
            except Exception as e:  # noqa: BLE001 - a row we cannot read is failed, never raised
                out.append(self._finish(row, None, "?", 0, False, 1, f"{type(e).__name__}: {e}", now))
                continue
            if channel is None:
                out.append(self._finish(row, None, change.kind, change.alert_id, False, 0, "channel no longer configured", now))
                continue
            if now - row.created_at > self.settings.alerts.delivery_expiry:
                out.append(self._finish(row, channel, change.kind, change.alert_id, False, 0, EXPIRED, now))
                continue
            remaining = max(channel.retries - row.attempts, 0) if wait else 0
            try:
                url = resolve_url(channel.url)
                title, body, html = self.compose(change, channel, url, now, page=payload if change.kind == "paged" else None)
                ok, tried, error = send(
                    url, title, body, html=html,
                    notify_type=NOTIFY_TYPE[change.level] if change.kind != "resolved" else apprise.NotifyType.SUCCESS,
                    retries=remaining, backoff=channel.backoff * (2**row.attempts), sleep=self.sleep,
                )
            except Exception as e:  # noqa: BLE001 - one broken channel is logged, never raised into the others
                # e.g. its env: URL is unset: retrying within this call cannot fix that, a later drain may
                ok, tried, error = False, remaining + 1, f"{type(e).__name__}: {e}"
            out.append(self._finish(row, channel, change.kind, change.alert_id, ok, tried, error, now))
        return out

    def _release(self, rows: Sequence[Any], now: datetime) -> None:
        """Give claimed rows back untouched (they were not attempted)."""
        with self._lock, self.engine.begin() as conn:
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id.in_([r.id for r in rows]), deliveries.c.status == "sending")
                .values(status="pending", next_attempt_at=now, updated_at=now)
            )

    def drain(self, now: datetime | None = None, *, limit: int = 200, events: set[int] | None = None, wait: bool = False) -> list[Delivery]:
        """Send the due outbox rows (at most `limit`): channels in parallel, each channel's rows
        in order. One attempt per row unless `wait` (then the channel's retries, sleeping the
        backoff in between). `events`: only rows of these alert events. Returns one `Delivery`
        per row attempted in this call (`ok` False with `attempts` so far while retries remain)."""
        now = now or self.clock()
        with self.engine.connect() as conn:
            due = self._due(conn, now, limit, events)
        per_channel: dict[str, list[Any]] = {}
        for row in due:
            if self._claim(row, now):
                per_channel.setdefault(row.channel, []).append(row)
        if not per_channel:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(per_channel)), thread_name_prefix="deliver") as pool:
            futures = [pool.submit(self._send_rows, name, rows, now, wait) for name, rows in per_channel.items()]
            return [d for fut in futures for d in fut.result()]

    def deliver(self, changes: Sequence[AlertChange]) -> list[Delivery]:
        """Send these changes' outbox rows now, with the channels' retries in the call (the
        detector wrote the rows with the changes). Kept for callers that send right after
        detecting; `alerts.service.tick` drains instead, without sleeping."""
        events = {c.event_id for c in changes}
        if not events:
            return []
        return self.drain(self.clock(), limit=10_000, events=events, wait=True)
