"""The on-call rota and the escalation ladder (`alerts.oncall` in the configuration).

    on_duty(oncall, at, tz) -> list[str]                     # contacts on shift at `at`
    start_ladder(conn, settings, alert_id, trigger_event_id, level, now) -> list[str]
    run_escalations(settings, engine, now) -> list[AlertChange]

A ladder *run* starts with each `opened`, `escalated` or `reopened` event (the detector calls
`start_ladder` in the same transaction): rung 0 of the level's ladder is paged with that event
itself, through the contacts' channels. `run_escalations` (every tick, with the tick's clock)
then pages rung k+1 once rung k has gone unacknowledged for rung k+1's `after`, as a `paged`
event with its own deliveries. Acknowledging (state `acknowledged`) or resolving stops the run;
an escalation to a higher level starts a new run at rung 0 of that level's ladder (the alert is
`open` again: a red incident must be acknowledged as red). Every page is a row in
`oncall_pages`, unique per (run, rung, contact), so two schedulers racing page a rung once.

`duty` in a rung means whoever the rota has on shift at that moment (shifts in the agency's
time zone; a shift past midnight belongs to the weekday it starts on). Nobody on shift: the
rung pages nobody and says so in the event, and the ladder goes on to the next rung.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from alerts.changes import AlertChange
from alerts.outbox import enqueue
from alerts.store import event_payload, insert_audit, insert_event, row_to_alert
from yuqing.config import DUTY, OnCallConfig, RotaShift, Settings
from yuqing.state.schema import alert_events, alerts, oncall_pages

log = logging.getLogger(__name__)

ESCALATION = "escalation"  # the actor of `paged` events
TRIGGER_KINDS = ("opened", "escalated", "reopened")


def _hm(s: str) -> time:
    h, m = s.split(":")
    return time(int(h), int(m))


def _on_shift(shift: RotaShift, local: datetime) -> bool:
    start, end = _hm(shift.start), _hm(shift.end)
    t = local.time()
    wd = local.isoweekday()
    if start < end:  # within one day
        return wd in shift.weekdays and start <= t < end
    # past midnight (or a whole day when start == end): today's part or yesterday's tail
    if wd in shift.weekdays and t >= start:
        return True
    yesterday = 7 if wd == 1 else wd - 1
    return yesterday in shift.weekdays and t < end


def on_duty(oncall: OnCallConfig, at: datetime, tz: str) -> list[str]:
    """Contacts whose shift covers `at`, in rota order, each once."""
    local = at.astimezone(ZoneInfo(tz))
    out: list[str] = []
    for shift in oncall.rota:
        if _on_shift(shift, local) and shift.contact not in out:
            out.append(shift.contact)
    return out


def contacts_for(oncall: OnCallConfig, names: list[str], at: datetime, tz: str) -> list[str]:
    """A rung's contacts with `duty` replaced by whoever is on shift."""
    out: list[str] = []
    for n in names:
        for c in on_duty(oncall, at, tz) if n == DUTY else [n]:
            if c not in out:
                out.append(c)
    return out


def channels_of(settings: Settings, contacts: list[str]) -> list[str]:
    by_name = {c.name: c for c in settings.alerts.oncall.contacts}
    out: list[str] = []
    for c in contacts:
        for ch in by_name[c].channels:
            if ch not in out:
                out.append(ch)
    return out


def _record(conn: Connection, alert_id: int, trigger: int, event_id: int, level: str, step: int, contacts: list[str], now: datetime) -> None:
    for c in contacts:
        conn.execute(
            sa.insert(oncall_pages).values(
                alert_id=alert_id, trigger_event_id=trigger, event_id=event_id, level=level, step=step, contact=c, paged_at=now
            )
        )


