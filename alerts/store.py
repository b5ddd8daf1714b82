"""Reading and acting on alerts: the interface the API (and the CLI) use.

    store = AlertStore(engine)                   # engine: yuqing.state.db.connect(url), migrated
    store.list(state=None, level=None, watchlist=None, since=None, limit=50) -> list[dict]
    store.get(alert_id) -> dict | None
    store.acknowledge(alert_id, actor) -> dict
    store.resolve(alert_id, actor, reason) -> dict
    store.add_note(alert_id, actor, text) -> dict
    store.events_since(last_event_id, limit=100) -> list[dict]
    store.mark_claim(alert_id, actor, post_id, verdict) -> dict     # verdict: false|true|unverified
    store.mark_published(alert_id, actor, url, at=None) -> dict     # a statement went out
    store.verdicts(watchlist=None, since=None) -> list[dict]        # false positives and snoozes
    store.verdict_counts(watchlist=None, since=None) -> dict[str, dict[str, int]]
    AlertStore(engine, clock, config=settings.alerts)             # config: countdown rules

Shapes: every alert dict is `alerts.models.Alert.model_dump(mode="json")` and every event dict
`alerts.models.AlertEvent.model_dump(mode="json")` — JSON-ready (times are ISO 8601 UTC
strings), so the API returns them and the SSE stream sends them as they are.

- `list`: newest activity first (`updated_at` desc). `state` / `level` take one value or a list;
  `since` (aware datetime) keeps alerts changed at or after it; `limit` 1..1000. `evidence`
  and `events` are None here (they can be large): use `get`.
- `get`: the alert with its evidence and its whole thread of events (oldest first); None when
  there is no such alert.
- `acknowledge`: open -> acknowledged; returns the alert as `get` does. Acknowledging an already acknowledged alert is a no-op
  that returns it unchanged (a double click is not an error). Raises `AlertNotFound`, or
  `InvalidTransition` for a resolved alert.
- `resolve`: open|acknowledged -> resolved with the officer's `reason` (required); returns the
  alert as `get` does. Optional keywords: `false_positive=True` marks the alert a false
  positive (kept in the event and audit detail, counted by reviews); `snooze=timedelta` (at most
  30 days) keeps a known story from re-alerting at the same or a lower level until then. Resolving a
  resolved alert is a no-op. An officer-resolved alert is not reopened by the detector during
  the cool-down (an auto-resolved one is: the incident came back).
- `verdicts`: every officer resolution that marked the alert a false positive or snoozed it,
  oldest first: `{"alert_id", "key", "watchlist", "level", "opened_at", "at" (when the officer
  resolved it), "actor", "reason", "false_positive": bool, "snooze_until": ISO or None}`.
  `since` (aware) keeps verdicts given at or after it; `watchlist` keeps one watchlist's.
  `verdict_counts`: the same, counted per watchlist — `{"water": {"false_positives": 2,
  "snoozes": 1}}` (one resolution can be both); the backtest (`--verdicts state`) reads these.
- `add_note`: a free-text note on the thread; returns the event. Allowed in every state.
- `mark_claim`: an officer's verdict on a circulating claim (a post of the alert's evidence,
  usually a rumour candidate): `false`, `true` or back to `unverified`. Draft statements call a
  claim false only on such a verdict, never on the classifier's score. Returns the event.
- `events_since`: events with id > `last_event_id`, oldest first, at most `limit` (1..1000):
  the SSE stream polls this and resumes from Last-Event-ID. Event kinds: opened, escalated,
  updated, reopened, resolved (detector, actor "detector"), acknowledged, resolved, note,
  claim (officers). Each payload carries `level`, `state`, `title`, `watchlist`, `key` at the time of
  the event, so a feed can render it without fetching the alert.

Every write happens in one transaction with its `alert_events` row and its `audit_log` row
(action `alert.acknowledge` / `alert.resolve` / `alert.note`, target `alert:<id>`).
Errors: `AlertNotFound` (a `KeyError`: 404), `InvalidTransition` (a `ValueError`: 409) and
`ValueError` for a blank actor, reason or note (422).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alerts.models import Alert, AlertEvent
from yuqing.config import AlertsConfig
from yuqing.state.schema import alert_events, alerts, audit_log

MAX_NOTE = 5000
MAX_SNOOZE = timedelta(days=30)
DETECTOR = "detector"


class AlertNotFound(KeyError):
    """No alert with that id."""


class InvalidTransition(ValueError):
    """The alert's state does not allow this action (e.g. acknowledging a resolved alert)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


