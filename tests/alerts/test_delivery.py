"""Delivery through Apprise to real local receivers (an HTTP webhook and an SMTP server on
127.0.0.1), retries, the delivery log, templates in zh / en / ar, signed acknowledge links."""

from __future__ import annotations

import email
import json
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.delivery import Notifier, render_email, render_message
from alerts.links import InvalidLink, sign_ack, verify_ack
from alerts.models import Alert
from alerts.outbox import enqueue
from alerts.service import AlertChange
from alerts.store import dumps, insert_event
from alerts.statement import FSI, PDI
from yuqing.config import ApiConfig, ChannelConfig, Settings
from yuqing.state.schema import alerts as alerts_table
from yuqing.state.schema import audit_log, deliveries

NOW = datetime(2025, 3, 3, 1, 15, tzinfo=timezone.utc)
KEY = b"k" * 32


def _alert(level: str = "red", alert_id: int = 7) -> dict[str, Any]:
    return Alert.model_validate(
        {
            "id": alert_id,
            "key": "water/volume",
            "state": "open",
            "level": level,
            "rule": "volume",
            "watchlist": "water",
            "title": "water: 157 posts in 15 min, 20.9× the usual 7.5; 57% negative; about 停水",
            "figures": {"observed": 157, "expected": 7.5, "ratio": 20.93, "p_value": 1.2e-40, "negative_share": 0.573,
                        "explain": "volume rule red: count 157 ≥ 100, ratio 20.9 ≥ 12"},
            "evidence": {
                "post_ids": ["p1"],
                "posts": [{"id": "p1", "why": ["earliest"], "source": "weibo", "source_tier": "public", "platform": "weibo",
                           "published_at": "2025-03-03T01:00:20Z", "text": "城东停水了 <b>三天</b>"}],
                "rumor_candidates": [{"id": "r1", "why": ["rumor_candidate"], "source": "weibo", "source_tier": "public",
                                      "platform": "weibo", "published_at": "2025-03-03T01:07:00Z", "text": "有人在水库投毒", "rumor": 0.97}],
                "interval": "1m", "expected_per_interval": 0.5, "series": [],
                "window_start": "2025-03-03T01:00:00Z", "window_end": "2025-03-03T01:15:00Z",
            },
            "opened_at": "2025-03-03T01:15:00Z",
            "updated_at": "2025-03-03T01:15:00Z",
            "deadline_at": "2025-03-03T02:15:00Z",
        }
    ).model_dump(mode="json")


def _change(kind: str = "opened", level: str = "red", alert_id: int = 7, event_id: int = 1) -> AlertChange:
    a = _alert(level, alert_id)
    return AlertChange(kind=kind, alert_id=alert_id, event_id=event_id, key=a["key"], rule="volume", watchlist="water",
                       level=level, previous_level=None, at=NOW, title=a["title"], alert=a)


# -- templates --------------------------------------------------------------------------------


def test_messages_in_three_languages() -> None:
    kw = dict(tz="Asia/Shanghai", now=NOW, link="http://console/?alert=7", ack_link="http://console/ack?token=t")
    zh = render_message(_alert(), "opened", "zh", **kw)
    assert zh.startswith("新预警：water: 157 posts")
    assert "级别：红色" in zh and "负面占比 57%" in zh
    assert "首次发布权威信息时限：北京时间2025年3月3日10时15分（剩余 1小时0分）" in zh
    assert "待核实说法（未经证实）：“有人在水库投毒”" in zh
    assert "一键确认：http://console/ack?token=t" in zh
    en = render_message(_alert(), "escalated", "en", **kw)
    assert en.startswith("Alert escalated: ") and "157 posts now vs 7.5 usual (20.9x), 57% negative" in en
    assert "First authoritative statement due by 10:15 (UTC+08:00) on 3 March 2025 (1 h 0 min left)" in en
    ar = render_message(_alert(), "opened", "ar", **kw)
    lines = ar.splitlines()
    assert all(line.startswith("\u200f") for line in lines)  # every line marked right-to-left
    assert lines[0] == f"\u200fتنبيه جديد: {FSI}{_alert()['title']}{PDI}"
    assert f"«{FSI}有人在水库投毒{PDI}»" in ar and "أحمر" in ar
    resolved = render_message(_alert(), "resolved", "en", **kw)
    assert "due by" not in resolved and "Acknowledge" not in resolved


