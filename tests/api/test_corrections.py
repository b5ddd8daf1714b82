"""Corrections of post labels: stored with who/when, shown on the post, exported as training
JSONL in the format `nlp.data` reads (checked by reading the export back with its reader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.corrections import export_labels_main
from nlp.data import _sentiment, read_jsonl
from yuqing.state.schema import audit_log

from .conftest import World


def test_correct_show_and_history(world: World) -> None:
    analyst = world.client("analyst")
    assert world.client("viewer").post("/api/v1/posts/p0003/corrections", json={"sentiment": "negative"}).status_code == 403
    r = analyst.post("/api/v1/posts/p0003/corrections",
                     json={"sentiment": "negative", "rumor": False, "note": "sarcasm 反讽"})
    assert r.status_code == 201, r.text
    got = {c["field"]: c for c in r.json()}
    assert got["sentiment"]["value"] == "negative" and got["sentiment"]["previous"] == "neutral"
    assert got["rumor"]["value"] is False and got["rumor"]["actor"] == "test-analyst" and got["rumor"]["at"]

    r = analyst.post("/api/v1/posts/p0003/corrections", json={"sentiment": "positive", "topics": ["air", "pollution"]})
    assert r.status_code == 201
    post = world.client("viewer").get("/api/v1/posts/p0003").json()
    assert post["corrected"] == {"sentiment": "positive", "topics": ["air", "pollution"], "rumor": False}
    assert [c["value"] for c in post["corrections"] if c["field"] == "sentiment"] == ["positive", "negative"]
    assert post["post"]["classification"]["sentiment"] == "neutral"  # the model's label is kept apart
    untouched = world.client("viewer").get("/api/v1/posts/p0004").json()
    assert untouched["corrections"] == [] and untouched["corrected"] == {"sentiment": None, "topics": None, "rumor": None}

    # refused: nothing to correct, unknown labels, topics outside the taxonomy, unknown posts
    assert analyst.post("/api/v1/posts/p0003/corrections", json={"note": "x"}).status_code == 422
    assert analyst.post("/api/v1/posts/p0003/corrections", json={"sentiment": "angry"}).status_code == 422
    r = analyst.post("/api/v1/posts/p0003/corrections", json={"topics": ["sports"]})
    assert r.status_code == 422 and "sports" in r.json()["detail"]
    assert analyst.post("/api/v1/posts/nope/corrections", json={"rumor": True}).status_code == 404

    listed = analyst.get("/api/v1/corrections", params={"field": "sentiment"}).json()
    assert [c["value"] for c in listed if c["post_id"] == "p0003"] == ["negative", "positive"]
    with world.engine.connect() as c:
        n = c.execute(sa.select(sa.func.count()).where(audit_log.c.action == "post.correct",
                                                       audit_log.c.target == "post:p0003")).scalar_one()
    assert n == 2


def test_export_labels_in_the_training_format(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    analyst = world.client("analyst")
    analyst.post("/api/v1/posts/p0006/corrections", json={"sentiment": "neutral"}).raise_for_status()
    analyst.post("/api/v1/posts/p0006/corrections", json={"sentiment": "negative"}).raise_for_status()
    analyst.post("/api/v1/posts/p0002/corrections", json={"rumor": True}).raise_for_status()
    analyst.post("/api/v1/posts/p0000/corrections", json={"rumor": False, "topics": []}).raise_for_status()

    out = tmp_path / "labels"
    assert export_labels_main(["--config", str(world.config_path), "--out", str(out)]) == 0
    sent = {r["id"]: r for r in read_jsonl(out / "sentiment.jsonl")}
    assert sent["p0006"]["sentiment"] == "negative"  # the newest correction is the label in force
    assert sent["p0006"]["lang"] == "ar" and sent["p0006"]["text"] == world.posts[6].text
    # nlp.data's own reader takes the file as it takes the shared sentiment files
    examples = _sentiment(out / "sentiment.jsonl", "corrections")
    assert {(e.lang, e.label) for e in examples if e.text == world.posts[6].text} == {("ar", "negative")}

    rumor = {r["id"]: r for r in read_jsonl(out / "rumor.jsonl")}
    assert rumor["p0002"]["rumor"] == 1 and rumor["p0000"]["rumor"] == 0
    r0 = rumor["p0000"]
    assert r0["text"] == "环保局回应泄漏\n" + world.posts[0].text  # title + text, as the worker classifies
    assert r0["time"] == int(world.posts[0].published_at.timestamp())
    assert set(r0) >= {"id", "lang", "text", "rumor", "time", "user", "reposts_count", "comments_count", "reposts", "source"}
    # training builds the rumour context exactly this way (nlp.train): it reads the exported row
    from nlp.rumor_features import FEATURES, cut_to_window, features

    with_context = dict(zip(FEATURES, features(**cut_to_window(r0, None))))
    assert any(with_context.values())  # the publish time (hour of day) is read from the export
    topics = {r["id"]: r["topics"] for r in read_jsonl(out / "topics.jsonl")}
    assert topics["p0000"] == []

    # one task to standard output; bad arguments exit 2
    capsys.readouterr()
    assert export_labels_main(["--config", str(world.config_path), "--task", "rumor"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {x["id"] for x in lines} >= {"p0002", "p0000"}
    assert export_labels_main(["--config", str(world.config_path), "--since", "2025-01-01T00:00:00"]) == 2
    assert export_labels_main(["--config", str(tmp_path / "missing.yaml"), "--out", str(out)]) == 2