def start_ladder(conn: Connection, settings: Settings, alert_id: int, trigger_event_id: int, level: str, now: datetime) -> list[str]:
    """Page rung 0 of `level`'s ladder with the trigger event; returns the channels to add to
    that event's deliveries ([] when the level has no ladder). A rung with nobody on shift is
    recorded as a page of no one (contact "-"), so the ladder still moves on in time."""
    ladder = settings.alerts.oncall.ladders.get(level)  # type: ignore[call-overload]
    if not ladder:
        return []
    contacts = contacts_for(settings.alerts.oncall, ladder[0].contacts, now, settings.timezone)
    _record(conn, alert_id, trigger_event_id, trigger_event_id, level, 0, contacts or ["-"], now)
    return channels_of(settings, contacts)


def _current_run(conn: Connection, alert_id: int) -> Any:
    return conn.execute(
        sa.select(alert_events.c.id, alert_events.c.kind)
        .where(alert_events.c.alert_id == alert_id, alert_events.c.kind.in_(TRIGGER_KINDS))
        .order_by(alert_events.c.id.desc())
        .limit(1)
    ).first()


def run_escalations(settings: Settings, engine: Engine, now: datetime) -> list[AlertChange]:
    """Page the next rung for every open (unacknowledged) alert whose current rung has waited
    long enough; see the module docstring. One alert's failure is logged, the others go on."""
    oncall = settings.alerts.oncall
    if not oncall.ladders:
        return []
    out: list[AlertChange] = []
    with engine.connect() as conn:
        candidates = conn.execute(
            sa.select(alerts.c.id, alerts.c.level).where(alerts.c.state == "open", alerts.c.level.in_(list(oncall.ladders)))
        ).all()
    for a in candidates:
        try:
            change = _escalate_one(settings, engine, a.id, now)
        except IntegrityError:
            log.info("alert %s: rung already paged by another scheduler", a.id)
            continue
        except Exception:  # noqa: BLE001 - logged; the next alert's ladder still runs
            log.exception("escalation failed for alert %s", a.id)
            continue
        if change is not None:
            out.append(change)
    return out


def _escalate_one(settings: Settings, engine: Engine, alert_id: int, now: datetime) -> AlertChange | None:
    oncall = settings.alerts.oncall
    with engine.begin() as conn:
        row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id).with_for_update()).first()
        if row is None or row.state != "open":
            return None
        ladder = oncall.ladders.get(row.level)
        run = _current_run(conn, alert_id)
        if not ladder or run is None:
            return None
        pages = conn.execute(
            sa.select(oncall_pages.c.step, oncall_pages.c.paged_at).where(oncall_pages.c.trigger_event_id == run.id)
        ).all()
        if pages:
            step = max(p.step for p in pages)
            if step + 1 >= len(ladder):
                return None  # the top of the ladder has been paged
            last = max(p.paged_at for p in pages if p.step == step)
            nxt = ladder[step + 1]
            if now - last < nxt.after:
                return None
            step, waited = step + 1, now - last
        else:  # the ladder was configured after this run started: begin it now
            step, waited, nxt = 0, timedelta(0), ladder[0]
        contacts = contacts_for(oncall, nxt.contacts, now, settings.timezone)
        payload = event_payload(
            row, step=step, rungs=len(ladder), contacts=contacts, waited_s=waited.total_seconds(),
            trigger_event_id=run.id, nobody_on_shift=not contacts,
        )
        event_id = insert_event(conn, alert_id, "paged", now, ESCALATION, payload)
        _record(conn, alert_id, run.id, event_id, row.level, step, contacts or ["-"], now)
        insert_audit(conn, now, ESCALATION, "alert.paged", f"alert:{alert_id}", {"step": step, "contacts": contacts, "level": row.level})
        enqueue(conn, settings, alert_id=alert_id, event_id=event_id, kind="paged", level=row.level, now=now, extra_channels=channels_of(settings, contacts))
        return AlertChange(
            kind="paged", alert_id=alert_id, event_id=event_id, key=row.key, rule=row.rule, watchlist=row.watchlist,
            level=row.level, previous_level=row.level, at=now, title=row.title, alert=row_to_alert(row, with_evidence=True),
        )