def test_email_sections_carry_language_and_direction() -> None:
    html = render_email("[红色] 新预警", [("zh", "第一行\n第二行 <b>"), ("ar", "سطر")])
    assert '<div lang="zh" dir="ltr"' in html and '<div lang="ar" dir="rtl" style="text-align: right' in html
    assert "第二行 &lt;b&gt;" in html and "<b>" not in html  # post text is escaped, never markup
    assert "<title>[红色] 新预警</title>" in html


def test_ack_links_are_signed_and_expire() -> None:
    exp = NOW + timedelta(hours=1)
    token = sign_ack(KEY, 7, "duty-wecom", exp)
    assert verify_ack(KEY, token, NOW) == (7, "duty-wecom")
    with pytest.raises(InvalidLink, match="expired"):
        verify_ack(KEY, token, exp)
    body, mac = token.split(".")
    forged = sign_ack(KEY, 8, "duty-wecom", exp).split(".")[0] + "." + mac
    with pytest.raises(InvalidLink, match="signature"):
        verify_ack(KEY, forged, NOW)
    with pytest.raises(InvalidLink, match="signature"):
        verify_ack(b"x" * 32, token, NOW)
    with pytest.raises(InvalidLink, match="malformed"):
        verify_ack(KEY, "nonsense", NOW)


# -- real receivers ---------------------------------------------------------------------------


