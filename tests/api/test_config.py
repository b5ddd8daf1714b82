"""Configuration over HTTP: analysts read it with secrets redacted; admins write one section,
validated exactly as the file is at start, written back atomically with comments kept, and
in force without a restart — also when someone edits the file by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
import yaml

from api.settings_file import format_duration, splice_section
from yuqing.state.schema import audit_log

from .conftest import World


@pytest.fixture()
def config(world: World) -> Iterator[World]:
    """The world's configuration file, put back as it was after the test."""
    saved = world.config_path.read_bytes()
    yield world
    world.config_path.write_bytes(saved)
    world.app.state.config.force_check()


def _wait_for(fn, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_read_redacts_secrets_and_carries_a_version(config: World) -> None:
    assert config.client("viewer").get("/api/v1/config").status_code == 403
    r = config.client("analyst").get("/api/v1/config")
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["etag"] == f'"{body["version"]}"' and body["file"] == "config.yaml" and body["error"] is None
    channels = {c["name"]: c for c in body["sections"]["channels"]}
    assert channels["duty-wecom"]["url"] == "wecom://***" and channels["ops-env"]["url"] == "env:OPS_WEBHOOK"
    assert "s3cr3t" not in r.text
    assert body["sections"]["alerts"]["window"] == "15m"  # durations in the file's notation
    assert [w["name"] for w in body["sections"]["watchlists"]] == ["agency"]
    assert config.client("analyst").get("/api/v1/config/topics").json()[0]["name"] == "pollution"


def test_admin_writes_a_section_validated_atomic_comments_kept_and_in_force(config: World) -> None:
    admin = config.client("admin")
    assert config.client("duty_officer").put("/api/v1/config/watchlists", json=[]).status_code == 403
    version = admin.get("/api/v1/config").json()["version"]
    new = [{"name": "agency", "terms": ["环保局", "bureau", "المكتب"]},
           {"name": "leader", "priority": 3, "terms": ['"张局长" OR "Director Zhang"']}]
    r = admin.put("/api/v1/config/watchlists", json=new, headers={"If-Match": f'"{version}"'})
    assert r.status_code == 200, r.text
    assert [w["name"] for w in r.json()] == ["agency", "leader"] and r.headers["etag"] != f'"{version}"'

    text = config.config_path.read_text(encoding="utf-8")
    assert "# who we watch" in text and "# the taxonomy (corrections must use these names)" in text
    assert yaml.safe_load(text)["watchlists"][1] == {"name": "leader", "priority": 3, "terms": ['"张局长" OR "Director Zhang"']}
    assert (config.config_path.with_name("config.yaml.bak")).read_text(encoding="utf-8").count("leader") == 0
    # in force at once, for this API, without a restart
    assert [w.name for w in config.app.state.settings.watchlists] == ["agency", "leader"]
    assert [w["name"] for w in config.client("analyst").get("/api/v1/config/watchlists").json()] == ["agency", "leader"]
    with config.engine.connect() as c:
        row = c.execute(sa.select(audit_log).where(audit_log.c.action == "config.watchlists")
                        .order_by(audit_log.c.id.desc())).first()
    assert row is not None and row.actor == "test-admin" and "leader" in row.detail

    # a stale If-Match: 412, nothing written
    before = config.config_path.read_bytes()
    r = admin.put("/api/v1/config/watchlists", json=new[:1], headers={"If-Match": f'"{version}"'})
    assert r.status_code == 412 and r.headers["content-type"].startswith("application/problem+json")
    assert config.config_path.read_bytes() == before


def test_invalid_configuration_is_refused_with_the_files_wording(config: World) -> None:
    admin = config.client("admin")
    before = config.config_path.read_bytes()
    cases = [
        ("watchlists", [{"name": "a", "terms": ["x"]}, {"name": "a", "terms": ["y"]}], "used twice"),
        ("watchlists", [{"name": "a", "terms": ['"unclosed']}], "term 1"),
        ("watchlists", [{"name": "a", "terms": ["x"], "colour": "red"}], "colour"),
        ("alerts", {"window": "2h", "baseline": "3h"}, "baseline must cover at least two windows"),
        ("alerts", {"topics": ["sports"]}, "no topic named 'sports'"),  # cross-section check
        ("sources", [{"name": "s", "kind": "feed", "url": "ftp://x"}], "http"),
        ("channels", [{"name": "new", "url": "slack://***"}], "redacted"),
    ]
    for section, body, expected in cases:
        r = admin.put(f"/api/v1/config/{section}", json=body)
        assert r.status_code == 422, (section, body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert expected in r.text, (section, r.text)
    assert config.config_path.read_bytes() == before


def test_redacted_secret_sent_back_keeps_the_stored_one(config: World) -> None:
    admin = config.client("admin")
    channels = admin.get("/api/v1/config/channels").json()
    channels[0]["min_level"] = "red"
    r = admin.put("/api/v1/config/channels", json=channels)
    assert r.status_code == 200, r.text
    assert r.json()[0]["url"] == "wecom://***" and r.json()[0]["min_level"] == "red"
    stored = yaml.safe_load(config.config_path.read_text(encoding="utf-8"))["channels"][0]
    assert stored["url"] == "wecom://s3cr3t-corp/s3cr3t-secret/agent" and stored["min_level"] == "red"


def test_alerts_section_round_trips_and_feeds_the_alert_store(config: World) -> None:
    admin = config.client("admin")
    r = admin.put("/api/v1/config/alerts", json={"statement_next_update": "2h", "cooldown": "45m"})
    assert r.status_code == 200, r.text
    assert r.json()["statement_next_update"] == "2h" and r.json()["window"] == "15m"
    assert yaml.safe_load(config.config_path.read_text(encoding="utf-8"))["alerts"] == {
        "statement_next_update": "2h", "cooldown": "45m"}  # only what was sent; defaults stay implicit
    # what is read can be written back unchanged
    full = admin.get("/api/v1/config/alerts").json()
    assert admin.put("/api/v1/config/alerts", json=full).status_code == 200
    # the alert store uses the new promise for "next update" at once
    aid, _ = config.open_alert(level="orange")
    a = config.client("duty_officer").post(f"/api/v1/alerts/{aid}/published", json={"url": "https://gov.example/x"}).json()
    from datetime import datetime

    gap = datetime.fromisoformat(a["next_update_at"]) - datetime.fromisoformat(a["published_at"])
    assert gap.total_seconds() == 7200


def test_hand_edits_are_picked_up_and_broken_files_are_not_applied(config: World) -> None:
    analyst = config.client("analyst")
    text = config.config_path.read_text(encoding="utf-8")
    config.config_path.write_text(text.replace("terms: [\"环保局\", \"bureau\", \"المكتب\"]",
                                               "terms: [\"环保局\", \"bureau\", \"المكتب\", \"生态环境\"]"), encoding="utf-8")
    got = _wait_for(lambda: "生态环境" in str(analyst.get("/api/v1/config/watchlists").json()))
    assert got, "an edit of the file was not picked up"
    good_version = analyst.get("/api/v1/config").json()["version"]

    config.config_path.write_text(text.replace("timezone: Asia/Shanghai", "timezone: Mars/Olympus"), encoding="utf-8")
    body = _wait_for(lambda: (lambda b: b if b["error"] else None)(analyst.get("/api/v1/config").json()))
    assert body and "Mars/Olympus" in body["error"]
    assert body["version"] == good_version  # the last good configuration stays in force
    assert "生态环境" in str(body["sections"]["watchlists"])


def test_splice_keeps_everything_outside_the_section() -> None:
    text = "# head\nagency: A\n\n# list\nwatchlists:\n  - name: a\n    terms: [x]  # inline\n\n# tail comment\ntopics: []\n"
    out = splice_section(text, "watchlists", [{"name": "b", "terms": ["y"]}])
    assert out.startswith("# head\nagency: A\n\n# list\nwatchlists:\n- name: b\n")
    assert out.endswith("\n# tail comment\ntopics: []\n")
    assert yaml.safe_load(out) == {"agency": "A", "watchlists": [{"name": "b", "terms": ["y"]}], "topics": []}
    added = splice_section(text, "channels", [])
    assert added.startswith(text) and yaml.safe_load(added)["channels"] == []
    assert [format_duration(__import__("datetime").timedelta(seconds=s)) for s in (90, 900, 3600, 86400, 1.5)] == [
        "90s", "15m", "1h", "1d", "1500ms"]


def test_oncall_rota_edited_on_its_own(config: World) -> None:
    admin = config.client("admin")
    assert admin.put("/api/v1/config/alerts", json={"cooldown": "45m"}).status_code == 200
    rota = {"contacts": [{"name": "wang", "channels": ["duty-wecom"]}],
            "rota": [{"contact": "wang", "start": "08:00", "end": "20:00"}],
            "ladders": {"red": [{"contacts": ["duty"]}, {"contacts": ["wang"], "after": "15m"}]}}
    r = admin.put("/api/v1/config/oncall", json=rota)
    assert r.status_code == 200, r.text
    assert r.json()["ladders"]["red"][1]["after"] == "15m"
    alerts = yaml.safe_load(config.config_path.read_text(encoding="utf-8"))["alerts"]
    assert alerts["cooldown"] == "45m" and alerts["oncall"]["contacts"] == [{"name": "wang", "channels": ["duty-wecom"]}]
    assert config.client("analyst").get("/api/v1/config/oncall").json()["rota"][0]["contact"] == "wang"
    assert config.client("analyst").get("/api/v1/config").json()["sections"]["alerts"]["oncall"]["contacts"][0]["name"] == "wang"
    # references are checked against the rest of the file: a page to a channel that does not exist
    bad = {**rota, "contacts": [{"name": "wang", "channels": ["pager-nowhere"]}]}
    r = admin.put("/api/v1/config/oncall", json=bad)
    assert r.status_code == 422 and "pager-nowhere" in r.json()["detail"]
