"""`AlertChange`: one change the detector (or the escalation ladder) wrote, handed to delivery.

Kept in its own module so the detector (`alerts.service`), the ladder (`alerts.oncall`) and
delivery (`alerts.delivery`) can all name it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

ChangeKind = Literal["opened", "escalated", "updated", "reopened", "resolved", "paged"]


@dataclass(frozen=True)
class AlertChange:
    """One change written to the state database (its `alert_events` row is `event_id`)."""

    kind: ChangeKind
    alert_id: int
    event_id: int
    key: str
    rule: str
    watchlist: str | None
    level: str
    previous_level: str | None
    at: datetime
    title: str
    alert: dict[str, Any] = field(repr=False)  # Alert JSON (with evidence, without events)
