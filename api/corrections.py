"""Analysts' corrections of post labels, and their export as training data.

    add(engine, post, actor, changes, note) -> list[Correction]     # changes: field -> value
    for_post(engine, post_id) -> list[Correction]                   # newest first
    in_force(corrections) -> dict[field, value]                      # the newest per field
    export_rows(engine, task) -> Iterator[dict]                      # training JSONL rows
    export_labels_main(argv) -> int                                  # `yuqing export-labels`

Why a table of its own, append-only: a correction is a human judgement with an author and a
time; the index keeps the model's output (the worker owns it and may reclassify), and the
history shows who changed what. The newest row per (post, field) is the label in force.

Why the post is stored with the correction: retention deletes posts from the index after
`privacy.retention_days`, but a label is only useful for training with its text. The snapshot
holds the post without its author's pseudonymous id and display name (followers and the
verified flag stay: the rumour features read them).

Export format (what `nlp.data` / `nlp.train` read):
- sentiment: `{"id", "lang", "text", "sentiment", "source"}` (the rows of
  `sentiment/<lang>/train.jsonl`);
- rumor: `{"id", "lang", "text", "rumor": 0|1, "time", "user", "reposts_count",
  "comments_count", "reposts", "source"}` (the rows of `rumor/ced/train.jsonl.gz`: the
  rumour features read `time`, `user`, `reposts`; unknowns are null, never 0);
- topics: `{"id", "lang", "text", "topics": [...], "source"}`.
The text is the one the worker classifies: title and text, the title only when the text does
not already contain it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field

from yuqing.records import Post
from yuqing.state.schema import audit_log, corrections

FIELDS = ("sentiment", "topics", "rumor")
CorrectionField = Literal["sentiment", "topics", "rumor"]
EXPORT_SOURCE = "yuqing-corrections"
TASKS = ("sentiment", "rumor", "topics")


class Correction(BaseModel):
    id: int
    post_id: str
    field: CorrectionField
    value: Any = Field(description='"negative" | ["pollution", ...] | true/false')
    previous: Any = Field(default=None, description="the model's label when the correction was made")
    note: str | None = None
    actor: str
    at: datetime


def _model_label(post: Post, field: str) -> Any:
    c = post.classification
    if c is None:
        return None
    if field == "sentiment":
        return c.sentiment
    if field == "topics":
        return [t.topic for t in c.topics]
    return c.rumor  # a likelihood; the correction is a yes/no


def _row(r: Any) -> Correction:
    m = r._mapping
    return Correction(
        id=m["id"], post_id=m["post_id"], field=m["field"], value=json.loads(m["value"]),
        previous=json.loads(m["previous"]) if m["previous"] is not None else None, note=m["note"],
        actor=m["actor"], at=m["at"],
    )


def add(
    engine: sa.Engine, post: Post, actor: str, changes: Mapping[str, Any], note: str | None = None,
    now: datetime | None = None,
) -> list[Correction]:
    """Record one correction per changed field, and one audit row, in one transaction."""
    if not changes:
        raise ValueError("nothing to correct: give sentiment, topics or rumor")
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    now = now or datetime.now(timezone.utc)
    # data minimisation: the training rows need the text and context, not who wrote it
    minimal_author = post.author.model_copy(update={"id": None, "name": None})
    snapshot = post.model_copy(update={"author": minimal_author}).model_dump_json()
    ids = []
    with engine.begin() as c:
        for field in FIELDS:
            if field not in changes:
                continue
            res = c.execute(corrections.insert().values(
                post_id=post.id, field=field, value=json.dumps(changes[field], ensure_ascii=False),
                previous=json.dumps(_model_label(post, field), ensure_ascii=False), note=note, lang=post.lang,
                post=snapshot, actor=actor, at=now,
            ))
            ids.append(int(res.inserted_primary_key[0]))
        c.execute(audit_log.insert().values(
            at=now, actor=actor, action="post.correct", target=f"post:{post.id}",
            detail=json.dumps({"changes": dict(changes), "note": note}, ensure_ascii=False),
        ))
        rows = c.execute(sa.select(corrections).where(corrections.c.id.in_(ids)).order_by(corrections.c.id)).all()
    return [_row(r) for r in rows]


def for_post(engine: sa.Engine, post_id: str) -> list[Correction]:
    with engine.connect() as c:
        rows = c.execute(
            sa.select(corrections).where(corrections.c.post_id == post_id).order_by(corrections.c.id.desc())
        ).all()
    return [_row(r) for r in rows]


def in_force(history: list[Correction]) -> dict[str, Any]:
    """The newest value per field (history is newest first)."""
    out: dict[str, Any] = {}
    for h in history:
        out.setdefault(h.field, h.value)
    return out


def listing(engine: sa.Engine, *, after_id: int = 0, limit: int = 100, field: str | None = None) -> list[Correction]:
    q = sa.select(corrections).where(corrections.c.id > after_id).order_by(corrections.c.id).limit(limit)
    if field:
        q = q.where(corrections.c.field == field)
    with engine.connect() as c:
        return [_row(r) for r in c.execute(q).all()]


def classified_text(post: Post) -> str:
    """The text the worker hands the classifier (yuqing.worker): title + text unless the text
    already carries the title."""
    return f"{post.title}\n{post.text}" if post.title and post.title not in post.text else post.text


def export_rows(engine: sa.Engine, task: str, *, since: datetime | None = None, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """One training row per corrected post for `task`, with the label in force (the newest
    correction). Reads in id order, `batch` rows at a time; memory holds one row per post
    corrected for the task (the label in force must be known before a post is written)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}")
    newest: dict[str, Any] = {}  # post_id -> row mapping of its newest correction
    last = 0
    while True:
        q = (sa.select(corrections).where(corrections.c.field == task, corrections.c.id > last)
             .order_by(corrections.c.id).limit(batch))
        if since is not None:
            q = q.where(corrections.c.at >= since)
        with engine.connect() as c:
            rows = c.execute(q).all()
        if not rows:
            break
        for r in rows:
            newest[r.post_id] = r._mapping
            last = r.id
    for post_id, m in newest.items():
        post = Post.model_validate_json(m["post"])
        value = json.loads(m["value"])
        base = {"id": post_id, "lang": post.lang, "text": classified_text(post)}
        meta = {"source": EXPORT_SOURCE, "corrected_by": m["actor"], "corrected_at": m["at"].isoformat()}
        if task == "sentiment":
            yield {**base, "sentiment": value, **meta}
        elif task == "topics":
            yield {**base, "topics": list(value), **meta}
        else:
            e, a = post.engagement, post.author
            yield {
                **base,
                "rumor": 1 if value else 0,
                "time": int(post.published_at.timestamp()),
                "user": {"verified": a.verified, "followers": a.followers},
                "reposts_count": e.reposts,
                "comments_count": e.comments,
                "reposts": [],  # the cascade is not kept with the post
                **meta,
            }


