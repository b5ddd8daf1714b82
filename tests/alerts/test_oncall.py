"""The on-call rota and escalation ladder, driven by a controllable clock: rung 0 is paged with
the alert, the next rung when nobody acknowledged in time, acknowledging stops the ladder, and
whoever was paged hears the resolution."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from alerts.delivery import Notifier
from alerts.oncall import on_duty
from alerts.service import tick
from alerts.store import AlertStore
from tests.alerts.conftest import T0, Posts
from tests.alerts.test_delivery import Webhook
from yuqing.config import ChannelConfig, ConfigError, OnCallConfig, Settings, load_settings
from yuqing.state.schema import oncall_pages

M = timedelta(minutes=1)


@pytest.fixture
def phones() -> Iterator[dict[str, Webhook]]:
    hooks = {name: Webhook() for name in ("desk", "li", "wang", "chief")}
    yield hooks
    for h in hooks.values():
        h.close()


def _oncall(settings: Settings, phones: dict[str, Webhook]) -> Settings:
    oncall = OnCallConfig.model_validate({
        "contacts": [
            {"name": "li", "channels": ["li-phone"]},
            {"name": "wang", "channels": ["wang-phone"]},
            {"name": "chief", "channels": ["chief-phone"]},
        ],
        "rota": [
            {"contact": "li", "start": "08:00", "end": "20:00"},
            {"contact": "wang", "start": "20:00", "end": "08:00", "weekdays": [1, 2, 3, 4, 5]},
        ],
        "ladders": {"yellow": [{"contacts": ["duty"]}, {"contacts": ["chief"], "after": "15m"}]},
    })
    channels = [ChannelConfig(name="desk", url=phones["desk"].url, languages=["en"])] + [
        ChannelConfig(name=f"{n}-phone", url=phones[n].url, languages=["zh", "en"], broadcast=False) for n in ("li", "wang", "chief")
    ]
    return settings.model_copy(update={"channels": channels, "alerts": settings.alerts.model_copy(update={"oncall": oncall})})


def test_rota_shifts_follow_the_agency_clock() -> None:
    oncall = OnCallConfig.model_validate({
        "contacts": [{"name": "li", "channels": ["x"]}, {"name": "wang", "channels": ["x"]}],
        "rota": [{"contact": "li", "start": "08:00", "end": "20:00"}, {"contact": "wang", "start": "20:00", "end": "08:00", "weekdays": [1]}],
    })
    bj = timezone(timedelta(hours=8))
    assert on_duty(oncall, datetime(2025, 3, 3, 9, 0, tzinfo=bj), "Asia/Shanghai") == ["li"]  # Monday 09:00
    assert on_duty(oncall, datetime(2025, 3, 3, 23, 0, tzinfo=bj), "Asia/Shanghai") == ["wang"]  # Monday night
    assert on_duty(oncall, datetime(2025, 3, 4, 7, 59, tzinfo=bj), "Asia/Shanghai") == ["wang"]  # its tail on Tuesday
    assert on_duty(oncall, datetime(2025, 3, 4, 23, 0, tzinfo=bj), "Asia/Shanghai") == []  # no Tuesday night shift
    assert on_duty(oncall, datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc), "Asia/Shanghai") == ["wang"]  # 20:00 in Beijing


def test_unacknowledged_alert_climbs_the_ladder_until_acknowledged(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine, phones: dict[str, Webhook]
) -> None:
    settings = _oncall(settings, phones)
    posts.steady(T0 - timedelta(hours=7), T0 + 15 * M, 2 * M)
    posts.burst(T0, 15, 2, 0.0)
    notifier = Notifier(settings, state_engine, sleep=lambda s: None)

    def at(minutes: int) -> Any:
        return tick(settings, index_store, state_engine, T0 + minutes * M, notifier=notifier)

    first = at(15)  # Monday 09:15 in Beijing: li is on shift
    assert [(c.kind, c.level) for c in first.changes] == [("opened", "yellow")]
    assert sorted(d.channel for d in first.deliveries) == ["desk", "li-phone"]
    assert phones["li"].received[0]["title"].startswith("[黄色] 新预警")
    assert phones["wang"].received == [] and phones["chief"].received == []
    aid = first.changes[0].alert_id

    assert at(29).pages == []  # 14 minutes unacknowledged: not yet
    second = at(30)
    assert [(p.kind, p.alert_id) for p in second.pages] == [("paged", aid)]
    assert [d.channel for d in second.deliveries] == ["chief-phone"]  # only the next rung
    [page] = phones["chief"].received
    assert page["title"].startswith("[黄色] 预警未确认，逐级通知") and "已 15分钟 无人确认；逐级通知第 2/2 级" in page["message"]
    assert "Not acknowledged for 15 min; escalation step 2 of 2" in page["message"]
    later = at(40)
    assert later.pages == []  # the top of the ladder pages once
    with state_engine.connect() as c:
        pages = [(r.step, r.contact) for r in c.execute(sa.select(oncall_pages).order_by(oncall_pages.c.id))]
    assert pages == [(0, "li"), (1, "chief")]

    # the story subsides: the resolution reaches the desk and everyone who was paged
    resolved = later.deliveries + [r for m in range(45, 121, 15) for r in at(m).deliveries]
    assert sorted(d.channel for d in resolved) == ["chief-phone", "desk", "li-phone"]
    assert all(d.kind == "resolved" and d.ok for d in resolved)
    assert phones["wang"].received == []


def test_acknowledging_in_time_stops_the_ladder(
    settings: Settings, index_store: Any, posts: Posts, state_engine: sa.Engine, phones: dict[str, Webhook]
) -> None:
    settings = _oncall(settings, phones)
    posts.steady(T0 - timedelta(hours=7), T0 + 15 * M, 2 * M)
    posts.burst(T0, 15, 2, 0.0)
    notifier = Notifier(settings, state_engine, sleep=lambda s: None)
    [opened] = tick(settings, index_store, state_engine, T0 + 15 * M, notifier=notifier).changes
    AlertStore(state_engine, clock=lambda: T0 + 20 * M).acknowledge(opened.alert_id, "li.wei")
    assert tick(settings, index_store, state_engine, T0 + 40 * M, notifier=notifier).pages == []
    assert phones["chief"].received == []


@pytest.mark.parametrize(
    "oncall,message",
    [
        ({"contacts": [{"name": "li", "channels": ["nope"]}]}, "alerts.oncall.contacts.li: no channel named 'nope'"),
        ({"contacts": [{"name": "li", "channels": ["c"]}], "ladders": {"red": [{"contacts": ["zhang"]}]}}, "unknown contact 'zhang'"),
        ({"contacts": [{"name": "li", "channels": ["c"]}], "ladders": {"red": [{"contacts": ["duty"]}]}}, "'duty' needs a rota"),
        ({"contacts": [{"name": "li", "channels": ["c"]}], "rota": [{"contact": "li", "start": "25:00"}]}, "expected a local time like '08:30'"),
        ({"contacts": [{"name": "li", "channels": ["c"]}], "ladders": {"red": [{"contacts": ["li"]}, {"contacts": ["li"], "after": "0s"}]}}, "after must be positive"),
    ],
)
def test_oncall_config_errors_name_the_key(tmp_path: Any, oncall: dict[str, Any], message: str) -> None:
    import yaml

    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump({"channels": [{"name": "c", "url": "json://127.0.0.1:9/x"}], "alerts": {"oncall": oncall}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        load_settings(p)