class Webhook:
    """An HTTP receiver on 127.0.0.1 that fails the first `fail` requests with 500."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.calls = 0
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls += 1
                if outer.calls <= outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Smtp:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                outer.messages.append(email.message_from_bytes(envelope.content))
                return "250 OK"

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=duty@example.org&to=officer@example.org&mode=insecure"


@pytest.fixture
def receivers() -> Iterator[tuple[Webhook, Webhook, Smtp]]:
    flaky, healthy, smtp = Webhook(fail=2), Webhook(), Smtp()
    yield flaky, healthy, smtp
    flaky.close()
    healthy.close()
    smtp.controller.stop()


def _dead_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here
    return f"json://127.0.0.1:{port}/hook"


def persist(engine: sa.Engine, settings: Settings, kinds: list[tuple[str, str]], at: datetime = NOW) -> list[AlertChange]:
    """Write one alert and an event per (kind, level), each with its outbox rows, the way the
    detector does (alerts.outbox.enqueue in the event's transaction); returns the changes."""
    a = _alert()
    out = []
    with engine.begin() as c:
        aid = c.execute(
            sa.insert(alerts_table).values(
                key=a["key"], state="open", level=kinds[0][1], rule="volume", watchlist="water", title=a["title"],
                figures=dumps(a["figures"]), evidence=dumps(a["evidence"]), opened_at=at, updated_at=at,
                deadline_at=datetime.fromisoformat(a["deadline_at"]),
            )
        ).inserted_primary_key[0]
        for kind, level in kinds:
            c.execute(sa.update(alerts_table).where(alerts_table.c.id == aid).values(level=level))
            eid = insert_event(c, aid, kind, at, "detector", {"level": level, "key": a["key"]})
            enqueue(c, settings, alert_id=aid, event_id=eid, kind=kind, level=level, now=at)
            out.append(AlertChange(kind=kind, alert_id=aid, event_id=eid, key=a["key"], rule="volume", watchlist="water",  # type: ignore[arg-type]
                                   level=level, previous_level=None, at=at, title=a["title"], alert={**a, "id": aid, "level": level}))
    return out


def test_delivery_retries_logs_and_never_lets_one_channel_block_another(
    receivers: tuple[Webhook, Webhook, Smtp], state_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky, healthy, smtp = receivers
    monkeypatch.setenv("TEST_HOOK_URL", healthy.url)
    settings = Settings(
        agency="City Water Authority",
        api=ApiConfig(public_url="https://yuqing.example.org"),
        channels=[
            ChannelConfig(name="flaky", url=flaky.url, min_level="blue", languages=["zh"], retries=3),
            ChannelConfig(name="dead", url=_dead_url(), min_level="blue", languages=["en"], retries=2),
            ChannelConfig(name="hook", url="env:TEST_HOOK_URL", min_level="orange", languages=["en", "ar"]),
            ChannelConfig(name="email", url=smtp.url, min_level="blue", languages=["zh", "en", "ar"]),
            ChannelConfig(name="unset", url="env:TEST_NOT_SET", min_level="blue"),
        ],
    )
    slept: list[float] = []
    notifier = Notifier(settings, state_engine, sleep=slept.append, clock=lambda: NOW, ack_key=KEY)
    changes = persist(state_engine, settings, [("opened", "yellow"), ("updated", "yellow"), ("escalated", "red")])
    aid = changes[0].alert_id
    ev = {i + 1: c.event_id for i, c in enumerate(changes)}
    results = notifier.deliver(changes)
    by = {(d.channel, {v: k for k, v in ev.items()}[d.event_id]): d for d in results}
    # `updated` pages nobody; `hook` (orange and up) only hears the escalation
    assert sorted(by) == sorted(
        [("flaky", 1), ("flaky", 3), ("dead", 1), ("dead", 3), ("hook", 3), ("email", 1), ("email", 3), ("unset", 1), ("unset", 3)]
    )
    assert (by["flaky", 1].ok, by["flaky", 1].attempts) == (True, 3)  # failed twice, then delivered
    assert (by["flaky", 3].ok, by["flaky", 3].attempts) == (True, 1)
    assert not by["dead", 1].ok and by["dead", 1].attempts == 3 and by["dead", 1].error
    assert by["hook", 3].ok and by["email", 1].ok and by["email", 3].ok
    assert not by["unset", 1].ok and "TEST_NOT_SET" in (by["unset", 1].error or "")
    assert sorted(slept) == sorted([5.0, 10.0, 5.0, 10.0, 5.0, 10.0])  # flaky: 5, 10; dead: 5, 10 twice

    # the webhook got the message in the channel's languages, with both links
    [msg] = healthy.received
    assert msg["title"].startswith("[RED] Alert escalated: water: 157 posts")
    assert "First authoritative statement due by" in msg["message"] and "المستوى: أحمر" in msg["message"]
    assert f"https://yuqing.example.org/?alert={aid}" in msg["message"]
    token = msg["message"].split("ack?token=")[1].split()[0].rstrip(PDI)
    assert verify_ack(KEY, token, NOW) == (aid, "hook")
    assert [m["title"].split(":")[0] for m in flaky.received] == ["[黄色] 新预警", "[红色] 预警升级"]  # in order
    assert flaky.calls == 4  # 2 failures + 2 deliveries

    # the email: HTML with a right-to-left Arabic section, subject in Chinese
    assert len(smtp.messages) == 2
    m = smtp.messages[1]
    subject = str(email.header.make_header(email.header.decode_header(m["Subject"])))
    assert subject.startswith("[红色] 预警升级: water")
    html = next(p for p in m.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode("utf-8")
    assert 'lang="ar" dir="rtl"' in html and "首次发布权威信息时限" in html and "الموعد النهائي" in html

    # the delivery log: one row per (change, channel), failures named
    with state_engine.connect() as c:
        rows = list(c.execute(sa.select(audit_log).where(audit_log.c.actor == "delivery")))
    assert len(rows) == 9
    failed = {json.loads(r.detail)["channel"] for r in rows if r.action == "alert.delivery_failed"}
    assert failed == {"dead", "unset"}
    detail = json.loads(next(r.detail for r in rows if r.action == "alert.delivered" and json.loads(r.detail)["channel"] == "flaky"))
    assert detail["attempts"] == 3 and detail["event_id"] == ev[1]
    # the outbox row of every (event, channel) ends sent or failed, never pending
    with state_engine.connect() as c:
        status = {(r.channel, r.alert_event_id): (r.status, r.attempts) for r in c.execute(sa.select(deliveries))}
    assert status[("flaky", ev[1])] == ("sent", 3) and status[("dead", ev[3])] == ("failed", 3)
    assert status[("unset", ev[1])][0] == "failed" and len(status) == 9
    assert notifier.drain(NOW + timedelta(hours=1)) == []  # nothing is sent twice


def test_nothing_to_send(state_engine: sa.Engine) -> None:
    settings = Settings(channels=[ChannelConfig(name="c", url="json://127.0.0.1:9/x", min_level="red")])
    notifier = Notifier(settings, state_engine, sleep=lambda s: None)
    assert notifier.deliver(persist(state_engine, settings, [("opened", "yellow"), ("updated", "red")])) == []


def test_channel_languages_are_validated() -> None:
    with pytest.raises(ValueError, match="no message templates for language 'fr'"):
        ChannelConfig(name="c", url="json://x", languages=["fr"])
