"""The detection job end to end over the real SQLite index and the real state database
(SQLite and PostgreSQL): open, escalate, acknowledge, update, resolve, cool-down, reopen —
one incident is one alert thread, and every change is an event."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.service import ActiveView, ResolvedView, decide, floor_time, run_detection
from alerts.detector import detect
from alerts.store import AlertStore
from tests.alerts.conftest import T0, Posts, alerts_config
from yuqing.config import Settings
from yuqing.records import SourceTier
from yuqing.state.schema import alert_events, alerts, audit_log

M = timedelta(minutes=1)


def _quiet(posts: Posts, until: datetime, watchlist: str = "water") -> None:
    """Seven hours of one post every two minutes before `until`: 7-8 per 15-min window."""
    posts.steady(T0 - timedelta(hours=7), until, 2 * M, watchlist=watchlist)


def _rows(engine: sa.Engine, table: sa.Table) -> list[Any]:
    with engine.connect() as c:
        return list(c.execute(sa.select(table).order_by(table.c.id)))


def test_lifecycle_open_escalate_ack_resolve_reopen(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts, T0 + 3 * timedelta(hours=1))
    # nothing unusual: no alert
    assert run_detection(settings, index_store, state_engine, T0) == []

    # phase A: +2 posts a minute for 15 min, a big account and one angry post -> yellow
    influencer = posts.make(T0 + 5 * M, text="water outage in district five, taps dry since morning", followers=2_000_000, reposts=900, tag="s")
    angry = posts.make(T0 + 6 * M, sentiment="negative", negative_score=0.99, text="water outage in district five, disgraceful", tag="s")
    posts.add([influencer, angry])
    burst_a = posts.burst(T0, 15, 2, 0.0)
    now = T0 + 15 * M + timedelta(seconds=30)
    changes = run_detection(settings, index_store, state_engine, now)
    assert [(c.kind, c.level, c.key) for c in changes] == [("opened", "yellow", "water/volume")]
    opened = changes[0]
    alert = opened.alert
    assert alert["state"] == "open" and alert["rule"] == "volume" and alert["watchlist"] == "water"
    f = alert["figures"]
    assert f["observed"] == 40 and 7 <= f["expected"] <= 8 and f["ratio"] > 4
    assert f["explain"].startswith("volume rule yellow: count 40 ≥ 30")
    assert datetime.fromisoformat(f["window_end"]) == T0 + 15 * M
    assert datetime.fromisoformat(alert["deadline_at"]) == now + settings.alerts.deadlines["yellow"]
    ev = alert["evidence"]
    by_id = {p["id"]: p for p in ev["posts"]}
    assert "highest_reach" in by_id[influencer.id]["why"]
    assert "most_negative" in by_id[angry.id]["why"]
    earliest = min(burst_a, key=lambda p: (p.published_at, p.id))
    assert "earliest" in by_id[earliest.id]["why"]
    assert ev["post_ids"] == [p["id"] for p in ev["posts"]]
    assert len(ev["series"]) == 8 * 15 and datetime.fromisoformat(ev["series"][-1]["t"]) == T0 + 14 * M
    assert sum(p["total"] for p in ev["series"][-15:]) == 40
    assert ev["sentiment"].get("negative") == 1
    assert ev["top_terms"] and ev["languages"][0][0] == "en"
    # words of the watchlist's own names ("City Water") are in every post: not story terms
    assert not {"city", "water"} & {t for t, _ in ev["top_terms"]}
    assert "outage" in {t for t, _ in ev["top_terms"]}
    assert "water: 40 stories (40 posts) in 15 min" in alert["title"]  # no cluster ids: each post its own story

    # run again at the same minute, and a minute later: no duplicate, no event spam
    assert run_detection(settings, index_store, state_engine, now) == []
    assert run_detection(settings, index_store, state_engine, now + M) == []

    store = AlertStore(state_engine, clock=lambda: now + 2 * M)
    acked = store.acknowledge(opened.alert_id, "duty.officer")
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "duty.officer"

    # phase B: the story explodes, 60 % negative -> red: the same thread escalates and re-opens
    posts.burst(T0 + 15 * M, 15, 10, 0.6)
    now_b = T0 + 30 * M
    changes = run_detection(settings, index_store, state_engine, now_b)
    assert [(c.kind, c.level, c.previous_level, c.alert_id) for c in changes] == [("escalated", "red", "yellow", opened.alert_id)]
    alert = changes[0].alert
    assert alert["state"] == "open" and alert["acknowledged_by"] is None  # red must be acknowledged as red
    assert datetime.fromisoformat(alert["deadline_at"]) == now_b + settings.alerts.deadlines["red"]
    assert alert["figures"]["pinned_expected"] == f["pinned_expected"]
    assert len(_rows(state_engine, alerts)) == 1

    # still red a minute later: nothing; after update_every: one "updated" event
    assert run_detection(settings, index_store, state_engine, now_b + M) == []
    posts.burst(T0 + 30 * M, 15, 10, 0.6)
    changes = run_detection(settings, index_store, state_engine, T0 + 45 * M)
    assert [(c.kind, c.level) for c in changes] == [("updated", "red")]

    # the burst ends at T0+45m; resolve needs the last 30 min back within 1.5 x baseline
    assert run_detection(settings, index_store, state_engine, T0 + 60 * M) == []
    changes = run_detection(settings, index_store, state_engine, T0 + 75 * M)
    assert [(c.kind, c.level) for c in changes] == [("resolved", "red")]
    assert changes[0].alert["state"] == "resolved"
    assert run_detection(settings, index_store, state_engine, T0 + 76 * M) == []

    # it flares up again within the cool-down: the auto-resolved thread reopens, no new alert
    posts.burst(T0 + 80 * M, 15, 3, 0.2)
    changes = run_detection(settings, index_store, state_engine, T0 + 95 * M)
    assert [(c.kind, c.alert_id) for c in changes] == [("reopened", opened.alert_id)]
    assert changes[0].level == "red"  # the thread keeps its peak level
    assert len(_rows(state_engine, alerts)) == 1

    kinds = [(e.kind, e.actor) for e in _rows(state_engine, alert_events)]
    assert kinds == [
        ("opened", "detector"),
        ("acknowledged", "duty.officer"),
        ("escalated", "detector"),
        ("updated", "detector"),
        ("resolved", "detector"),
        ("reopened", "detector"),
    ]
    actions = [a.action for a in _rows(state_engine, audit_log)]
    assert actions == ["alert.opened", "alert.acknowledge", "alert.escalated", "alert.updated", "alert.resolved", "alert.reopened"]
    payload = json.loads(_rows(state_engine, alert_events)[2].payload)
    assert payload["level"] == "red" and payload["previous_level"] == "yellow" and payload["key"] == "water/volume"


def test_officer_resolution_holds_through_the_cooldown(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts, T0 + 4 * timedelta(hours=1))
    posts.burst(T0, 15, 2, 0.0)
    first = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert [(c.kind, c.level) for c in first] == [("opened", "yellow")]
    AlertStore(state_engine, clock=lambda: T0 + 16 * M).resolve(first[0].alert_id, "duty.officer", "known story: scheduled maintenance")
    # same level again inside the cool-down: the officer's judgement holds, nothing raised
    posts.burst(T0 + 16 * M, 15, 2, 0.0)
    assert run_detection(settings, index_store, state_engine, T0 + 31 * M) == []
    # a higher level inside the cool-down is a new incident thread
    posts.burst(T0 + 31 * M, 15, 10, 0.6)
    changes = run_detection(settings, index_store, state_engine, T0 + 46 * M)
    assert [(c.kind, c.level) for c in changes] == [("opened", "red")]
    assert changes[0].alert_id != first[0].alert_id


def test_new_alert_after_the_cooldown(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts, T0 + 5 * timedelta(hours=1))
    posts.burst(T0, 15, 2, 0.0)
    a = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert [c.kind for c in run_detection(settings, index_store, state_engine, T0 + 60 * M)] == ["resolved"]
    # 30 min cool-down from T0+60m; a spike judged at T0+100m is a new incident
    posts.burst(T0 + 85 * M, 15, 2, 0.0)
    b = run_detection(settings, index_store, state_engine, T0 + 100 * M)
    assert [(c.kind, c.level) for c in b] == [("opened", "yellow")]
    assert b[0].alert_id != a[0].alert_id


def test_plateau_stays_open_against_the_pinned_baseline(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    settings = settings.model_copy(update={"alerts": alerts_config(update_every=timedelta(hours=1))})
    _quiet(posts, T0 + 6 * timedelta(hours=1))
    posts.burst(T0, 4 * 60, 3, 0.5, text="water outage plateau")  # four hours at ~6x the usual
    kinds = []
    for minute in range(15, 4 * 60 + 1, 15):
        kinds += [(minute, c.kind, c.level) for c in run_detection(settings, index_store, state_engine, T0 + minute * M)]
    assert kinds[0] == (15, "opened", "yellow")
    assert [k for _, k, _ in kinds[1:]] == ["updated"] * len(kinds[1:])  # never resolved while it lasts
    assert len(kinds) >= 4  # hourly updates over four hours
    # the plateau ends: the volume returns to the pinned baseline and the alert resolves
    resolved = [
        (minute, c.kind)
        for minute in range(4 * 60 + 15, 5 * 60 + 1, 15)
        for c in run_detection(settings, index_store, state_engine, T0 + minute * M)
    ]
    assert resolved == [(4 * 60 + 30, "resolved")]


def test_watchlists_are_independent_and_one_failure_does_not_silence_the_others(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _quiet(posts, T0 + timedelta(hours=1), watchlist="water")
    _quiet(posts, T0 + timedelta(hours=1), watchlist="transit")
    posts.burst(T0, 15, 3, 0.0, watchlist="transit", text="metro line two halted, passengers stuck")
    changes = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert [(c.key, c.kind) for c in changes] == [("transit/volume", "opened")]

    real = index_store.histogram

    def broken(query: Any, *a: Any, **kw: Any) -> Any:
        if query.watchlists == ["water"]:
            raise RuntimeError("index shard unavailable")
        return real(query, *a, **kw)

    posts.burst(T0 + 15 * M, 15, 12, 0.6, watchlist="transit", text="metro line two halted, passengers stuck")
    index_store.histogram = broken
    try:
        changes = run_detection(settings, index_store, state_engine, T0 + 30 * M)
    finally:
        del index_store.histogram
    assert [(c.key, c.kind, c.level) for c in changes] == [("transit/volume", "escalated", "red")]
    assert "water" in caplog.text and "index shard unavailable" in caplog.text


def test_high_reach_official_pickup_is_in_the_evidence(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts, T0 + timedelta(hours=1))
    posts.burst(T0, 15, 2, 0.5)
    official = posts.make(T0 + 9 * M, text="water outage: national broadcaster reports", followers=9_000_000, tier=SourceTier.national_media, source="cctv", tag="o")
    rumour = posts.make(T0 + 10 * M, sentiment="negative", text="they poisoned the reservoir", rumor=0.93, tag="r")
    posts.add([official, rumour])
    [change] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    ev = change.alert["evidence"]
    top = ev["posts"][0]
    assert top["id"] == official.id and top["source_tier"] == "national_media" and top["why"][0] == "highest_reach"
    assert [p["id"] for p in ev["rumor_candidates"]] == [rumour.id]
    assert ev["rumor_candidates"][0]["rumor"] == pytest.approx(0.93)
    assert dict(ev["source_tiers"]).get("national_media") == 1


# -- the pure decision --------------------------------------------------------------------------


def _det(level: str | None) -> Any:
    cfg = alerts_config()
    total, negative = {None: (0, 0), "blue": (1, 0), "yellow": (3, 0), "red": (20, 20)}[level]
    d = detect([total] * 10 + [0] * 5, [negative] * 10 + [0] * 5, [0] * 360, cfg)
    assert d.level == level, d.explain()
    return d


def test_decide_table() -> None:
    cfg = alerts_config()
    now = T0
    recent = ActiveView(1, "yellow", "open", now - 5 * M)
    stale = ActiveView(1, "yellow", "acknowledged", now - 20 * M)
    auto = ResolvedView(1, "yellow", now - 10 * M, auto=True)
    officer = ResolvedView(1, "yellow", now - 10 * M, auto=False)
    old = ResolvedView(1, "yellow", now - 31 * M, auto=False)
    assert decide(_det(None), True, None, None, now, cfg) == "none"
    assert decide(_det("blue"), False, None, None, now, cfg) == "open"
    assert decide(_det("red"), False, recent, None, now, cfg) == "escalate"
    assert decide(_det("yellow"), False, recent, None, now, cfg) == "none"  # within update_every
    assert decide(_det("blue"), False, stale, None, now, cfg) == "update"  # lower level: update, keep peak
    assert decide(_det(None), False, recent, None, now, cfg) == "none"  # cooling, not yet at baseline
    assert decide(_det(None), True, recent, None, now, cfg) == "resolve"
    assert decide(_det("blue"), False, None, auto, now, cfg) == "reopen"
    assert decide(_det("yellow"), False, None, officer, now, cfg) == "suppress"
    assert decide(_det("red"), False, None, officer, now, cfg) == "open"
    assert decide(_det("blue"), False, None, old, now, cfg) == "open"
    snoozed = ResolvedView(1, "yellow", now - 31 * M, auto=False, snoozed_until=now + M)
    assert decide(_det("yellow"), False, None, snoozed, now, cfg) == "suppress"
    assert decide(_det("red"), False, None, snoozed, now, cfg) == "open"  # a higher level breaks through


def test_floor_time_follows_the_agency_time_zone() -> None:
    at = datetime(2025, 3, 3, 1, 7, 42, tzinfo=timezone.utc)
    assert floor_time(at, timedelta(minutes=1), "Asia/Shanghai") == datetime(2025, 3, 3, 1, 7, tzinfo=timezone.utc)
    assert floor_time(at, timedelta(minutes=15), "Asia/Shanghai") == datetime(2025, 3, 3, 1, 0, tzinfo=timezone.utc)
    # a day in Beijing starts at 16:00 UTC; in Kathmandu (+05:45) an hour starts at :15 UTC
    assert floor_time(at, timedelta(days=1), "Asia/Shanghai") == datetime(2025, 3, 2, 16, 0, tzinfo=timezone.utc)
    assert floor_time(at, timedelta(hours=1), "Asia/Kathmandu") == datetime(2025, 3, 3, 0, 15, tzinfo=timezone.utc)


def test_naive_now_is_refused(settings: Settings, index_store: Any) -> None:
    with pytest.raises(ValueError, match="time zone"):
        run_detection(settings, index_store, sa.create_engine("sqlite://"), datetime(2025, 3, 3, 1, 0))


# -- coverage gaps ------------------------------------------------------------------------------


def test_a_silent_source_is_a_coverage_gap_not_quiet(settings: Settings, index_store: Any, state_engine: sa.Engine) -> None:
    from crawlers.state import SourceStore
    from yuqing.config import SourceConfig

    settings = settings.model_copy(
        update={
            "sources": [
                SourceConfig(name="gov-feed", kind="feed", url="http://127.0.0.1:9/feed", interval="15m"),
                SourceConfig(name="forum", kind="html", url="http://127.0.0.1:9/forum", interval="15m"),
                SourceConfig(name="off", kind="feed", url="http://127.0.0.1:9/off", interval="15m", enabled=False),
                SourceConfig(name="new", kind="feed", url="http://127.0.0.1:9/new", interval="15m"),
            ]
        }
    )
    health = SourceStore(state_engine)
    health.record_run("gov-feed", finished=T0, cursor=None, succeeded=True, error=None, enqueued=3)
    for i in range(4):  # the forum has never been crawled successfully
        health.record_run("forum", finished=T0 + i * 15 * M, cursor=None, succeeded=False, error="HTTP 503 Service Unavailable", enqueued=0)
    health.record_run("off", finished=T0 - timedelta(days=3), cursor=None, succeeded=False, error="x", enqueued=0)

    changes = run_detection(settings, index_store, state_engine, T0 + 60 * M)  # 4 x 15 min: not yet
    assert [(c.key, c.kind) for c in changes] == [("source:forum/silence", "opened")]
    assert "since it was added" in changes[0].title and "HTTP 503" in changes[0].title
    health.record_run("gov-feed", finished=T0 + 45 * M, cursor=None, succeeded=False, error="timeout", enqueued=0)
    changes = run_detection(settings, index_store, state_engine, T0 + 61 * M)
    assert [(c.key, c.kind, c.level, c.rule, c.watchlist) for c in changes] == [("source:gov-feed/silence", "opened", "yellow", "silence", None)]
    alert = changes[0].alert
    assert alert["deadline_at"] is None and "coverage gap" in alert["title"] and "timeout" in alert["title"]
    assert alert["figures"]["last_success"] == "2025-03-03T01:00:00Z"
    assert run_detection(settings, index_store, state_engine, T0 + 70 * M) == []  # no duplicates
    health.record_run("gov-feed", finished=T0 + 75 * M, cursor=None, succeeded=True, error=None, enqueued=5)
    changes = run_detection(settings, index_store, state_engine, T0 + 76 * M)
    assert [(c.key, c.kind) for c in changes] == [("source:gov-feed/silence", "resolved")]
    assert AlertStore(state_engine).get(changes[0].alert_id)["figures"]["recovered_at"] == "2025-03-03T02:15:00Z"  # type: ignore[index]
    # the forum is switched off while silent: its thread closes rather than hanging open
    off = settings.model_copy(update={"sources": [s for s in settings.sources if s.name != "forum"]})
    changes = run_detection(off, index_store, state_engine, T0 + 77 * M)
    assert [(c.key, c.kind, c.alert["state"]) for c in changes] == [("source:forum/silence", "resolved", "resolved")]


def test_snoozed_known_story_stays_quiet_until_the_snooze_ends(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts, T0 + 5 * timedelta(hours=1))
    posts.burst(T0, 15, 2, 0.0)
    [first] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    store = AlertStore(state_engine, clock=lambda: T0 + 16 * M)
    done = store.resolve(first.alert_id, "li.wei", "known story: annual drill", false_positive=True, snooze=timedelta(hours=2))
    payload = done["events"][-1]["payload"]
    assert payload["false_positive"] is True and payload["snooze_until"] == "2025-03-03T03:16:00Z"
    # past the 30 min cool-down but inside the snooze: still quiet at the same level
    posts.burst(T0 + 60 * M, 15, 2, 0.0)
    assert run_detection(settings, index_store, state_engine, T0 + 75 * M) == []
    # after the snooze it alerts again, as a new thread
    posts.burst(T0 + 140 * M, 15, 2, 0.0)
    [again] = run_detection(settings, index_store, state_engine, T0 + 155 * M)
    assert again.kind == "opened" and again.alert_id != first.alert_id
    with pytest.raises(ValueError, match="snooze"):
        store.resolve(again.alert_id, "li.wei", "x", snooze=timedelta(days=31))


def test_a_spike_confined_to_one_topic_opens_that_topic_thread_only(index_store: Any, posts: Posts, state_engine: sa.Engine, tmp_path: Any) -> None:
    from yuqing.config import TopicConfig, WatchlistConfig
    from yuqing.records import Post, TopicScore

    settings = Settings(
        agency="City Water Authority", timezone="Asia/Shanghai", data_dir=str(tmp_path / "data"),
        watchlists=[WatchlistConfig(name="water", terms=["自来水", "City Water"])],
        topics=[TopicConfig(name="outage"), TopicConfig(name="billing")],
        alerts=alerts_config(topics=["outage", "billing"]),
    )

    def tagged(ps: list[Post], topic: str) -> list[Post]:
        return [p.model_copy(update={"classification": p.classification.model_copy(update={"topics": [TopicScore(topic=topic, score=0.9)]})}) for p in ps]

    start = T0 - timedelta(hours=7)
    posts.steady(start, T0 + timedelta(hours=1), M)  # 15 untopical posts per 15-min window
    for topic, offset in (("outage", 20), ("billing", 40)):  # 3 per window in each topic
        posts.add(tagged([posts.make(start + i * 5 * M + timedelta(seconds=offset), tag=topic[:2]) for i in range(8 * 12)], topic))
    assert run_detection(settings, index_store, state_engine, T0) == []

    # +1 outage post a minute: the outage topic goes 3 -> 18 (6x), the watchlist 21 -> 36 (< 2x)
    burst = tagged([posts.make(T0 + m * M + timedelta(seconds=1), text="water outage in district five", tag="s") for m in range(15)], "outage")
    posts.add(burst)
    changes = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert [(c.kind, c.key, c.level) for c in changes] == [("opened", "water/topic:outage", "blue")]
    alert = AlertStore(state_engine).get(changes[0].alert_id)
    assert alert is not None and alert["watchlist"] == "water" and alert["rule"] == "volume"
    f = alert["figures"]
    assert f["observed"] == 18 and 2.5 <= f["expected"] <= 3.5 and f["ratio"] >= 5
    assert datetime.fromisoformat(f["window_end"]) == T0 + 15 * M
    assert alert["title"].startswith("water · outage: 18 stories (18 posts) in 15 min")
    ids = {p["id"] for p in alert["evidence"]["posts"]}
    assert ids and all(i.startswith(("s", "ou")) for i in ids), ids  # outage posts only: no untopical ("b") or billing ("bi") post
    assert {r.key for r in _rows(state_engine, alerts)} == {"water/topic:outage"}  # no billing, no watchlist-wide alert