def _write(rows: Iterator[dict[str, Any]], out: Any) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False))
        out.write("\n")
        n += 1
    return n


def export_labels_main(argv: list[str] | None = None) -> int:
    """`yuqing export-labels`: write analysts' corrections as training JSONL.

    Exit status 0 on success, 2 for a bad argument or configuration."""
    from yuqing.config import ConfigError, load_settings
    from yuqing.state.db import connect, migrate

    p = argparse.ArgumentParser(prog="yuqing export-labels", description=export_labels_main.__doc__.split("\n\n")[0])
    p.add_argument("--config", default=None, help="configuration file (default: $YUQING_CONFIG or ./config.yaml)")
    p.add_argument("--task", choices=[*TASKS, "all"], default="all",
                   help="which labels; 'all' writes <out>/sentiment.jsonl, rumor.jsonl, topics.jsonl")
    p.add_argument("--out", default="-", help="file ('-': standard output) or, for --task all, a directory")
    p.add_argument("--since", default=None, help="only corrections made at or after this ISO 8601 time (with zone)")
    args = p.parse_args(argv)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            print(f"export-labels: --since: not an ISO 8601 time: {args.since!r}", file=sys.stderr)
            return 2
        if since.tzinfo is None:
            print("export-labels: --since needs a zone, e.g. 2025-03-01T00:00:00+08:00", file=sys.stderr)
            return 2
    if args.task == "all" and args.out == "-":
        print("export-labels: --task all writes three files: give --out DIRECTORY", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config)
    except ConfigError as e:
        print(f"export-labels: {e}", file=sys.stderr)
        return 2
    engine = connect(settings.state_url)
    try:
        migrate(engine)
        if args.task == "all":
            out_dir = Path(args.out)
            out_dir.mkdir(parents=True, exist_ok=True)
            for task in TASKS:
                tmp = out_dir / f".{task}.jsonl.tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    n = _write(export_rows(engine, task, since=since), f)
                tmp.replace(out_dir / f"{task}.jsonl")
                print(f"{task}: {n} rows -> {out_dir / f'{task}.jsonl'}", file=sys.stderr)
        elif args.out == "-":
            n = _write(export_rows(engine, args.task, since=since), sys.stdout)
            print(f"{args.task}: {n} rows", file=sys.stderr)
        else:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                n = _write(export_rows(engine, args.task, since=since), f)
            tmp.replace(out)
            print(f"{args.task}: {n} rows -> {out}", file=sys.stderr)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":  # python -m api.corrections ... until the CLI wires it
    raise SystemExit(export_labels_main())
