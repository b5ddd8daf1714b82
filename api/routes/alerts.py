"""Alerts: list, one with its evidence, acknowledge / resolve / note, and the live event stream.

The stream is Server-Sent Events whose event ids are `alert_events.id`. A client that loses its
connection reconnects with `Last-Event-ID` and receives every event after it, in order, from
the table — nothing is held in this process, so any API replica can serve the reconnect.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Body, Header, HTTPException, Path, Request
from fastapi import Query as Q
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from alerts.models import Alert
from alerts.store import AlertNotFound, InvalidTransition
from api.deps import AlertsDep, EngineDep, PrincipalDep
from api.errors import PROBLEM_RESPONSES, param_problem, problems
from api.security import API, GuardedRoute
from yuqing.state.schema import alert_events

router = APIRouter(prefix=f"{API}/alerts", tags=["alerts"], route_class=GuardedRoute, responses=PROBLEM_RESPONSES)

State = Literal["open", "acknowledged", "resolved"]
Level = Literal["blue", "yellow", "orange", "red"]
ALERT_ID = Path(ge=1, le=2**62, description="alert id")
STREAM_BATCH = 100


class ResolveBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, examples=["first statement published; volume back to baseline"])


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=5000, examples=["called the press office; statement in 30 min"])


def _summary(alert: dict[str, Any] | None) -> dict[str, Any] | None:
    """The alert without its (large) evidence and event thread: what a feed needs."""
    if alert is None:
        return None
    return {k: v for k, v in alert.items() if k not in ("evidence", "events")}


@router.get(
    "",
    response_model=list[Alert],
    summary="List alerts, most recently changed first",
    description="`evidence` and `events` are null here; fetch one alert for them.",
)
async def list_alerts(
    alerts: AlertsDep,
    state: Annotated[list[State] | None, Q(description="repeat for several")] = None,
    level: Annotated[list[Level] | None, Q(description="repeat for several")] = None,
    watchlist: Annotated[str | None, Q(max_length=200)] = None,
    since: Annotated[datetime | None, Q(description="changed at or after (ISO 8601 with zone)")] = None,
    limit: Annotated[int, Q(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    if since is not None and since.tzinfo is None:
        raise param_problem("since", "query", "the time must carry a zone, e.g. 2024-05-01T08:00:00Z", str(since))
    rows = await anyio.to_thread.run_sync(
        lambda: alerts.list(state=state, level=level, watchlist=watchlist, since=since, limit=limit)
    )
    return rows  # type: ignore[no-any-return]


def _max_event_id(engine: sa.Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.select(sa.func.coalesce(sa.func.max(alert_events.c.id), 0))).scalar_one())


def _events_with_alerts(alerts: Any, last: int) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    events = alerts.events_since(last, limit=STREAM_BATCH)
    cache: dict[int, dict[str, Any] | None] = {}
    out = []
    for ev in events:
        aid = int(ev["alert_id"])
        if aid not in cache:
            cache[aid] = _summary(alerts.get(aid))
        out.append((ev, cache[aid]))
    return out


@router.get(
    "/stream",
    summary="Live alert events (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}},
    description=(
        "Each event's `id` is the alert event id, `event` its kind (opened, escalated, updated, acknowledged, "
        "resolved, note, ...) and `data` a JSON object `{event, alert}` with the alert's current state. The first "
        "event, `hello`, carries the position the stream starts from. Reconnect with `Last-Event-ID` (browsers do "
        "it by themselves) to receive every event after that id; without it the stream starts after the newest "
        "event. `after` does the same as a query parameter for clients that cannot set headers."
    ),
)
async def stream(
    request: Request,
    alerts: AlertsDep,
    engine: EngineDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
    after: Annotated[int | None, Q(ge=0, description="resume after this event id")] = None,
) -> EventSourceResponse:
    start: int | None = after
    if last_event_id is not None and last_event_id.strip():
        try:
            start = int(last_event_id.strip())
        except ValueError:
            raise param_problem("Last-Event-ID", "header", "expected an event id (an integer)", last_event_id) from None
        if start < 0:
            raise param_problem("Last-Event-ID", "header", "expected a non-negative event id", last_event_id)
    if start is None:
        start = await anyio.to_thread.run_sync(_max_event_id, engine)
    poll: float = request.app.state.sse_poll_seconds

    async def events() -> AsyncIterator[ServerSentEvent]:
        last = int(start)
        yield ServerSentEvent(event="hello", id=str(last), data=json.dumps({"last_event_id": last}), retry=3000)
        while True:
            batch = await anyio.to_thread.run_sync(_events_with_alerts, alerts, last)
            for ev, alert in batch:
                last = int(ev["id"])
                yield ServerSentEvent(
                    id=str(last),
                    event=str(ev.get("kind", "updated")),
                    data=json.dumps({"event": ev, "alert": alert}, ensure_ascii=False, default=str),
                )
            if len(batch) < STREAM_BATCH:
                if await request.is_disconnected():
                    return
                await anyio.sleep(poll)

    return EventSourceResponse(
        events(),
        ping=request.app.state.sse_ping_seconds,
        headers={"X-Accel-Buffering": "no"},  # nginx: pass events through at once
    )


@router.get("/{alert_id}", response_model=Alert, summary="One alert with its evidence and its event thread",
            responses=problems(404, _404="no such alert"))
async def get_alert(alert_id: Annotated[int, ALERT_ID], alerts: AlertsDep) -> dict[str, Any]:
    alert = await anyio.to_thread.run_sync(alerts.get, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert with id {alert_id}")
    return alert  # type: ignore[no-any-return]


def _change(alerts: Any, alert_id: int, call: Callable[[], Any]) -> dict[str, Any]:
    """Apply one change (the alert store writes its event and audit row in the same
    transaction) and return the alert as it now is. 404: no such alert; 409: the state does
    not allow it (acknowledging a resolved alert); 422: blank text."""
    try:
        call()
    except AlertNotFound:
        raise HTTPException(404, f"no alert with id {alert_id}") from None
    except InvalidTransition as e:
        raise HTTPException(409, str(e)) from None
    except ValueError as e:
        raise param_problem("body", "body", str(e)) from None
    alert = alerts.get(alert_id)
    if alert is None:  # deleted in between: report it as gone
        raise HTTPException(404, f"no alert with id {alert_id}")
    return alert  # type: ignore[no-any-return]


@router.post(
    "/{alert_id}/acknowledge",
    response_model=Alert,
    summary="Acknowledge: someone is on it",
    description="Idempotent: acknowledging an acknowledged alert changes nothing. 409 for a resolved alert.",
    responses=problems(404, 409, _404="no such alert", _409="the alert is resolved"),
)
async def acknowledge(alert_id: Annotated[int, ALERT_ID], alerts: AlertsDep, principal: PrincipalDep) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        lambda: _change(alerts, alert_id, lambda: alerts.acknowledge(alert_id, principal.name))
    )


@router.post(
    "/{alert_id}/resolve",
    response_model=Alert,
    summary="Resolve with a reason",
    responses=problems(404, _404="no such alert"),
)
async def resolve(
    alert_id: Annotated[int, ALERT_ID], body: Annotated[ResolveBody, Body()], alerts: AlertsDep, principal: PrincipalDep
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        lambda: _change(alerts, alert_id, lambda: alerts.resolve(alert_id, principal.name, body.reason))
    )


@router.post(
    "/{alert_id}/notes",
    response_model=Alert,
    summary="Add a note to the alert's thread",
    responses=problems(404, _404="no such alert"),
)
async def add_note(
    alert_id: Annotated[int, ALERT_ID], body: Annotated[NoteBody, Body()], alerts: AlertsDep, principal: PrincipalDep
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        lambda: _change(alerts, alert_id, lambda: alerts.add_note(alert_id, principal.name, body.text))
    )
