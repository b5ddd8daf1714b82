"""AlertStore, the interface the API uses: filters, transitions, notes, the SSE event log and
the audit trail, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.models import Alert, AlertEvent
from alerts.store import AlertNotFound, AlertStore, InvalidTransition, dumps, insert_event
from yuqing.state.schema import alert_events, alerts, audit_log

T = datetime(2025, 3, 3, 1, 0, tzinfo=timezone.utc)
EVIDENCE = {
    "post_ids": ["p1"],
    "posts": [
        {
            "id": "p1",
            "why": ["earliest"],
            "source": "weibo",
            "source_tier": "public",
            "platform": "weibo",
            "published_at": "2025-03-03T00:50:00Z",
            "text": "停水了",
        }
    ],
    "interval": "1m",
    "expected_per_interval": 0.5,
    "series": [{"t": "2025-03-03T00:50:00Z", "total": 3, "negative": 1}],
    "window_start": "2025-03-03T00:45:00Z",
    "window_end": "2025-03-03T01:00:00Z",
}


def _seed(engine: sa.Engine, *, key: str, level: str, state: str = "open", watchlist: str = "water", at: datetime = T) -> int:
    with engine.begin() as c:
        aid = c.execute(
            sa.insert(alerts).values(
                key=key, state=state, level=level, rule="volume", watchlist=watchlist, title=f"{key} {level}",
                figures=dumps({"observed": 40}), evidence=dumps(EVIDENCE), opened_at=at, updated_at=at,
                deadline_at=at + timedelta(hours=1), resolved_at=at if state == "resolved" else None,
            )
        ).inserted_primary_key[0]
        insert_event(c, aid, "opened", at, "detector", {"level": level})
    return int(aid)


@pytest.fixture
def store(state_engine: sa.Engine) -> AlertStore:
    return AlertStore(state_engine, clock=lambda: T + timedelta(minutes=5))


def test_list_filters_and_order(store: AlertStore, state_engine: sa.Engine) -> None:
    a = _seed(state_engine, key="water/volume", level="red", at=T)
    b = _seed(state_engine, key="transit/volume", level="blue", watchlist="transit", at=T + timedelta(minutes=1))
    c = _seed(state_engine, key="water/volume", level="yellow", state="resolved", at=T - timedelta(hours=3))
    assert [x["id"] for x in store.list()] == [b, a, c]  # newest activity first
    assert [x["id"] for x in store.list(state="open")] == [b, a]
    assert [x["id"] for x in store.list(state=["open", "resolved"], level=["red", "yellow"])] == [a, c]
    assert [x["id"] for x in store.list(watchlist="water")] == [a, c]
    assert [x["id"] for x in store.list(since=T)] == [b, a]
    assert [x["id"] for x in store.list(limit=1)] == [b]
    listed = store.list()[0]
    assert listed["evidence"] is None and listed["events"] is None
    Alert.model_validate(listed)
    with pytest.raises(ValueError):
        store.list(limit=0)
    with pytest.raises(ValueError):
        store.list(since=datetime(2025, 1, 1))


def test_get_has_evidence_and_the_thread(store: AlertStore, state_engine: sa.Engine) -> None:
    a = _seed(state_engine, key="water/volume", level="red")
    got = store.get(a)
    assert got is not None
    alert = Alert.model_validate(got)
    assert alert.evidence is not None and alert.evidence.posts[0].text == "停水了"
    assert [e.kind for e in alert.events or []] == ["opened"]
    assert got["opened_at"] == "2025-03-03T01:00:00Z"
    assert store.get(a + 999) is None


def test_acknowledge(store: AlertStore, state_engine: sa.Engine) -> None:
    a = _seed(state_engine, key="water/volume", level="red")
    done = store.acknowledge(a, "li.wei")
    assert done["state"] == "acknowledged" and done["acknowledged_by"] == "li.wei"
    assert done["acknowledged_at"] == "2025-03-03T01:05:00Z"
    again = store.acknowledge(a, "zhang.min")  # a double click: no-op
    assert again["acknowledged_by"] == "li.wei"
    assert [e["kind"] for e in again["events"]] == ["opened", "acknowledged"]
    with pytest.raises(AlertNotFound):
        store.acknowledge(a + 999, "li.wei")
    with pytest.raises(ValueError, match="actor"):
        store.acknowledge(a, "  ")
    r = _seed(state_engine, key="x/volume", level="blue", state="resolved")
    with pytest.raises(InvalidTransition):
        store.acknowledge(r, "li.wei")
    with state_engine.connect() as c:
        audit = list(c.execute(sa.select(audit_log)))
    assert [(x.actor, x.action, x.target) for x in audit] == [("li.wei", "alert.acknowledge", f"alert:{a}")]


def test_resolve_needs_a_reason_and_is_recorded(store: AlertStore, state_engine: sa.Engine) -> None:
    a = _seed(state_engine, key="water/volume", level="orange")
    with pytest.raises(ValueError, match="reason"):
        store.resolve(a, "li.wei", "")
    done = store.resolve(a, "li.wei", "statement published; story subsided")
    assert done["state"] == "resolved" and done["resolved_at"] == "2025-03-03T01:05:00Z"
    last = done["events"][-1]
    assert last["kind"] == "resolved" and last["actor"] == "li.wei"
    assert last["payload"]["reason"] == "statement published; story subsided" and last["payload"]["auto"] is False
    assert last["payload"]["state"] == "resolved" and last["payload"]["key"] == "water/volume"
    assert len(store.resolve(a, "li.wei", "again")["events"]) == 2  # no-op
    with pytest.raises(AlertNotFound):
        store.resolve(a + 999, "li.wei", "x")


def test_notes(store: AlertStore, state_engine: sa.Engine) -> None:
    a = _seed(state_engine, key="water/volume", level="red", state="resolved")
    ev = store.add_note(a, "li.wei", "联系了供水集团，预计18点恢复")
    AlertEvent.model_validate(ev)
    assert ev["kind"] == "note" and ev["payload"]["text"] == "联系了供水集团，预计18点恢复"
    with pytest.raises(ValueError):
        store.add_note(a, "li.wei", " ")
    with pytest.raises(ValueError):
        store.add_note(a, "li.wei", "x" * 5001)
    with pytest.raises(AlertNotFound):
        store.add_note(a + 999, "li.wei", "x")
    with state_engine.connect() as c:
        assert [x.action for x in c.execute(sa.select(audit_log))] == ["alert.note"]


def test_events_since_resumes_like_last_event_id(store: AlertStore, state_engine: sa.Engine) -> None:
    a = _seed(state_engine, key="water/volume", level="red")
    b = _seed(state_engine, key="transit/volume", level="blue", watchlist="transit")
    store.acknowledge(a, "li.wei")
    store.add_note(b, "zhang.min", "watching")
    store.resolve(b, "zhang.min", "false positive: a concert")
    everything = store.events_since(0)
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids) and len(ids) == 5
    assert [(e["alert_id"], e["kind"]) for e in everything] == [
        (a, "opened"), (b, "opened"), (a, "acknowledged"), (b, "note"), (b, "resolved"),
    ]
    first = store.events_since(0, limit=2)
    rest = store.events_since(first[-1]["id"])
    assert first + rest == everything
    assert store.events_since(ids[-1]) == []
    with state_engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(alert_events)).scalar() == 5


def test_verdicts_and_counts_per_watchlist(state_engine: sa.Engine) -> None:
    fp = _seed(state_engine, key="water/volume", level="blue", at=T)
    sn = _seed(state_engine, key="water/topic:outage", level="yellow", at=T)
    both = _seed(state_engine, key="transit/volume", level="blue", watchlist="transit", at=T)
    plain = _seed(state_engine, key="transit/topic:fares", level="blue", watchlist="transit", at=T)
    AlertStore(state_engine, clock=lambda: T + timedelta(minutes=5)).resolve(fp, "li.wei", "noise: a quiz show", false_positive=True)
    later = AlertStore(state_engine, clock=lambda: T + timedelta(hours=2))
    later.resolve(sn, "li.wei", "known story: scheduled maintenance", snooze=timedelta(hours=6))
    later.resolve(both, "zhang.min", "bot wave", false_positive=True, snooze=timedelta(days=1))
    later.resolve(plain, "zhang.min", "handled")  # an ordinary resolution is no verdict

    assert later.verdict_counts() == {
        "water": {"false_positives": 1, "snoozes": 1},
        "transit": {"false_positives": 1, "snoozes": 1},
    }
    assert later.verdict_counts(watchlist="water") == {"water": {"false_positives": 1, "snoozes": 1}}
    assert later.verdict_counts(since=T + timedelta(hours=1)) == {
        "water": {"false_positives": 0, "snoozes": 1},
        "transit": {"false_positives": 1, "snoozes": 1},
    }
    vs = later.verdicts()
    assert [v["alert_id"] for v in vs] == [fp, sn, both]
    assert vs[0] == {
        "alert_id": fp, "key": "water/volume", "watchlist": "water", "level": "blue", "opened_at": "2025-03-03T01:00:00Z",
        "at": "2025-03-03T01:05:00Z", "actor": "li.wei", "reason": "noise: a quiz show", "false_positive": True, "snooze_until": None,
    }
    assert vs[1]["snooze_until"] == "2025-03-03T09:00:00Z" and vs[1]["false_positive"] is False
    with pytest.raises(ValueError, match="time zone"):
        later.verdicts(since=datetime(2025, 3, 3))


def test_backtest_reports_recorded_verdicts(state_url: str, state_engine: sa.Engine, tmp_path: Path) -> None:
    from alerts.backtest import main
    from tests.alerts.test_backtest import _spiky, _write

    series = _write(tmp_path / "s.csv", _spiky())
    plain = io.StringIO()
    assert main(["--series", str(series)], out=plain) == 0
    raised = [json.loads(x) for x in plain.getvalue().splitlines()]
    assert raised
    first = datetime.fromisoformat(raised[0]["timestamp"]).replace(tzinfo=timezone.utc)
    a = _seed(state_engine, key="water/volume", level="blue", at=first + timedelta(minutes=10))
    b = _seed(state_engine, key="transit/volume", level="blue", watchlist="transit", at=first - timedelta(days=1, minutes=10))
    AlertStore(state_engine, clock=lambda: first + timedelta(minutes=20)).resolve(a, "li.wei", "quiz show", false_positive=True)
    AlertStore(state_engine, clock=lambda: first - timedelta(days=1)).resolve(b, "li.wei", "known", snooze=timedelta(days=2))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"timezone: UTC\nstate:\n  url: {json.dumps(state_url)}\n", encoding="utf-8")

    def report(*extra: str) -> dict:
        out, err = io.StringIO(), io.StringIO()
        assert main(["--series", str(series), "--config", str(cfg), "--verdicts", "state", *extra], out=out, err=err) == 0
        assert out.getvalue() == plain.getvalue()  # stdout: one line per alert raised, unchanged
        return json.loads(err.getvalue())

    water = report("--watchlist", "water")
    # the false positive covers its alert from one window (15 min) before it opened
    assert water["verdicts"] == {"false_positives": 1, "snoozes": 0}
    assert water["on_false_positive"] == 1 and water["in_snooze"] == 0 and water["raised"] == len(raised)
    assert water["flagged"][0]["timestamp"] == raised[0]["timestamp"]
    everything = report()
    assert everything["verdicts"] == {"false_positives": 1, "snoozes": 1}
    assert everything["in_snooze"] == len(raised)
