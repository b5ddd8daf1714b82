"""Alerts: list, one with its evidence, acknowledge / resolve / note, and the live event stream.

The stream is Server-Sent Events whose event ids are `alert_events.id`. A client that loses its
connection reconnects with `Last-Event-ID` and receives every event after it, in order, from
the table — nothing is held in this process, so any API replica can serve the reconnect.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Body, Header, HTTPException, Path, Request
from fastapi import Query as Q
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator
from sse_starlette import EventSourceResponse, ServerSentEvent

from alerts.links import InvalidLink, ack_key, verify_ack
from alerts.models import Alert
from alerts.statement import drafts_for
from alerts.store import MAX_SNOOZE, AlertNotFound, InvalidTransition
from api.deps import AlertsDep, EngineDep, PrincipalDep, SettingsDep
from api.errors import PROBLEM_RESPONSES, ApiError, param_problem, problems
from api.security import API, GuardedRoute
from yuqing.config import Settings, parse_duration
from yuqing.state.schema import alert_events, audit_log, statement_drafts

router = APIRouter(prefix=f"{API}/alerts", tags=["alerts"], route_class=GuardedRoute, responses=PROBLEM_RESPONSES)

State = Literal["open", "acknowledged", "resolved"]
Level = Literal["blue", "yellow", "orange", "red"]
Lang = Literal["zh", "en", "ar"]
ALERT_ID = Path(ge=1, le=2**62, description="alert id")
STREAM_BATCH = 100


class ResolveBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, examples=["first statement published; volume back to baseline"])
    false_positive: bool = Field(default=False, description="the alert should not have fired (counted by the backtest and reviews)")
    snooze: str | None = Field(
        default=None, max_length=20, pattern=r"^\s*\d+(\.\d+)?\s*(s|m|h|d|w)?\s*$",
        description="keep this known story from re-alerting at the same or a lower level for this long (at most 30 days)",
        examples=["6h", "2d"],
    )

    @field_validator("snooze")
    @classmethod
    def _snooze(cls, v: str | None) -> str | None:
        if v is None:
            return v
        td = parse_duration(v)
        if not timedelta(0) < td <= MAX_SNOOZE:
            raise ValueError(f"snooze must be positive and at most {MAX_SNOOZE.days} days")
        return v

    def snooze_delta(self) -> timedelta | None:
        return parse_duration(self.snooze) if self.snooze else None


class ClaimBody(BaseModel):
    post_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="a post of the alert's evidence")
    verdict: Literal["false", "true", "unverified"] = Field(
        description="the officer's verdict on the circulating claim; drafts call a claim false only on this"
    )


class PublishedBody(BaseModel):
    url: str = Field(max_length=2000, pattern=r"^https?://[^\s/]+\S*$", description="where the statement was published",
                     examples=["https://www.example.gov.cn/xwfb/2025/0310.html"])
    at: datetime | None = Field(default=None, description="when it was published (ISO 8601 with zone); default: now")

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("the time must carry a zone, e.g. 2025-03-10T14:00:00+08:00")
        if v is not None and v > datetime.now(timezone.utc) + timedelta(minutes=5):
            raise ValueError("a statement cannot have been published in the future")
        return v


class DraftBody(BaseModel):
    lang: Lang
    text: str = Field(min_length=1, max_length=20_000)
    base_id: int | None = Field(
        default=None, ge=1, le=2**62,
        description="id of the saved draft this edit started from (null: from the generated draft); "
        "409 when someone saved a newer one meanwhile",
    )


class SavedDraft(BaseModel):
    id: int
    alert_id: int
    lang: Lang
    text: str
    actor: str
    at: datetime


class DraftFact(BaseModel):
    key: str
    text: str
    source: str = Field(description="where the fact comes from: a path into the alert, config, a verdict event")


class LangDraft(BaseModel):
    lang: Lang
    direction: Literal["ltr", "rtl"]
    generated: str = Field(description="the draft built from the alert's evidence now")
    facts: list[DraftFact]
    placeholders: list[str] = Field(description="bracketed parts the officer must fill")
    saved: SavedDraft | None = Field(description="the newest draft an officer saved, if any")
    versions: int = Field(description="how many times this draft was saved")


class Drafts(BaseModel):
    alert_id: int
    drafts: list[LangDraft]


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

# -- signed one-click links ------------------------------------------------------------------
#
# Why GET shows a page and POST acknowledges: chat apps (Slack, WeCom, Feishu) and mail
# scanners fetch links to build previews. If GET acknowledged, a preview bot would silence a red
# alert and stop its escalation before any human saw it. GET verifies the link and shows the
# alert with one button; the button POSTs the same link. Still one tap on a phone, and only a
# person presses it.

def _link_key(request: Request, settings: Settings) -> bytes:
    cached = getattr(request.app.state, "ack_key", None)
    if cached is None or cached[0] != str(settings.data_path):
        cached = (str(settings.data_path), ack_key(settings))
        request.app.state.ack_key = cached
    return cached[1]  # type: ignore[no-any-return]


def _verified(request: Request, settings: Settings, token: str) -> tuple[int, str]:
    try:
        return verify_ack(_link_key(request, settings), token, datetime.now(timezone.utc))
    except InvalidLink as e:
        raise ApiError(403, f"this acknowledge link is not valid: {e}", type_="/problems/invalid-link") from None
    except (KeyError, ValueError, TypeError):  # a well-signed body of an unexpected shape
        raise ApiError(403, "this acknowledge link is not valid: malformed link", type_="/problems/invalid-link") from None


def _ack_page(request: Request, alert: dict[str, Any], token: str, *, done: bool, channel: str, settings: Settings) -> HTMLResponse:
    from api.routes.console import asset_version, templates

    return templates.TemplateResponse(
        request, "ack.html",
        {"alert": alert, "token": token, "done": done, "channel": channel, "agency": settings.agency,
         "v": asset_version, "action": f"{API}/alerts/ack"},
    )


ACK_TOKEN = Q(min_length=10, max_length=2000, description="the signed token from the notification")
HTML_PAGE = {200: {"content": {"text/html": {}}, "description": "an HTML page for the person who opened the link"}}


@router.get(
    "/ack",
    summary="Open a signed acknowledge link (shows the alert and a confirm button)",
    response_class=HTMLResponse,
    responses={**HTML_PAGE, **problems(403, 404, _403="forged, altered or expired link", _404="the alert is gone")},
)
async def ack_link_page(request: Request, alerts: AlertsDep, settings: SettingsDep,
                        token: Annotated[str, ACK_TOKEN]) -> HTMLResponse:
    alert_id, channel = _verified(request, settings, token)
    alert = await anyio.to_thread.run_sync(alerts.get, alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert with id {alert_id}")
    return _ack_page(request, alert, token, done=False, channel=channel, settings=settings)


@router.post(
    "/ack",
    summary="Acknowledge through a signed link (recorded as `link:<channel>`)",
    response_class=HTMLResponse,
    responses={**HTML_PAGE, **problems(403, 404, 409, _403="forged, altered or expired link",
                                       _404="the alert is gone", _409="the alert is resolved")},
)
async def ack_link(request: Request, alerts: AlertsDep, settings: SettingsDep,
                   token: Annotated[str, ACK_TOKEN]) -> HTMLResponse:
    alert_id, channel = _verified(request, settings, token)
    actor = f"link:{channel}"[:200]
    alert = await anyio.to_thread.run_sync(lambda: _change(alerts, alert_id, lambda: alerts.acknowledge(alert_id, actor)))
    return _ack_page(request, alert, token, done=True, channel=channel, settings=settings)


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
    summary="Resolve with a reason; optionally mark it a false positive or snooze the story",
    responses=problems(404, _404="no such alert"),
)
async def resolve(
    alert_id: Annotated[int, ALERT_ID], body: Annotated[ResolveBody, Body()], alerts: AlertsDep, principal: PrincipalDep
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        lambda: _change(alerts, alert_id, lambda: alerts.resolve(
            alert_id, principal.name, body.reason, false_positive=body.false_positive, snooze=body.snooze_delta()))
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


@router.post(
    "/{alert_id}/claims",
    response_model=Alert,
    summary="Give a verdict on a circulating claim (a post of the alert's evidence)",
    description="Draft statements call a claim false or true only on such a verdict, never on the "
    "classifier's rumour score. 422 when the post is not in the alert's evidence.",
    responses=problems(404, _404="no such alert"),
)
async def mark_claim(
    alert_id: Annotated[int, ALERT_ID], body: Annotated[ClaimBody, Body()], alerts: AlertsDep, principal: PrincipalDep
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        lambda: _change(alerts, alert_id, lambda: alerts.mark_claim(alert_id, principal.name, body.post_id, body.verdict))
    )


@router.post(
    "/{alert_id}/published",
    response_model=Alert,
    summary="Mark the statement published, with its link",
    description="Starts the after-statement countdowns (next update, press conference) and the "
    "before/after comparison.",
    responses=problems(404, _404="no such alert"),
)
async def mark_published(
    alert_id: Annotated[int, ALERT_ID], body: Annotated[PublishedBody, Body()], alerts: AlertsDep, principal: PrincipalDep,
) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(
        lambda: _change(alerts, alert_id, lambda: alerts.mark_published(alert_id, principal.name, body.url, body.at))
    )


def _saved(row: Any) -> SavedDraft:
    return SavedDraft(id=row.id, alert_id=row.alert_id, lang=row.lang, text=row.text, actor=row.actor, at=row.at)


def _drafts(alerts: Any, engine: sa.Engine, settings: Settings, alert_id: int) -> Drafts:
    alert = alerts.get(alert_id)
    if alert is None:
        raise HTTPException(404, f"no alert with id {alert_id}")
    generated = drafts_for(alert, settings, datetime.now(timezone.utc))
    with engine.connect() as c:
        rows = c.execute(sa.select(statement_drafts).where(statement_drafts.c.alert_id == alert_id)
                         .order_by(statement_drafts.c.id)).all()
    newest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for r in rows:
        newest[r.lang] = r
        counts[r.lang] = counts.get(r.lang, 0) + 1
    out = []
    for lang in list(generated) + [lg for lg in newest if lg not in generated]:
        d = generated.get(lang)
        if d is None:  # a language an officer added: generate it too, for reference
            from alerts.statement import draft_statement

            d = draft_statement(alert, agency=settings.agency, lang=lang, tz=settings.timezone,
                                now=datetime.now(timezone.utc), next_update=settings.alerts.statement_next_update)
        out.append(LangDraft(
            lang=lang, direction=d.direction, generated=d.text,
            facts=[DraftFact(key=f.key, text=f.text, source=f.source) for f in d.facts],
            placeholders=d.placeholders, saved=_saved(newest[lang]) if lang in newest else None,
            versions=counts.get(lang, 0),
        ))
    return Drafts(alert_id=alert_id, drafts=out)


@router.get(
    "/{alert_id}/drafts",
    response_model=Drafts,
    summary="Draft holding statements: generated from the evidence, and as officers saved them",
    responses=problems(404, _404="no such alert"),
)
async def get_drafts(alert_id: Annotated[int, ALERT_ID], alerts: AlertsDep, engine: EngineDep,
                     settings: SettingsDep) -> Drafts:
    return await anyio.to_thread.run_sync(_drafts, alerts, engine, settings, alert_id)


def _save_draft(engine: sa.Engine, alert_id: int, body: DraftBody, actor: str) -> SavedDraft:
    now = datetime.now(timezone.utc)
    with engine.begin() as c:
        from yuqing.state.schema import alerts as alerts_table

        # lock the alert row (PostgreSQL) so two saves of one draft are serialised
        if c.execute(sa.select(alerts_table.c.id).where(alerts_table.c.id == alert_id).with_for_update()).first() is None:
            raise HTTPException(404, f"no alert with id {alert_id}")
        latest = c.execute(
            sa.select(statement_drafts).where(statement_drafts.c.alert_id == alert_id, statement_drafts.c.lang == body.lang)
            .order_by(statement_drafts.c.id.desc()).limit(1)
        ).first()
        if (latest.id if latest else None) != body.base_id:
            who = f"{latest.actor} saved version {latest.id} at {latest.at.isoformat()}" if latest else "there is no saved draft"
            raise HTTPException(409, f"the {body.lang} draft changed since you opened it ({who}); reload it and redo your edit")
        res = c.execute(statement_drafts.insert().values(alert_id=alert_id, lang=body.lang, text=body.text,
                                                         actor=actor, at=now))
        draft_id = int(res.inserted_primary_key[0])
        c.execute(audit_log.insert().values(
            at=now, actor=actor, action="alert.draft", target=f"alert:{alert_id}",
            detail=json.dumps({"lang": body.lang, "draft_id": draft_id, "base_id": body.base_id, "chars": len(body.text)}),
        ))
        row = c.execute(sa.select(statement_drafts).where(statement_drafts.c.id == draft_id)).one()
    return _saved(row)


@router.put(
    "/{alert_id}/draft",
    response_model=SavedDraft,
    summary="Save the officer's edit of one language's draft statement",
    description="Every save is kept (who, when, text); the newest is the draft in force. Send `base_id`, the "
    "id of the saved draft you edited (null when you started from the generated one): if someone saved "
    "a newer version meanwhile the answer is 409 and nothing is overwritten.",
    responses=problems(404, 409, _404="no such alert", _409="someone saved a newer version"),
)
async def save_draft(alert_id: Annotated[int, ALERT_ID], body: Annotated[DraftBody, Body()], engine: EngineDep,
                     principal: PrincipalDep) -> SavedDraft:
    if not body.text.strip():
        raise param_problem("text", "body", "the draft must not be blank")
    return await anyio.to_thread.run_sync(_save_draft, engine, alert_id, body, principal.name)
