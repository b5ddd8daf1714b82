"""Every error in one shape: RFC 9457 `application/problem+json`.

Why: three clients (console, analysts' scripts, another team's dashboard) parse our errors; one
shape means one parser. Validation errors list each parameter, where it was (query, path,
body, header) and what was expected, so a caller can fix the request without reading code.
Unexpected errors are logged here with their traceback and answered with a bare 500 that
carries a reference to the log line, never the traceback itself.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.analysis import QuerySyntaxError
from index.base import StoreUnavailable
from index.common import CursorError

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"


class ProblemParam(BaseModel):
    param: str = Field(description="the parameter's name, dotted for nested body fields")
    location: str = Field(description="query, path, header, body")
    message: str = Field(description="what was expected")
    value: Any = None


class Problem(BaseModel):
    """The body of every error response."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[ProblemParam] | None = None


def problems(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for problem answers (so clients and the fuzz test know
    every status an endpoint may give). `descriptions`: `_404="no such alert"`."""
    return {
        code: {
            "model": Problem,
            "content": {PROBLEM: {}},
            "description": descriptions.get(f"_{code}", HTTPStatus(code).phrase),
        }
        for code in codes
    }


# every guarded endpoint: no/bad token, role too low, invalid parameters
PROBLEM_RESPONSES = problems(401, 403, 422)
# endpoints that read the index also answer 503 while it is unreachable
STORE_PROBLEMS = problems(401, 403, 422, 503, _503="the index cannot be reached")


class ApiError(Exception):
    """Raise from a route for a problem with a specific type and status."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, type_: str = "about:blank") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.type = type_


def problem_response(
    status: int,
    detail: str | None,
    request: Request | None = None,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    errors: list[ProblemParam] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=type_,
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path if request is not None else None,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM, headers=headers
    )


def _expected(err: dict[str, Any]) -> str:
    """Turn a pydantic error into a sentence that says what was expected."""
    ctx = err.get("ctx") or {}
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "less_than_equal":
        return f"expected a number ≤ {ctx.get('le')}"
    if kind == "greater_than_equal":
        return f"expected a number ≥ {ctx.get('ge')}"
    if kind == "missing":
        return "this parameter is required"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}"
    if kind in ("string_too_long", "too_long"):
        return f"expected at most {ctx.get('max_length')} characters"
    if kind == "int_parsing":
        return "expected an integer"
    if kind == "float_parsing":
        return "expected a number"
    if kind == "bool_parsing":
        return "expected true or false"
    if kind == "string_pattern_mismatch":
        return f"expected text matching {ctx.get('pattern')}"
    if kind.startswith("datetime"):
        return "expected an ISO 8601 time with a zone, e.g. 2024-05-01T08:00:00+08:00"
    return msg


def _validation_params(errors: list[dict[str, Any]]) -> list[ProblemParam]:
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        location = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or location
        value = err.get("input")
        if isinstance(value, (dict, list)) or (isinstance(value, str) and len(value) > 200):
            value = None  # echo short scalars only: never reflect a whole hostile body back
        out.append(ProblemParam(param=name, location=location, message=_expected(err), value=value))
    return out


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a problem document."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail in (None, "Not Found"):
            detail = f"nothing at {request.url.path}"
        if exc.status_code == 405 and detail in (None, "Method Not Allowed"):
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(exc.status_code, detail, request, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        params = _validation_params(list(exc.errors()))
        names = ", ".join(f"{p.param} ({p.message})" for p in params[:5])
        return problem_response(
            422,
            f"invalid request: {names}",
            request,
            title="Invalid request parameters",
            type_="/problems/validation",
            errors=params,
        )

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return problem_response(exc.status, exc.detail, request, title=exc.title, type_=exc.type)

    # The index raises these for what the caller typed; they name the parameter at fault.
    @app.exception_handler(QuerySyntaxError)
    async def _syntax(request: Request, exc: QuerySyntaxError) -> JSONResponse:
        return await _validation(request, param_problem("q", "query", f"cannot parse the search: {exc}"))

    @app.exception_handler(CursorError)
    async def _cursor(request: Request, exc: CursorError) -> JSONResponse:
        return await _validation(request, param_problem("cursor", "query", str(exc)))

    @app.exception_handler(StoreUnavailable)
    async def _store(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("index unavailable: %s", exc)
        return problem_response(
            503,
            "the search index cannot be reached; try again shortly",
            request,
            type_="/problems/index-unavailable",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s on %s %s", ref, request.method, request.url.path)
        return problem_response(
            500, f"an internal error occurred; the server log has it under reference {ref}", request
        )


def param_problem(param: str, location: str, message: str, value: Any = None) -> RequestValidationError:
    """A validation problem for a check FastAPI cannot express in a signature (a range that
    depends on two parameters, a time zone name, ...), in the same shape as FastAPI's own."""
    return RequestValidationError(
        [{"type": "value_error", "loc": (location, param), "msg": message, "input": value}]
    )