def dumps(value: Any) -> str:
    """JSON for the state tables: UTF-8 kept readable (Chinese, Arabic), datetimes as ISO."""
    return json.dumps(value, ensure_ascii=False, default=_default, sort_keys=True)


def iso(v: datetime) -> str:
    """UTC ISO 8601 with "Z", the form pydantic's JSON mode writes, so every time in an alert
    reads the same whether it came from a model or from figures."""
    return v.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _default(v: Any) -> Any:
    if isinstance(v, datetime):
        return iso(v)
    if hasattr(v, "model_dump"):
        return v.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def row_to_alert(row: Any, *, with_evidence: bool, events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    m = row._mapping
    return Alert(
        id=m["id"],
        key=m["key"],
        state=m["state"],
        level=m["level"],
        rule=m["rule"],
        watchlist=m["watchlist"],
        title=m["title"],
        figures=_loads(m["figures"]) or {},
        evidence=_loads(m["evidence"]) if with_evidence else None,
        opened_at=m["opened_at"],
        updated_at=m["updated_at"],
        deadline_at=m["deadline_at"],
        acknowledged_at=m["acknowledged_at"],
        acknowledged_by=m["acknowledged_by"],
        resolved_at=m["resolved_at"],
        published_at=m["published_at"],
        published_by=m["published_by"],
        statement_url=m["statement_url"],
        next_update_at=m["next_update_at"],
        press_conference_at=m["press_conference_at"],
        events=events,
    ).model_dump(mode="json")


def row_to_event(row: Any) -> dict[str, Any]:
    m = row._mapping
    return AlertEvent(
        id=m["id"], alert_id=m["alert_id"], kind=m["kind"], at=m["at"], actor=m["actor"], payload=_loads(m["payload"]) or {}
    ).model_dump(mode="json")


def event_payload(alert_row: Any, **extra: Any) -> dict[str, Any]:
    """What every event carries about its alert at that moment."""
    m = alert_row._mapping if hasattr(alert_row, "_mapping") else alert_row
    base = {k: m[k] for k in ("key", "level", "state", "title", "watchlist", "rule")}
    base.update(extra)
    return base


def insert_event(conn: Connection, alert_id: int, kind: str, at: datetime, actor: str | None, payload: dict[str, Any]) -> int:
    """Append one event; returns its id (the SSE event id)."""
    res = conn.execute(
        sa.insert(alert_events).values(alert_id=alert_id, kind=kind, at=at, actor=actor, payload=dumps(payload))
    )
    return int(res.inserted_primary_key[0])


def insert_audit(conn: Connection, at: datetime, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    conn.execute(sa.insert(audit_log).values(at=at, actor=actor, action=action, target=target, detail=dumps(detail)))


def _as_list(v: str | Sequence[str] | None) -> list[str] | None:
    if v is None:
        return None
    return [v] if isinstance(v, str) else list(v)


def _nonblank(name: str, v: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{name} must not be blank")
    return v.strip()


class AlertStore:
    """Alerts and their events in the state database (see the module docstring)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] = utcnow, config: AlertsConfig | None = None) -> None:
        self.engine = engine
        self.clock = clock
        # the alerts settings (statement_next_update, press_conference); defaults without one
        self.config = config if config is not None else AlertsConfig()

    # -- reads ----------------------------------------------------------------------------
    def list(
        self,
        state: str | Sequence[str] | None = None,
        level: str | Sequence[str] | None = None,
        watchlist: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        if since is not None and since.tzinfo is None:
            raise ValueError("since must carry a time zone")
        q = sa.select(alerts)
        if (states := _as_list(state)) is not None:
            q = q.where(alerts.c.state.in_(states))
        if (levels := _as_list(level)) is not None:
            q = q.where(alerts.c.level.in_(levels))
        if watchlist is not None:
            q = q.where(alerts.c.watchlist == watchlist)
        if since is not None:
            q = q.where(alerts.c.updated_at >= since)
        q = q.order_by(alerts.c.updated_at.desc(), alerts.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [row_to_alert(r, with_evidence=False) for r in conn.execute(q)]

    def verdicts(self, watchlist: str | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
        if since is not None and since.tzinfo is None:
            raise ValueError("since must carry a time zone")
        q = (
            sa.select(alert_events, alerts.c.key, alerts.c.watchlist, alerts.c.level, alerts.c.opened_at)
            .join(alerts, alerts.c.id == alert_events.c.alert_id)
            .where(alert_events.c.kind == "resolved", alert_events.c.actor != DETECTOR)
            .order_by(alert_events.c.at, alert_events.c.id)
        )
        if watchlist is not None:
            q = q.where(alerts.c.watchlist == watchlist)
        if since is not None:
            q = q.where(alert_events.c.at >= since)
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                payload = _loads(r.payload) or {}
                fp, snooze = bool(payload.get("false_positive")), payload.get("snooze_until")
                if not fp and not snooze:
                    continue
                out.append({
                    "alert_id": r.alert_id, "key": r.key, "watchlist": r.watchlist, "level": payload.get("level", r.level),
                    "opened_at": iso(r.opened_at), "at": iso(r.at), "actor": r.actor, "reason": payload.get("reason"),
                    "false_positive": fp, "snooze_until": snooze,
                })
        return out

    def verdict_counts(self, watchlist: str | None = None, since: datetime | None = None) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for v in self.verdicts(watchlist, since):
            c = counts.setdefault(v["watchlist"] or "", {"false_positives": 0, "snoozes": 0})
            c["false_positives"] += v["false_positive"]
            c["snoozes"] += v["snooze_until"] is not None
        return counts

    def get(self, alert_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).first()
            if row is None:
                return None
            evs = conn.execute(
                sa.select(alert_events).where(alert_events.c.alert_id == alert_id).order_by(alert_events.c.id)
            )
            return row_to_alert(row, with_evidence=True, events=[row_to_event(e) for e in evs])

    def events_since(self, last_event_id: int, limit: int = 100) -> list[dict[str, Any]]:
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be between 1 and 1000")
        q = (
            sa.select(alert_events)
            .where(alert_events.c.id > int(last_event_id))
            .order_by(alert_events.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [row_to_event(r) for r in conn.execute(q)]

    # -- writes ---------------------------------------------------------------------------
    def _get_existing(self, alert_id: int) -> dict[str, Any]:
        found = self.get(alert_id)
        if found is None:  # deleted between the write and the read: not something we do
            raise AlertNotFound(alert_id)
        return found

    def _locked(self, conn: Connection, alert_id: int) -> Any:
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id).with_for_update()).first()
        if row is None:
            raise AlertNotFound(alert_id)
        return row

    def acknowledge(self, alert_id: int, actor: str) -> dict[str, Any]:
        actor = _nonblank("actor", actor)
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._locked(conn, alert_id)
            if row.state == "resolved":
                raise InvalidTransition(f"alert {alert_id} is resolved; it cannot be acknowledged")
            if row.state == "open":
                res = conn.execute(
                    sa.update(alerts)
                    .where(alerts.c.id == alert_id, alerts.c.state == "open")
                    .values(state="acknowledged", acknowledged_at=now, acknowledged_by=actor, updated_at=now)
                )
                if res.rowcount != 1:  # changed under us (SQLite has no row locks)
                    raise InvalidTransition(f"alert {alert_id} changed concurrently; retry")
                new = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
                insert_event(conn, alert_id, "acknowledged", now, actor, event_payload(new))
                insert_audit(conn, now, actor, "alert.acknowledge", f"alert:{alert_id}", {"level": row.level})
        return self._get_existing(alert_id)

    def resolve(
        self,
        alert_id: int,
        actor: str,
        reason: str,
        *,
        false_positive: bool = False,
        snooze: timedelta | None = None,
    ) -> dict[str, Any]:
        actor = _nonblank("actor", actor)
        reason = _nonblank("reason", reason)
        if snooze is not None and not timedelta(0) < snooze <= MAX_SNOOZE:
            raise ValueError(f"snooze must be positive and at most {MAX_SNOOZE.days} days")
        now = self.clock()
        extra: dict[str, Any] = {"reason": reason, "auto": False, "false_positive": bool(false_positive)}
        if snooze is not None:
            extra["snooze_until"] = iso(now + snooze)
        with self.engine.begin() as conn:
            row = self._locked(conn, alert_id)
            if row.state != "resolved":
                res = conn.execute(
                    sa.update(alerts)
                    .where(alerts.c.id == alert_id, alerts.c.state == row.state)
                    .values(state="resolved", resolved_at=now, updated_at=now)
                )
                if res.rowcount != 1:
                    raise InvalidTransition(f"alert {alert_id} changed concurrently; retry")
                new = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
                insert_event(conn, alert_id, "resolved", now, actor, event_payload(new, **extra))
                insert_audit(conn, now, actor, "alert.resolve", f"alert:{alert_id}", {**extra, "level": row.level})
        return self._get_existing(alert_id)

    def mark_claim(self, alert_id: int, actor: str, post_id: str, verdict: str) -> dict[str, Any]:
        actor = _nonblank("actor", actor)
        if verdict not in ("false", "true", "unverified"):
            raise ValueError("verdict must be one of false, true, unverified")
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._locked(conn, alert_id)
            evidence = _loads(row.evidence) or {}
            known = {p.get("id") for p in (evidence.get("rumor_candidates") or []) + (evidence.get("posts") or [])}
            if post_id not in known:
                raise ValueError(f"post {post_id!r} is not in the evidence of alert {alert_id}")
            event_id = insert_event(conn, alert_id, "claim", now, actor, event_payload(row, post_id=post_id, verdict=verdict))
            insert_audit(conn, now, actor, "alert.claim", f"alert:{alert_id}", {"post_id": post_id, "verdict": verdict})
            ev = conn.execute(sa.select(alert_events).where(alert_events.c.id == event_id)).one()
            return row_to_event(ev)

    def mark_published(self, alert_id: int, actor: str, url: str | None, at: datetime | None = None) -> dict[str, Any]:
        """Record that a statement on this alert was published at `at` (default now; not in the
        future) at `url`. Starts, or with a later statement moves, the countdown to the next
        update (`at + statement_next_update`) and, where the alert's level requires one, sets
        the press conference due `press_conference[level]` after the alert opened. The first
        statement also meets the first-statement deadline, so `deadline_at` is cleared. Allowed
        while the alert is open or acknowledged, and after it resolved (a statement may follow
        the story). Returns the alert as `get` does."""
        actor = _nonblank("actor", actor)
        now = self.clock()
        at = now if at is None else at
        if at.tzinfo is None:
            raise ValueError("at must carry a time zone")
        if at > now + timedelta(minutes=1):
            raise ValueError("a statement cannot be published in the future")
        if url is not None and not (url.startswith("https://") or url.startswith("http://")):
            raise ValueError("url must be an http(s) URL")
        with self.engine.begin() as conn:
            row = self._locked(conn, alert_id)
            if at < row.opened_at - timedelta(days=1):
                raise ValueError("the statement predates the alert by more than a day; check the time")
            if row.published_at is not None and at < row.published_at:
                raise ValueError("a later statement is already recorded")
            next_update = at + self.config.statement_next_update
            conference = self.config.press_conference.get(row.level)  # type: ignore[call-overload]
            values: dict[str, Any] = {
                "published_at": at, "published_by": actor, "statement_url": url, "next_update_at": next_update,
                "deadline_at": None, "updated_at": now,
            }
            if conference is not None and row.press_conference_at is None:
                values["press_conference_at"] = row.opened_at + conference
            first = row.published_at is None
            conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))
            new = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
            detail = {"url": url, "at": iso(at), "first": first, "next_update_at": iso(next_update),
                      "press_conference_at": iso(new.press_conference_at) if new.press_conference_at else None}
            insert_event(conn, alert_id, "published", now, actor, event_payload(new, **detail))
            insert_audit(conn, now, actor, "alert.publish", f"alert:{alert_id}", detail)
        return self._get_existing(alert_id)

    def add_note(self, alert_id: int, actor: str, text: str) -> dict[str, Any]:
        actor = _nonblank("actor", actor)
        text = _nonblank("text", text)
        if len(text) > MAX_NOTE:
            raise ValueError(f"a note holds at most {MAX_NOTE} characters")
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._locked(conn, alert_id)
            event_id = insert_event(conn, alert_id, "note", now, actor, event_payload(row, text=text))
            insert_audit(conn, now, actor, "alert.note", f"alert:{alert_id}", {"text": text})
            ev = conn.execute(sa.select(alert_events).where(alert_events.c.id == event_id)).one()
            return row_to_event(ev)
