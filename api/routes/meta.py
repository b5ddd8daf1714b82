"""Who am I, source health, the audit trail and Prometheus metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi import Query as Q
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from api.deps import EngineDep, PrincipalDep, SettingsDep
from api.errors import PROBLEM_RESPONSES
from api.security import ACCESS, API, PUBLIC, GuardedRoute, Role
from yuqing.state.schema import audit_log, sources

router = APIRouter(prefix=API, tags=["meta"], route_class=GuardedRoute, responses=PROBLEM_RESPONSES)


class Me(BaseModel):
    name: str
    role: str
    # what this role may call: the console hides the buttons it may not use
    allowed: list[str]
    timezone: str
    agency: str


@router.get("/me", response_model=Me, summary="The caller's token name, role and permissions")
async def me(principal: PrincipalDep, settings: SettingsDep) -> Me:
    allowed = sorted(
        f"{m} {p}" for (m, p), rule in ACCESS.items() if rule is PUBLIC or (isinstance(rule, Role) and principal.may(rule))
    )
    return Me(name=principal.name, role=principal.role.name, allowed=allowed, timezone=settings.timezone,
              agency=settings.agency)


class SourceHealth(BaseModel):
    name: str
    configured: bool
    enabled: bool | None
    interval_seconds: float | None
    last_run: datetime | None
    last_success: datetime | None
    last_error: str | None
    runs: int
    errors: int
    items_last_run: int
    items_total: int
    status: str  # ok | failing | stale | never_run


@router.get("/sources/health", response_model=list[SourceHealth], summary="Per-source crawl health")
async def sources_health(engine: EngineDep, settings: SettingsDep) -> list[SourceHealth]:
    """A source that goes silent is itself a signal: `stale` when it has not succeeded for three
    of its intervals, `failing` when its last run failed."""

    def load() -> list[SourceHealth]:
        with engine.connect() as c:
            rows = {r.name: r for r in c.execute(sa.select(sources)).all()}
        cfg = {s.name: s for s in settings.sources}
        now = datetime.now().astimezone()
        out = []
        for name in sorted(set(rows) | set(cfg)):
            r, s = rows.get(name), cfg.get(name)
            interval = s.interval.total_seconds() if s else None
            if r is None or r.last_run is None:
                status = "never_run"
            elif r.last_error and (r.last_success is None or r.last_success < r.last_run):
                status = "failing"
            elif interval and (r.last_success is None or (now - r.last_success).total_seconds() > 3 * interval):
                status = "stale"
            else:
                status = "ok"
            out.append(SourceHealth(
                name=name, configured=s is not None, enabled=s.enabled if s else None, interval_seconds=interval,
                last_run=r.last_run if r else None, last_success=r.last_success if r else None,
                last_error=r.last_error if r else None, runs=r.runs if r else 0, errors=r.errors if r else 0,
                items_last_run=r.items_last_run if r else 0, items_total=r.items_total if r else 0, status=status,
            ))
        return out

    return await anyio.to_thread.run_sync(load)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: str | None


@router.get("/audit", response_model=list[AuditEntry], summary="The audit log, newest first")
async def audit_entries(
    engine: EngineDep,
    actor: Annotated[str | None, Q(max_length=200)] = None,
    action: Annotated[str | None, Q(max_length=100)] = None,
    before_id: Annotated[int | None, Q(ge=1, description="page: entries older than this id")] = None,
    limit: Annotated[int, Q(ge=1, le=500)] = 100,
) -> list[AuditEntry]:
    def load() -> list[AuditEntry]:
        q = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if actor:
            q = q.where(audit_log.c.actor == actor)
        if action:
            q = q.where(audit_log.c.action == action)
        if before_id:
            q = q.where(audit_log.c.id < before_id)
        with engine.connect() as c:
            return [AuditEntry(**r._mapping) for r in c.execute(q).all()]

    return await anyio.to_thread.run_sync(load)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    body = await anyio.to_thread.run_sync(generate_latest, request.app.state.metrics_registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
