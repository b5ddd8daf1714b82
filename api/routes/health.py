"""Liveness and readiness. Public: orchestrators and load balancers probe without a token."""

from __future__ import annotations

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import EngineDep, StoreDep
from api.security import API, GuardedRoute
from index.base import Store

router = APIRouter(prefix=f"{API}/health", tags=["health"], route_class=GuardedRoute)


class Live(BaseModel):
    status: str = "ok"


class Ready(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/live", response_model=Live, summary="The process answers")
async def live() -> Live:
    return Live()


def _check_state(engine: sa.Engine) -> str:
    try:
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
        return "ok"
    except Exception as e:  # noqa: BLE001 - readiness reports, never raises
        return f"error: {type(e).__name__}"


def _check_index(store: Store) -> str:
    try:
        return "ok" if store.ping() else "error: no answer"
    except Exception as e:  # noqa: BLE001
        return f"error: {type(e).__name__}"


@router.get(
    "/ready",
    response_model=Ready,
    summary="The index and the state database answer",
    responses={503: {"model": Ready, "description": "a dependency is down"}},
)
async def ready(store: StoreDep, engine: EngineDep) -> JSONResponse:
    """503 while either dependency is down, so a load balancer stops sending traffic here.
    The body names which one, but not the error text (it may hold hosts or credentials)."""
    checks = {
        "state": await anyio.to_thread.run_sync(_check_state, engine),
        "index": await anyio.to_thread.run_sync(_check_index, store),
    }
    ok = all(v == "ok" for v in checks.values())
    body = Ready(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
