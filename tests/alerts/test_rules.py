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


def test_clusters_count_a_copy_paste_campaign_as_one_story(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> None:
    _quiet(posts)
    copies = [posts.make(T0 + (m % 15) * M, text="copy paste campaign text", tag="c") for m in range(60)]
    for p in copies:
        p.cluster_id, p.cluster_size = "cluster-1", 60
    posts.add(copies)
    by_posts = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    assert [(c.level, c.alert["figures"]["observed"]) for c in by_posts] == [("yellow", 68)]
    clusters = settings.alerts.model_copy(update={"count_by": "clusters"})
    s2 = settings.model_copy(update={"alerts": clusters, "watchlists": settings.watchlists})
    with state_engine.begin() as conn:  # a fresh start for the same stream
        conn.execute(sa.text("DELETE FROM deliveries"))
        conn.execute(sa.text("DELETE FROM oncall_pages"))
        conn.execute(sa.text("DELETE FROM alert_events"))
        conn.execute(sa.text("DELETE FROM alerts"))
    assert run_detection(s2, index_store, state_engine, T0 + 15 * M) == []  # 9 stories (8 ordinary + 1 campaign): the usual


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
