"""The duty-officer console: one server-rendered page and a small script, no build step.

The page itself is public and holds no data: the script logs in with a token kept in
sessionStorage (gone when the tab closes) and calls the same API as every other client, so
the console can never see more than its token's role allows.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api.deps import SettingsDep
from api.security import GuardedRoute

router = APIRouter(tags=["console"], route_class=GuardedRoute, include_in_schema=False)
_HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=_HERE / "templates")  # autoescape is on for .html


@lru_cache(maxsize=32)
def asset_version(name: str) -> str:
    """A content hash for cache busting: a redeploy never leaves an old script in a browser."""
    return hashlib.sha256((_HERE / "static" / name).read_bytes()).hexdigest()[:10]


@router.get("/", response_class=HTMLResponse)
async def console(request: Request, settings: SettingsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "console.html",
        {"agency": settings.agency, "timezone": settings.timezone, "v": asset_version},
    )
