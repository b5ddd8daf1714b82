"""Draft holding statements: every fact traces to the alert, nothing speculative, a claim is
"unverified" until an officer says otherwise, Arabic is right-to-left with isolated facts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.service import run_detection
from alerts.statement import FSI, PDI, Draft, draft_statement, drafts_for, format_time, snippet
from alerts.store import AlertStore
from tests.alerts.conftest import T0, Posts
from yuqing.config import Settings
from yuqing.records import SourceTier

M = timedelta(minutes=1)
CAUSAL = ("because", "due to", "caused", "cause", "原因", "由于", "导致", "起因", "بسبب", "نتيجة")


@pytest.fixture
def incident(settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine) -> tuple[AlertStore, int, str]:
    posts.steady(T0 - timedelta(hours=7), T0 + 15 * M, 2 * M)
    posts.burst(T0, 15, 1, 0.6, text="城东自来水停水，居民排长队接水", lang="zh")
    posts.burst(T0, 15, 1, 0.6, text="Water outage in the east district, residents queue for water", lang="en")
    posts.burst(T0, 15, 1, 0.6, text="انقطاع المياه في الحي الشرقي والسكان يصطفون", lang="ar")
    rumour = posts.make(T0 + 7 * M, sentiment="negative", rumor=0.97, text="有人在水库投毒，千万别喝自来水！", lang="zh", tag="r")
    media = posts.make(T0 + 9 * M, text="City Water Authority confirms supply interruption in east district", followers=5_000_000, tier=SourceTier.national_media, source="CCTV-News", tag="m")
    posts.add([rumour, media])
    [change] = run_detection(settings, index_store, state_engine, T0 + 15 * M)
    return AlertStore(state_engine, clock=lambda: T0 + 20 * M), change.alert_id, rumour.id


_TOKEN = re.compile(r"([A-Za-z_]+)|\[(\d+)\]")


def _resolve(alert: dict, settings: Settings, source: str) -> Any:
    root, _, rest = source.partition(".")
    if root == "config":
        return getattr(settings, rest)
    if root == "schedule":
        return "schedule"
    node: Any = alert
    for name, index in _TOKEN.findall(source):
        node = node[name] if name else node[int(index)]
    return node


def _check_traceable(d: Draft, alert: dict, settings: Settings, now: datetime) -> None:
    remainder = d.text
    for f in d.facts:
        value = _resolve(alert, settings, f.source)
        if f.source == "schedule.next_update":
            assert f.value == (now + settings.alerts.statement_next_update).isoformat()
            assert f.text == format_time(now + settings.alerts.statement_next_update, d.lang, settings.timezone)
        else:
            assert value == f.value, f
        if f.source.startswith("schedule"):
            pass
        elif f.key in ("first_seen",) or f.key.startswith("pickup_at"):
            assert f.text == format_time(datetime.fromisoformat(value), d.lang, settings.timezone)
        elif f.key.startswith(("claim", "subject")):
            assert f.text == snippet(value)
        elif f.text:
            assert f.text == value
        if f.text:
            shown = f"{FSI}{f.text}{PDI}" if d.direction == "rtl" else f.text
            assert shown in d.text, (f, d.text)
            remainder = remainder.replace(shown, "")
    # what is left is the template's fixed wording: nothing variable survives
    assert not re.search(r"\d", remainder), remainder
    for quoted in (r"“(.*?)”", r'"(.*?)"', r"«(.*?)»"):  # every quotation was a fact
        assert all(q == "" for q in re.findall(quoted, remainder)), remainder
    assert not any(w in remainder.lower() for w in CAUSAL), remainder


def test_drafts_in_the_incident_languages_trace_every_fact(incident: tuple[AlertStore, int, str], settings: Settings) -> None:
    store, aid, rumour_id = incident
    alert = store.get(aid)
    assert alert is not None
    now = T0 + 20 * M
    drafts = drafts_for(alert, settings, now)
    assert set(drafts) == {"zh", "en", "ar"}
    for d in drafts.values():
        _check_traceable(d, alert, settings, now)
        assert d.placeholders, "who acts and what they do is for the officer to fill"
    zh, en, ar = drafts["zh"], drafts["en"], drafts["ar"]
    assert zh.text.startswith("City Water Authority关于")
    assert "北京时间2025年3月3日9时00分起" in zh.text  # the earliest post, in Beijing time
    assert "CCTV-News已于北京时间2025年3月3日9时09分对此进行报道" in zh.text
    # the classifier said 0.97; that makes it a candidate, never "false"
    assert "网传“有人在水库投毒，千万别喝自来水！”的说法尚未得到证实" in zh.text
    assert "不实" not in zh.text and " is false" not in en.text
    assert "has not been verified" in en.text
    assert "We will publish a further update by 10:20 (UTC+08:00) on 3 March 2025." in en.text
    assert ar.direction == "rtl" and zh.direction == en.direction == "ltr"
    assert f"{FSI}City Water Authority{PDI}" in ar.text
    assert "لم يتم التحقق بعد" in ar.text


def test_a_claim_is_false_only_on_an_officers_verdict(incident: tuple[AlertStore, int, str], settings: Settings) -> None:
    store, aid, rumour_id = incident
    ev = store.mark_claim(aid, "li.wei", rumour_id, "false")
    assert ev["kind"] == "claim" and ev["payload"]["verdict"] == "false"
    alert = store.get(aid)
    assert alert is not None
    now = T0 + 30 * M
    zh = draft_statement(alert, agency=settings.agency, lang="zh", tz=settings.timezone, now=now, next_update=timedelta(hours=2))
    assert "经核实，网传“有人在水库投毒，千万别喝自来水！”的说法不实。" in zh.text
    verdict = [f for f in zh.facts if f.key.startswith("verdict")]
    assert len(verdict) == 1 and verdict[0].value == "false"
    assert _resolve(alert, settings, verdict[0].source) == "false"  # the officer's event
    en = draft_statement(alert, agency=settings.agency, lang="en", tz=settings.timezone, now=now, next_update=timedelta(hours=2))
    assert 'The claim that "有人在水库投毒，千万别喝自来水！" is false.' in en.text
    # the officer takes it back: unverified again
    store.mark_claim(aid, "li.wei", rumour_id, "unverified")
    zh = draft_statement(store.get(aid) or {}, agency=settings.agency, lang="zh", tz=settings.timezone, now=now, next_update=timedelta(hours=2))
    assert "尚未得到证实" in zh.text and "不实" not in zh.text
    with pytest.raises(ValueError, match="not in the evidence"):
        store.mark_claim(aid, "li.wei", "no-such-post", "false")
    with pytest.raises(ValueError, match="verdict"):
        store.mark_claim(aid, "li.wei", rumour_id, "fake news")


def test_a_thin_alert_still_drafts_without_inventing() -> None:
    alert = {"evidence": {"posts": [], "rumor_candidates": [], "languages": []}, "events": []}
    now = datetime(2025, 3, 3, 1, 0, tzinfo=timezone.utc)
    d = draft_statement(alert, agency="Agency", lang="en", tz="UTC", now=now, next_update=timedelta(hours=1))
    assert d.text.startswith("Initial statement from Agency")
    assert "Since" not in d.text and "claim" not in d.text
    assert "02:00 (UTC+00:00) on 3 March 2025" in d.text
    with pytest.raises(ValueError, match="no statement template"):
        draft_statement(alert, agency="A", lang="fr", tz="UTC", now=now, next_update=timedelta(hours=1))
