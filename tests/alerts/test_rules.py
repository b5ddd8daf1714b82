"""The rule families beyond volume feed one incident thread: rising negative share, a surge of
high rumour-likelihood posts, a single high-reach post, media pickup raising the level; per-
watchlist overrides; story clusters; a published statement and its countdowns and effect."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.service import run_detection, statement_effect
from alerts.store import AlertStore
from tests.alerts.conftest import T0, Posts, alerts_config
from yuqing.config import AlertsOverride, ConfigError, HighReachRule, Settings, load_settings
from yuqing.records import SourceTier

M = timedelta(minutes=1)


def _quiet(posts: Posts, watchlist: str = "water") -> None:
    posts.steady(T0 - timedelta(hours=7), T0 + 15 * M, 2 * M, watchlist=watchlist)


def test_rising_negative_share_sets_the_level_over_a_mild_volume_rise(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts)
    posts.burst(T0, 15, 1, 1.0, text="the water tastes of chlorine, nobody answers the hotline")
    [c] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    f = c.alert["figures"]
    assert (c.kind, c.level, c.rule, c.alert["rule"]) == ("opened", "yellow", "negative_share", "negative_share")
    assert f["rules"]["volume"]["level"] == "blue"  # volume alone would have said blue
    neg = f["rules"]["negative_share"]
    assert neg["negative"] == 15 and neg["share"] > 0.6 and neg["baseline_share"] == 0.0
    assert f["explain"].startswith("negative_share rule yellow: negative 15 ≥ 10, negative share")
    assert "negative share rule" in c.title


def test_a_surge_of_likely_rumours(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts)
    posts.add([posts.make(T0 + m * M, text=f"they say the reservoir was poisoned #{m}", rumor=0.9, tag="r") for m in range(12)])
    [c] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    r = c.alert["figures"]["rules"]["rumor"]
    assert (c.level, c.rule) == ("yellow", "rumor")
    assert r["observed"] == 12 and r["rumor_min"] == 0.7 and r["ratio"] >= 5
    assert len(c.alert["evidence"]["rumor_candidates"]) == 3


def test_one_post_from_a_very_large_account_opens_an_alert_and_overrides_apply(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts)
    _quiet(posts, watchlist="transit")
    big = posts.make(T0 + 3 * M, text="water cut again in the east district?", followers=20_000_000, tag="v")
    posts.add([big, posts.make(T0 + 3 * M, watchlist="transit", text="metro delays", followers=20_000_000, tag="v")])
    quiet_transit = settings.alerts.model_copy(update={"overrides": {"transit": AlertsOverride(high_reach=[])}})
    settings = settings.model_copy(update={"alerts": quiet_transit})
    [c] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert (c.key, c.level, c.rule) == ("water/volume", "yellow", "high_reach")
    hr = c.alert["figures"]["rules"]["high_reach"]
    assert hr["post_id"] == big.id and hr["followers"] == 20_000_000
    assert hr["reasons"] == ["author followers 20000000 ≥ 10000000"]


def test_national_media_pickup_raises_the_level(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts)
    posts.burst(T0, 15, 1, 1.0)
    posts.add([posts.make(T0 + 9 * M, text="broadcaster reports water complaints", tier=SourceTier.national_media, source="cctv", followers=50, tag="m")])
    [c] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert (c.level, c.rule) == ("orange", "negative_share")
    assert c.alert["figures"]["pickups"] == {"national_media": 1}
    assert "picked up by national_media 1 post(s): yellow raised to orange" in c.alert["figures"]["explain"]
    # without the raise the same story stays yellow
    flat = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"pickup_raise": 0})})
    assert run_detection(flat, index_store, state_engine, T0 + 15 * M) == []  # thread exists; no higher level


def _fresh(state_engine: sa.Engine) -> None:
    with state_engine.begin() as conn:  # a fresh start for the same stream
        for table in ("deliveries", "oncall_pages", "alert_events", "alerts"):
            conn.execute(sa.text(f"DELETE FROM {table}"))


def test_clusters_count_a_copy_paste_campaign_as_one_story(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    assert settings.alerts.count_by == "clusters"  # the default
    _quiet(posts)
    copies = [posts.make(T0 + (m % 15) * M, text="copy paste campaign text", tag="c") for m in range(60)]
    for i, p in enumerate(copies):
        p.cluster_id, p.cluster_size = "cluster-1", i + 1
    posts.add(copies)
    # 9 stories (8 ordinary + 1 campaign): the usual, whatever the 60 copies
    assert run_detection(settings, index_store, state_engine, T0 + 15 * M) == []
    by_posts = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"count_by": "posts"})})
    [c] = run_detection(by_posts, index_store, state_engine, T0 + 15 * M)
    assert (c.level, c.alert["figures"]["observed"], c.alert["figures"]["unit"]) == ("yellow", 68, "posts")


def test_stories_carry_their_shares_in_the_figures(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    """12 distinct stories in the window, one of them copied 1,000 times: the volume rule judges
    12 stories (not 1,011 rows) and the figures, title and evidence give the shares."""
    _quiet(posts)
    stories = [posts.make(T0 + m * M, text=f"burst pipe on street {m}, water everywhere", tag="s") for m in range(12)]
    viral = stories[0]
    copies = [posts.make(T0 + (k % 15) * M + timedelta(seconds=30), text=viral.text, tag="c", reposts=1) for k in range(1000)]
    for i, p in enumerate([viral, *copies]):
        p.cluster_id, p.cluster_size = viral.id, i + 1
    posts.add(stories + copies)
    [c] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    f = c.alert["figures"]
    assert f["unit"] == "stories" and f["observed"] == 12 + 8  # 12 new stories + 8 ordinary posts (no cluster id: each its own)
    assert f["posts"] == 12 + 1000 + 8 and f["rules"]["volume"]["posts"] == f["posts"]
    assert f["rules"]["volume"]["unit"] == "stories" and f["rules"]["volume"]["observed"] == f["observed"]
    assert c.title.startswith("water: 20 stories (1020 posts) in 15 min")
    ev = c.alert["evidence"]
    viral_shown = [p for p in ev["posts"] if p["text"] == viral.text]
    assert [p["cluster_size"] for p in viral_shown] == [1001]  # one post for the story, with every share
    assert sum(pt["total"] for pt in ev["series"][-15:]) == 1020  # the chart counts posts
    _fresh(state_engine)
    by_posts = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"count_by": "posts"})})
    [p] = run_detection(by_posts, index_store, state_engine, T0 + 15 * M)
    assert p.alert["figures"]["observed"] == 1020 and p.alert["figures"]["unit"] == "posts"


def test_published_statement_starts_countdowns_and_measures_before_and_after(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts)
    posts.burst(T0, 15, 8, 0.6)
    [c] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert c.level == "red" and c.alert["deadline_at"] is not None
    cfg = alerts_config()  # the default: a press conference within 24 h for red
    store = AlertStore(state_engine, clock=lambda: T0 + 40 * M, config=cfg)
    with pytest.raises(ValueError, match="future"):
        store.mark_published(c.alert_id, "li.wei", "https://gov.example.cn/s/1", T0 + 2 * timedelta(hours=1))
    done = store.mark_published(c.alert_id, "li.wei", "https://gov.example.cn/s/1", T0 + 30 * M)
    assert done["published_at"] == "2025-03-03T01:30:00Z" and done["statement_url"] == "https://gov.example.cn/s/1"
    assert done["next_update_at"] == "2025-03-03T02:30:00Z"  # + statement_next_update (1 h)
    assert done["press_conference_at"] == "2025-03-04T01:15:00Z"  # 24 h after the alert opened
    assert done["deadline_at"] is None  # the first statement is out
    ev = done["events"][-1]
    assert ev["kind"] == "published" and ev["actor"] == "li.wei" and ev["payload"]["first"] is True
    posts.add([posts.make(T0 + 31 * M + i * M, sentiment="positive", tag="a") for i in range(5)])
    effect = statement_effect(settings, index_store, done, T0 + 40 * M)
    assert effect is not None and effect["complete"] is False
    assert effect["before"]["posts"] > effect["after"]["posts"] > 0
    assert effect["after"]["negative_share"] < effect["before"]["negative_share"]
    assert effect["change"]["negative_share"] < 0


def test_overrides_must_name_a_watchlist_and_rules_need_a_threshold(tmp_path: Any) -> None:
    p = tmp_path / "config.yaml"
    p.write_text("watchlists:\n  - {name: water, terms: [x]}\nalerts:\n  overrides:\n    waterr: {pickup_raise: 0}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="alerts.overrides: no watchlist named 'waterr'"):
        load_settings(p)
    with pytest.raises(ValueError, match="needs min_followers or min_reach"):
        HighReachRule(level="blue")


def test_multi_window_confirmation(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    """A quarter hour at 2 posts a minute over a quiet baseline holds on the window alone; the
    same quarter hour last week was as busy (a weekly event), so "same time last week" does not
    confirm it, while "last 3 h" does. Requiring the week's confirmation keeps it quiet;
    requiring either opens it, with both windows' figures in figures.rules.volume.confirm."""
    from yuqing.config import ConfirmWindow

    week = timedelta(days=7)
    _quiet(posts)
    posts.burst(T0, 15, 2, 0.0)
    posts.burst(T0 - week, 15, 2, 0.0, tag="w")
    week_only = settings.alerts.model_copy(update={"confirm": [ConfirmWindow(name="same time last week", lag=week)], "confirm_min": 1})
    assert run_detection(settings.model_copy(update={"alerts": week_only}), index_store, state_engine, T0 + 15 * M) == []

    [c] = run_detection(settings, index_store, state_engine, T0 + 15 * M)  # the defaults: either of two
    assert (c.kind, c.level, c.rule) == ("opened", "yellow", "volume")
    conf = c.alert["figures"]["rules"]["volume"]["confirm"]
    assert (conf["required"], conf["confirmed_by"], conf["confirmed"], conf["held"]) == (1, 1, True, "yellow")
    span, lag = conf["windows"]
    assert (span["name"], span["kind"], span["confirmed"]) == ("last 3 h", "span", True)
    assert span["observed"] == c.alert["figures"]["observed"] == 38 and span["raw_reference"] == 7.5  # 90 posts in 3 h
    assert (lag["name"], lag["kind"], lag["raw_reference"], lag["confirmed"]) == ("same time last week", "lag", 30.0, False)
    assert "confirmed on 1 of 2 longer horizons (≥ 1 needed)" in c.alert["figures"]["explain"]

    # an open thread is already confirmed: the next judgement carries no confirmation
    later = run_detection(settings, index_store, state_engine, T0 + 31 * M)
    assert all("confirm" not in ch.alert["figures"]["rules"]["volume"] for ch in later)
