"""The notification outbox: which channels an alert event must reach, written in the same
transaction as the event.

Why an outbox: the detector commits an alert change and its `deliveries` rows together, so a
crash between detecting and sending loses nothing — the next drain (`Notifier.drain`) finds the
rows still `pending` and sends them, once each (`uq_deliveries_event_channel`).

Who receives an event:

- **broadcast channels** (`channel.broadcast`, the default): `opened`, `escalated`, `reopened`
  and `resolved` events of alerts whose level reaches the channel's `min_level`; `updated`
  feeds the console only and never pages;
- **on-call contacts** (`alerts.oncall`): the channels of the contacts the escalation ladder
  pages for this event (`extra_channels`), whatever their `min_level` — a page to a person is
  deliberate; and, on `resolved`, every contact paged for the alert, so whoever was woken
  hears that they may stand down.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alerts.detector import level_rank
from yuqing.config import Settings
from yuqing.state.schema import deliveries, oncall_pages

NOTIFY_KINDS = frozenset({"opened", "escalated", "reopened", "resolved"})


def broadcast_channels(settings: Settings, kind: str, level: str) -> list[str]:
    """Names of the broadcast channels an event of `kind` at `level` reaches."""
    if kind not in NOTIFY_KINDS:
        return []
    return [c.name for c in settings.channels if c.broadcast and level_rank(level) >= level_rank(c.min_level)]


def paged_channels(conn: Connection, settings: Settings, alert_id: int) -> list[str]:
    """Channels of every contact the ladder has paged for this alert (for the resolved notice)."""
    contacts = {r.contact for r in conn.execute(sa.select(oncall_pages.c.contact).where(oncall_pages.c.alert_id == alert_id))}
    out: list[str] = []
    for c in settings.alerts.oncall.contacts:
        if c.name in contacts:
            out.extend(ch for ch in c.channels if ch not in out)
    return out


def enqueue(
    conn: Connection,
    settings: Settings,
    *,
    alert_id: int,
    event_id: int,
    kind: str,
    level: str,
    now: datetime,
    extra_channels: Iterable[str] = (),
) -> list[str]:
    """Write one `pending` delivery per channel this event must reach (see the module
    docstring), inside the caller's transaction. Returns the channel names, in config order."""
    wanted = set(broadcast_channels(settings, kind, level)) | set(extra_channels)
    if kind == "resolved":
        wanted |= set(paged_channels(conn, settings, alert_id))
    names = [c.name for c in settings.channels if c.name in wanted]
    for name in names:
        conn.execute(
            sa.insert(deliveries).values(
                alert_event_id=event_id, channel=name, status="pending", attempts=0,
                created_at=now, updated_at=now, next_attempt_at=now,
            )
        )
    return names
