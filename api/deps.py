"""Dependencies shared by the routes.

Everything a route needs (settings, index store, state engine, alert store, caller) comes from
`app.state`, set once by `create_app`: no module globals, so tests and the lead's `yuqing run`
can build several apps side by side on different stores.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi import Query as Q
from pydantic import ValidationError

from alerts.store import AlertStore
from api.errors import param_problem
from api.security import Principal
from index.base import Query, SortKey, Store
from yuqing.config import Settings

# The largest page a client may ask for. The store allows more (the worker and the exporter
# page through it in bulk); over HTTP a bigger page only makes a slower response.
MAX_PAGE_SIZE = 100
MAX_QUERY_LENGTH = 500
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def get_settings(request: Request) -> Settings:
    """The settings in force: re-read when the configuration file changed (api.settings_file)."""
    settings = request.app.state.config.current()
    if settings is not request.app.state.settings:
        apply_settings(request.app, settings)
    return settings  # type: ignore[no-any-return]


def apply_settings(app: Any, settings: Settings) -> None:
    """Put new settings in force for everything the app holds."""
    app.state.settings = settings
    alerts = app.state.alerts
    if hasattr(alerts, "config"):  # statement_next_update, press_conference: as configured now
        alerts.config = settings.alerts


def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def get_engine(request: Request) -> sa.Engine:
    return request.app.state.engine  # type: ignore[no-any-return]


def get_alerts(request: Request) -> AlertStore:
    return request.app.state.alerts  # type: ignore[no-any-return]


def get_principal(request: Request) -> Principal:
    """The caller, authenticated by `GuardedRoute` before the route ran."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # a public route asked for a principal: a programming error
        raise RuntimeError("get_principal used on a route without a role rule")
    return principal  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
EngineDep = Annotated[sa.Engine, Depends(get_engine)]
AlertsDep = Annotated[AlertStore, Depends(get_alerts)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated parameters and comma-separated lists both work: `?lang=zh&lang=en` or
    `?lang=zh,en` (the second is what people type into a URL bar)."""
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


# Query field -> the HTTP parameter that fills it, to name the right parameter in errors.
_PARAM_OF = {
    "text": "q",
    "sources": "source",
    "platforms": "platform",
    "langs": "lang",
    "sentiments": "sentiment",
    "topics": "topic",
    "watchlists": "watchlist",
    "authors": "author",
}


def build_query(**fields: Any) -> Query:
    """A `Query`, with its validation errors reported against the HTTP parameter names."""
    try:
        return Query(**fields)
    except ValidationError as e:
        err = e.errors()[0]
        loc = [str(p) for p in err.get("loc", ())]
        # model-level checks (ranges) have no loc; `filter_params` catches those first
        param = _PARAM_OF.get(loc[0], loc[0]) if loc else "query"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise param_problem(param, "query", msg) from None


def filter_params(
    q: Annotated[
        str | None,
        Q(max_length=MAX_QUERY_LENGTH, description='search text: terms, "phrases", AND / OR / NOT', examples=["通报 OR statement"]),
    ] = None,
    start: Annotated[datetime | None, Q(description="published at or after (ISO 8601 with zone)", examples=["2024-05-01T00:00:00+08:00"])] = None,
    end: Annotated[datetime | None, Q(description="published before (ISO 8601 with zone)")] = None,
    source: Annotated[list[str] | None, Q(description="source name; repeat or comma-separate")] = None,
    platform: Annotated[list[str] | None, Q(description="platform, e.g. weibo, web")] = None,
    lang: Annotated[list[str] | None, Q(description="language code: zh, en, ar")] = None,
    sentiment: Annotated[list[str] | None, Q(description="negative, neutral, positive")] = None,
    topic: Annotated[list[str] | None, Q()] = None,
    watchlist: Annotated[list[str] | None, Q()] = None,
    author: Annotated[list[str] | None, Q(description="pseudonymous author id")] = None,
    rumor_min: Annotated[float | None, Q(ge=0.0, le=1.0, description="rumour likelihood at least")] = None,
    rumor_max: Annotated[float | None, Q(ge=0.0, le=1.0, description="rumour likelihood at most")] = None,
) -> dict[str, Any]:
    """The filters every query-taking endpoint accepts (search, stats, export)."""
    if rumor_min is not None and rumor_max is not None and rumor_min > rumor_max:
        raise param_problem("rumor_min", "query", "rumor_min must not exceed rumor_max", rumor_min)
    for name, t in (("start", start), ("end", end)):
        if t is None:
            continue
        if t.tzinfo is None:
            raise param_problem(name, "query", "the time must carry a zone, e.g. 2024-05-01T08:00:00+08:00 or ...Z", str(t))
        if not EARLIEST <= t <= LATEST:
            # the index keys posts by epoch milliseconds; far-off years are typos, not queries
            raise param_problem(name, "query", f"expected a time between {EARLIEST.year} and {LATEST.year}", str(t))
    if start is not None and end is not None and start >= end:
        raise param_problem("end", "query", "end must be after start", str(end))
    return {
        "text": q.strip() if q and q.strip() else None,
        "start": start,
        "end": end,
        "sources": _split(source),
        "platforms": _split(platform),
        "langs": _split(lang),
        "sentiments": _split(sentiment),
        "topics": _split(topic),
        "watchlists": _split(watchlist),
        "authors": _split(author),
        "rumor_min": rumor_min,
        "rumor_max": rumor_max,
    }


FiltersDep = Annotated[dict[str, Any], Depends(filter_params)]


def search_query(
    filters: FiltersDep,
    sort: Annotated[SortKey, Q(description="time (newest first), relevance, engagement, rumor")] = "time",
    size: Annotated[int, Q(ge=1, le=MAX_PAGE_SIZE, description=f"results per page, 1..{MAX_PAGE_SIZE}")] = 20,
    cursor: Annotated[str | None, Q(max_length=2000, description="opaque: next_cursor of the previous page")] = None,
    highlight: Annotated[bool, Q(description="return highlighted fragments")] = True,
) -> Query:
    return build_query(**filters, sort=sort, size=size, cursor=cursor, highlight=highlight)


SearchDep = Annotated[Query, Depends(search_query)]
