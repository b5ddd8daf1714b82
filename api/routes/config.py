"""Configuration over HTTP: read (analyst, secrets redacted) and write (admin) one section of
the YAML file at a time, validated by the same models as the file (see api.settings_file)."""

# no `from __future__ import annotations`: the write handlers are built in a loop and their body
# annotation must be evaluated where `model` is in scope
import json
from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Body, Header, Request, Response
from pydantic import BaseModel, Field

from api.deps import PrincipalDep, SettingsDep, apply_settings
from api.errors import PROBLEM_RESPONSES, ApiError, problems
from api.security import API, GuardedRoute, audit
from api.settings_file import (
    SECTIONS,
    ConfigFile,
    InvalidConfig,
    MissingSecret,
    NoConfigFile,
    VersionMismatch,
    redact,
    restore_secrets,
    section_value,
)
from yuqing.config import (
    AlertsConfig,
    ChannelConfig,
    OnCallConfig,
    SourceConfig,
    TopicConfig,
    WatchlistConfig,
)

router = APIRouter(prefix=f"{API}/config", tags=["configuration"], route_class=GuardedRoute, responses=PROBLEM_RESPONSES)

MODELS: dict[str, Any] = {
    "watchlists": list[WatchlistConfig],
    "sources": list[SourceConfig],
    "topics": list[TopicConfig],
    "alerts": AlertsConfig,
    "channels": list[ChannelConfig],
    # the on-call rota and escalation ladder: `alerts.oncall` in the file, editable on its own so
    # changing who is on duty never touches the detection thresholds
    "oncall": OnCallConfig,
}
SINGLE = ("alerts", "oncall")  # sections that are one object, not a list
assert set(MODELS) == set(SECTIONS)

DURATIONS = "Durations are written as in the file: `90s`, `15m`, `1h`, `2d`, `1w` or a number of seconds."
SECRETS = ("Channel URLs (Apprise URLs carry tokens) read as `scheme://***`, passwords in source URLs and "
           "secret-looking source options (key, token, secret, password, cookie) as `***`. Send a redacted value "
           "back unchanged to keep the stored secret.")


class ConfigView(BaseModel):
    version: str | None = Field(description="the file's version (also the ETag); send it as If-Match when writing")
    file: str | None = Field(description="the configuration file's name; null when not read from a file (read-only)")
    loaded_at: datetime
    error: str | None = Field(description="why the file's latest change was NOT applied (it does not validate)")
    sections: dict[str, Any]


def _holder(request: Request) -> ConfigFile:
    return request.app.state.config  # type: ignore[no-any-return]


def _etag(response: Response, version: str | None) -> None:
    if version:
        response.headers["ETag"] = f'"{version}"'


@router.get("", response_model=ConfigView, summary="Every editable section, secrets redacted",
            description=f"{DURATIONS} {SECRETS}")
async def read_all(request: Request, response: Response, settings: SettingsDep) -> ConfigView:
    cf = _holder(request)
    _etag(response, cf.version)
    return ConfigView(
        version=cf.version, file=cf.path.name if cf.path else None, loaded_at=cf.loaded_at, error=cf.error,
        sections={s: redact(s, section_value(settings, s)) for s in SECTIONS if s != "oncall"},  # oncall: in alerts
    )


def _make_read(section: str) -> Any:
    async def read_section(request: Request, response: Response, settings: SettingsDep) -> Any:
        _etag(response, _holder(request).version)
        return redact(section, section_value(settings, section))

    read_section.__name__ = f"read_{section}"
    return read_section


def _make_write(section: str) -> Any:
    model = MODELS[section]

    async def write_section(
        request: Request,
        response: Response,
        body: Annotated[model, Body()],  # type: ignore[valid-type]
        principal: PrincipalDep,
        if_match: Annotated[str | None, Header(alias="If-Match", max_length=100,
                                               description="the version read; 412 when the file changed since")] = None,
    ) -> Any:
        cf = _holder(request)
        if isinstance(body, list):
            new = [item.model_dump(mode="python", exclude_unset=True) for item in body]
        else:
            new = body.model_dump(mode="python", exclude_unset=True)
        from api.settings_file import plain

        new = plain(new)

        def write() -> Any:
            current = cf.force_check()
            try:
                value = restore_secrets(section, new, section_value(current, section))
                settings = cf.write_section(section, value, if_match=if_match)
            except MissingSecret as e:
                raise ApiError(422, str(e), title="Invalid configuration", type_="/problems/config-invalid") from None
            except NoConfigFile as e:
                raise ApiError(409, str(e), type_="/problems/config-read-only") from None
            except VersionMismatch as e:
                raise ApiError(412, str(e), type_="/problems/config-changed") from None
            except InvalidConfig as e:
                raise ApiError(422, str(e), title="Invalid configuration", type_="/problems/config-invalid") from None
            apply_settings(request.app, settings)
            shown = redact(section, section_value(settings, section))
            audit(request.app.state.engine, principal.name, f"config.{section}", cf.path.name if cf.path else None,
                  json.dumps({"version": cf.version, section: shown}, ensure_ascii=False)[:20000])
            return shown

        shown = await anyio.to_thread.run_sync(write)
        _etag(response, cf.version)
        return shown

    write_section.__name__ = f"write_{section}"
    return write_section


for _section in SECTIONS:
    router.add_api_route(
        f"/{_section}", _make_read(_section), methods=["GET"], response_model=dict[str, Any] if _section in SINGLE else list[dict[str, Any]],
        summary=f"Read `{_section}`", description=f"{DURATIONS} {SECRETS}" if _section in ("sources", "channels") else DURATIONS,
    )
    router.add_api_route(
        f"/{_section}", _make_write(_section), methods=["PUT"],
        response_model=dict[str, Any] if _section in SINGLE else list[dict[str, Any]],
        summary=f"Replace `{_section}` (validated like the file, applied without a restart)",
        description=f"Replaces the whole section in the YAML file (other sections and comments are kept); fields "
        f"left out take their defaults — it is a replacement, not a merge: read, change, send back. Validated "
        f"as the resulting file would be at start-up. {DURATIONS} {SECRETS if _section in ('sources', 'channels') else ''}",
        responses=problems(409, 412, _409="the settings were not read from a file", _412="the file changed since the If-Match version"),
    )
