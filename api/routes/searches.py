"""Saved searches (analysts) and token management (admins)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Body, HTTPException, Path, Response
from fastapi import Query as Q
from pydantic import BaseModel, Field

from api.deps import MAX_QUERY_LENGTH, EngineDep, PrincipalDep, StoreDep, filter_params
from api.errors import PROBLEM_RESPONSES, param_problem, problems
from api.security import (
    API,
    GuardedRoute,
    Principal,
    Role,
    issue_token,
    revoke_token_id,
)
from index.analysis import QuerySyntaxError
from index.base import Store
from yuqing.state.schema import audit_log, saved_searches, tokens

router = APIRouter(prefix=API, route_class=GuardedRoute, responses=PROBLEM_RESPONSES)

SEARCH_ID = Path(ge=1, le=2**62, description="saved search id")
TOKEN_ID = Path(ge=1, le=2**62, description="token id")
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Values = list[Annotated[str, Field(min_length=1, max_length=200)]] | None


class SearchParams(BaseModel):
    """The parameters of GET /posts (and /stats), as the console sends them."""

    model_config = {"extra": "forbid"}

    q: str | None = Field(default=None, max_length=MAX_QUERY_LENGTH)
    start: datetime | None = None
    end: datetime | None = None
    source: Values = None
    platform: Values = None
    lang: Values = None
    sentiment: Values = None
    topic: Values = None
    watchlist: Values = None
    author: Values = None
    rumor_min: float | None = Field(default=None, ge=0.0, le=1.0)
    rumor_max: float | None = Field(default=None, ge=0.0, le=1.0)
    sort: Literal["time", "relevance", "engagement", "rumor"] = "time"


class SearchBody(BaseModel):
    name: Name = Field(examples=["化工厂泄漏 · negative"])
    params: SearchParams
    shared: bool = Field(default=False, description="visible to every analyst (only the owner or an admin may change it)")


class SavedSearch(BaseModel):
    id: int
    owner: str
    name: str
    params: dict[str, Any]
    shared: bool
    created_at: datetime
    updated_at: datetime


def _validate(store: Store, params: SearchParams) -> dict[str, Any]:
    """The same checks GET /posts makes, then the query text parsed by the index (count 0)."""
    from fastapi.exceptions import RequestValidationError

    from api.deps import build_query

    raw = params.model_dump(exclude_none=True, exclude={"sort"})
    try:
        filters = filter_params(**raw)
        query = build_query(**filters, size=0)
        if query.text:
            store.count(query)
    except RequestValidationError as e:
        err = e.errors()[0]
        raise param_problem(f"params.{err['loc'][-1]}", "body", str(err.get("msg"))) from None
    except QuerySyntaxError as e:
        raise param_problem("params.q", "body", f"cannot parse the search: {e}") from None
    return params.model_dump(mode="json", exclude_none=True)


def _saved(row: Any) -> SavedSearch:
    return SavedSearch(id=row.id, owner=row.owner, name=row.name, params=json.loads(row.params), shared=bool(row.shared),
                       created_at=row.created_at, updated_at=row.updated_at)


def _audit(c: sa.Connection, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    c.execute(audit_log.insert().values(at=datetime.now(timezone.utc), actor=actor, action=action, target=target,
                                        detail=json.dumps(detail, ensure_ascii=False)))


@router.get("/searches", response_model=list[SavedSearch], tags=["searches"],
            summary="The caller's saved searches and those others shared")
async def list_searches(engine: EngineDep, principal: PrincipalDep) -> list[SavedSearch]:
    def load() -> list[SavedSearch]:
        q = (sa.select(saved_searches)
             .where(sa.or_(saved_searches.c.owner == principal.name, saved_searches.c.shared.is_(True)))
             .order_by(saved_searches.c.name, saved_searches.c.id))
        with engine.connect() as c:
            return [_saved(r) for r in c.execute(q).all()]

    return await anyio.to_thread.run_sync(load)


@router.post("/searches", response_model=SavedSearch, status_code=201, tags=["searches"], summary="Save a search",
             responses=problems(409, _409="the caller already has a search of that name"))
async def create_search(body: Annotated[SearchBody, Body()], engine: EngineDep, store: StoreDep,
                        principal: PrincipalDep) -> SavedSearch:
    def save() -> SavedSearch:
        params = _validate(store, body.params)
        now = datetime.now(timezone.utc)
        name = body.name.strip()
        with engine.begin() as c:
            if c.execute(sa.select(saved_searches.c.id).where(saved_searches.c.owner == principal.name,
                                                               saved_searches.c.name == name)).first():
                raise HTTPException(409, f"you already have a saved search called {name!r}")
            res = c.execute(saved_searches.insert().values(owner=principal.name, name=name, shared=body.shared,
                                                           params=json.dumps(params, ensure_ascii=False),
                                                           created_at=now, updated_at=now))
            sid = int(res.inserted_primary_key[0])
            _audit(c, principal.name, "search.create", f"search:{sid}", {"name": name, "params": params})
            return _saved(c.execute(sa.select(saved_searches).where(saved_searches.c.id == sid)).one())

    return await anyio.to_thread.run_sync(save)


def _owned(c: sa.Connection, search_id: int, principal: Principal) -> Any:
    row = c.execute(sa.select(saved_searches).where(saved_searches.c.id == search_id)).first()
    if row is None or (row.owner != principal.name and not row.shared and principal.role < Role.admin):
        raise HTTPException(404, f"no saved search with id {search_id}")  # others' private searches do not exist
    if row.owner != principal.name and principal.role < Role.admin:
        raise HTTPException(403, "only its owner or an admin may change a saved search")
    return row


@router.put("/searches/{search_id}", response_model=SavedSearch, tags=["searches"], summary="Replace a saved search",
            responses=problems(404, 409, _404="no such search (or not yours)", _409="name already used"))
async def update_search(search_id: Annotated[int, SEARCH_ID], body: Annotated[SearchBody, Body()], engine: EngineDep,
                        store: StoreDep, principal: PrincipalDep) -> SavedSearch:
    def save() -> SavedSearch:
        params = _validate(store, body.params)
        name = body.name.strip()
        with engine.begin() as c:
            row = _owned(c, search_id, principal)
            clash = c.execute(sa.select(saved_searches.c.id).where(
                saved_searches.c.owner == row.owner, saved_searches.c.name == name, saved_searches.c.id != search_id)).first()
            if clash:
                raise HTTPException(409, f"{row.owner} already has a saved search called {name!r}")
            c.execute(saved_searches.update().where(saved_searches.c.id == search_id).values(
                name=name, params=json.dumps(params, ensure_ascii=False), shared=body.shared,
                updated_at=datetime.now(timezone.utc)))
            _audit(c, principal.name, "search.update", f"search:{search_id}", {"name": name, "params": params})
            return _saved(c.execute(sa.select(saved_searches).where(saved_searches.c.id == search_id)).one())

    return await anyio.to_thread.run_sync(save)


@router.delete("/searches/{search_id}", status_code=204, response_class=Response, tags=["searches"],
               summary="Delete a saved search", responses=problems(404, _404="no such search (or not yours)"))
async def delete_search(search_id: Annotated[int, SEARCH_ID], engine: EngineDep, principal: PrincipalDep) -> Response:
    def delete() -> None:
        with engine.begin() as c:
            row = _owned(c, search_id, principal)
            c.execute(saved_searches.delete().where(saved_searches.c.id == search_id))
            _audit(c, principal.name, "search.delete", f"search:{search_id}", {"name": row.name})

    await anyio.to_thread.run_sync(delete)
    return Response(status_code=204)


# -- tokens ------------------------------------------------------------------------------------


class TokenInfo(BaseModel):
    id: int
    name: str
    role: Literal["viewer", "analyst", "duty_officer", "admin"]
    created_at: datetime
    revoked_at: datetime | None


class NewToken(BaseModel):
    name: Name = Field(description="who or what uses it", examples=["dashboard-team"])
    role: Literal["viewer", "analyst", "duty_officer", "admin"]


class IssuedToken(TokenInfo):
    token: str = Field(description="the token itself: shown once, stored only as a hash")


@router.get("/tokens", response_model=list[TokenInfo], tags=["tokens"], summary="Every token (never the token itself)")
async def list_tokens(engine: EngineDep, include_revoked: Annotated[bool, Q()] = False) -> list[TokenInfo]:
    def load() -> list[TokenInfo]:
        q = sa.select(tokens.c.id, tokens.c.name, tokens.c.role, tokens.c.created_at, tokens.c.revoked_at).order_by(tokens.c.id)
        if not include_revoked:
            q = q.where(tokens.c.revoked_at.is_(None))
        with engine.connect() as c:
            return [TokenInfo(**r._mapping) for r in c.execute(q).all() if r.role in Role.__members__]

    return await anyio.to_thread.run_sync(load)


@router.post("/tokens", response_model=IssuedToken, status_code=201, tags=["tokens"],
             summary="Create a token; the answer is the only time it is shown")
async def create(body: Annotated[NewToken, Body()], engine: EngineDep, principal: PrincipalDep) -> IssuedToken:
    def make() -> IssuedToken:
        token_id, token = issue_token(engine, body.name, body.role, actor=principal.name)
        with engine.connect() as c:
            row = c.execute(sa.select(tokens.c.created_at).where(tokens.c.id == token_id)).one()
        return IssuedToken(id=token_id, name=body.name.strip(), role=body.role, created_at=row.created_at,
                           revoked_at=None, token=token)

    return await anyio.to_thread.run_sync(make)


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response, tags=["tokens"],
               summary="Revoke a token (at once: the next request with it gets 401)",
               responses=problems(404, 409, _404="no such token", _409="revoking the caller's own token"))
async def revoke(token_id: Annotated[int, TOKEN_ID], engine: EngineDep, principal: PrincipalDep) -> Response:
    if token_id == principal.token_id:
        # an admin locking themself out mid-incident is a mistake; another admin (or the CLI) can do it
        raise HTTPException(409, "you cannot revoke the token you are using; use another admin token or the CLI")
    done = await anyio.to_thread.run_sync(revoke_token_id, engine, token_id, principal.name)
    if done is None:
        raise HTTPException(404, f"no token with id {token_id}")
    return Response(status_code=204)
