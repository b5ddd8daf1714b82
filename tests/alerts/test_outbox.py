"""The delivery outbox: rows written with the alert event, drained later, exactly once, with the
retry backoff kept in the row; and the unique-index race between two detectors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import alerts.service as service
from alerts.delivery import Notifier
from alerts.service import run_detection, tick
from alerts.store import dumps
from tests.alerts.conftest import T0, Posts
from tests.alerts.test_delivery import Webhook
from yuqing.config import ChannelConfig, Settings
from yuqing.state.schema import alerts, deliveries

M = timedelta(minutes=1)


@pytest.fixture
def hooks() -> Iterator[tuple[Webhook, Webhook]]:
    ok, flaky = Webhook(), Webhook(fail=2)
    yield ok, flaky
    ok.close()
    flaky.close()


def _rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(sa.select(deliveries).order_by(deliveries.c.id)))


def _incident(posts: Posts) -> None:
    posts.steady(T0 - timedelta(hours=7), T0 + 15 * M, 2 * M)
    posts.burst(T0, 15, 2, 0.0)


def test_a_crash_between_detecting_and_sending_loses_nothing(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine, hooks: tuple[Webhook, Webhook]
) -> None:
    ok, _ = hooks
    settings = settings.model_copy(update={"channels": [
        ChannelConfig(name="duty", url=ok.url, languages=["en"]),
        ChannelConfig(name="red-only", url=ok.url, min_level="red"),
    ]})
    _incident(posts)
    [change] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    # the rows are there, committed with the event, before anything was sent ("crash" here)
    rows = _rows(state_engine)
    assert [(r.alert_event_id, r.channel, r.status) for r in rows] == [(change.event_id, "duty", "pending")]
    assert ok.received == []
    # a new process: a fresh Notifier drains and delivers it, once
    sent = Notifier(settings, state_engine, sleep=lambda s: None).drain(T0 + 16 * M)
    assert [(d.channel, d.event_id, d.ok, d.attempts) for d in sent] == [("duty", change.event_id, True, 1)]
    assert len(ok.received) == 1 and ok.received[0]["title"].startswith("[YELLOW] New alert: water")
    assert Notifier(settings, state_engine).drain(T0 + 17 * M) == []
    assert len(ok.received) == 1
    [row] = _rows(state_engine)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, T0 + 16 * M)


def test_drain_backs_off_in_the_row_and_keeps_each_channels_order(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine, hooks: tuple[Webhook, Webhook]
) -> None:
    _, flaky = hooks
    settings = settings.model_copy(update={"channels": [ChannelConfig(name="flaky", url=flaky.url, languages=["en"], retries=3, backoff="10s")]})
    _incident(posts)
    run_detection(settings, index_store, state_engine, T0 + 15 * M)
    posts.burst(T0 + 15 * M, 15, 12, 0.6)
    [esc] = run_detection(settings, index_store, state_engine, T0 + 30 * M)
    assert esc.kind == "escalated"
    n = Notifier(settings, state_engine, sleep=lambda s: pytest.fail("drain must not sleep"))
    t = T0 + 30 * M
    first = n.drain(t)
    # one attempt on the first row; the second waits behind it (order within the channel)
    assert [(d.kind, d.ok, d.attempts) for d in first] == [("opened", False, 1)]
    assert n.drain(t + timedelta(seconds=9)) == []  # backoff 10 s not yet over
    assert [(d.ok, d.attempts) for d in n.drain(t + timedelta(seconds=10))] == [(False, 2)]
    assert n.drain(t + timedelta(seconds=29)) == []  # then 20 s
    done = n.drain(t + timedelta(seconds=30))
    assert [(d.kind, d.ok, d.attempts) for d in done] == [("opened", True, 3), ("escalated", True, 1)]
    assert [m["title"].split(":")[0] for m in flaky.received] == ["[YELLOW] New alert", "[RED] Alert escalated"]
    assert [(r.status, r.attempts) for r in _rows(state_engine)] == [("sent", 3), ("sent", 1)]


def test_a_channel_that_keeps_failing_ends_failed_and_stale_pages_expire(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine
) -> None:
    settings = settings.model_copy(update={"channels": [ChannelConfig(name="dead", url="json://127.0.0.1:9/x", retries=1, backoff="1s")]})
    _incident(posts)
    run_detection(settings, index_store, state_engine, T0 + 15 * M)
    n = Notifier(settings, state_engine)
    n.drain(T0 + 15 * M)
    [d] = n.drain(T0 + 15 * M + timedelta(seconds=1))
    assert not d.ok and d.attempts == 2 and d.error
    assert [(r.status, r.attempts) for r in _rows(state_engine)] == [("failed", 2)]
    # a row nobody drained for longer than delivery_expiry is given up, not sent late
    posts.burst(T0 + 15 * M, 15, 12, 0.6)
    run_detection(settings, index_store, state_engine, T0 + 30 * M)
    [late] = n.drain(T0 + 30 * M + settings.alerts.delivery_expiry + M)
    assert not late.ok and late.error == "expired before delivery" and late.attempts == 0


def test_tick_detects_escalates_and_drains(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine, hooks: tuple[Webhook, Webhook]
) -> None:
    ok, _ = hooks
    settings = settings.model_copy(update={"channels": [ChannelConfig(name="duty", url=ok.url, languages=["en"])]})
    _incident(posts)
    report = tick(settings, index_store, state_engine, T0 + 15 * M, notifier=Notifier(settings, state_engine))
    assert [c.kind for c in report.changes] == ["opened"] and report.pages == []
    assert [(d.channel, d.ok) for d in report.deliveries] == [("duty", True)] and len(ok.received) == 1


def test_losing_the_race_to_open_is_an_update_not_a_crash(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another detector opens the thread after we judged it but before our insert: the unique
    index refuses our row; we judge again against the winner's thread."""
    _incident(posts)
    posts.burst(T0, 15, 8, 0.6)  # orange by volume
    real = service._active_row
    raced = {"done": False}

    def racing(conn: Any, key: str, lock: bool = False) -> Any:
        if lock and not raced["done"]:
            raced["done"] = True
            with state_engine.begin() as other:  # the competitor commits a blue alert first
                other.execute(sa.insert(alerts).values(
                    key=key, state="open", level="blue", rule="volume", watchlist="water", title="competitor",
                    figures=dumps({"pinned_expected": 7.5}), evidence=dumps({}), opened_at=T0, updated_at=T0,
                ))
            return None  # what our snapshot saw before the competitor's commit
        return real(conn, key, lock)

    monkeypatch.setattr(service, "_active_row", racing)
    [change] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert raced["done"]
    assert (change.kind, change.level, change.previous_level) == ("escalated", "orange", "blue")
    with state_engine.connect() as c:
        rows = c.execute(sa.select(alerts.c.id, alerts.c.state, alerts.c.level)).all()
    assert len(rows) == 1 and rows[0].level == "orange"  # one thread, never two
