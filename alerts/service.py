"""The detection job: every minute, per watchlist, count, judge, and keep one thread per incident.

    tick(settings, store, engine, now) -> TickReport          # what the scheduler calls
    run_detection(settings, store, engine, now) -> list[AlertChange]
    statement_effect(settings, store, alert, now) -> dict | None

`tick` runs every `alerts.interval` (from one leader: see docs/decisions.md): detection, then the
on-call escalation ladder (`alerts.oncall`), then the delivery outbox drain
(`alerts.delivery.Notifier.drain`). Counts come only through `Store.histogram`, `Store.count`,
`Store.stories`, `Store.search` and `Store.terms`, so the same code runs on SQLite and
Elasticsearch.

Per watchlist, and per configured topic within it (`alerts.topics`), one key names one incident
thread (`"<watchlist>/volume"`, `"<watchlist>/topic:<topic>"`). Every rule family feeds that
one thread (one incident = one thread, not one page per rule): volume (count-aware tail test),
rising negative share, a surge of high rumour-likelihood posts, a single high-reach post; the
highest level wins, official / national media pickup raises it, and the alert's `rule` and
`figures.rules` say which rule fired with what figures. With `count_by: clusters` (the
default) the volume, negative-share and rumour rules count story clusters (`Store.stories`),
not rows, and the figures give the posts (shares) beside the stories. At most one alert per key is unresolved at
any time (a unique index; a detector that loses the race judges again against the winner):

- **open** a new alert when a level rule holds and no thread for the key is active (a volume
  level must also be confirmed on `confirm_min` of the longer `confirm` horizons: the hours
  before the window, the same window last week; `alerts.detector.confirm`);
- **escalate** it when a higher level holds (the deadline for the first statement moves to
  `now + deadlines[new level]` if that is sooner; an acknowledged alert goes back to `open`,
  because a red incident must be acknowledged as red);
- **update** it at most every `update_every` while a rule still holds (the level stays at its
  peak: a story that cools from red to yellow has not become less serious for the statement);
- **resolve** it automatically when the volume over the last `resolve_after` is back within
  `resolve_ratio` x the baseline (the baseline frozen when the alert opened, so an incident
  that lasts hours is not measured against itself);
- **cool-down**: within `cooldown` of a resolution, a new firing of the same key reopens an
  auto-resolved thread (the incident came back: event `reopened`); after an officer resolved it,
  only a higher level than the resolved one opens a new alert — the officer's judgement holds
  for the cool-down, or until the snooze the officer set (`AlertStore.resolve(..., snooze=)`,
  for a known story) ends, whichever is later.

Coverage gaps are alerts too: an enabled source with no successful crawl for
`silence_after_intervals` x its interval opens a `silence` thread (key
`"source:<name>/silence"`, level `silence_level`, no statement deadline) that resolves when
the source succeeds again — "no alert" must never mean "no data".

Every change writes the alert row, an `alert_events` row (the SSE feed), an `audit_log` row
(actor `detector`), its outbox rows (`deliveries`) and rung 0 of the on-call ladder in one
transaction, and is returned as an `AlertChange`.
Evidence (representative posts, the chart series, top terms, sources, languages, sentiment
mix, rumour candidates) is gathered only when a change is written, not on every quiet minute.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from alerts.changes import AlertChange, ChangeKind
from alerts.detector import (
    Detection,
    RuleResult,
    back_to_baseline,
    baseline_len,
    combine,
    detect,
    judge_high_reach,
    judge_negative_share,
    level_rank,
    window_len,
)
from alerts.models import Evidence, EvidencePost, SeriesPoint
from alerts.oncall import TRIGGER_KINDS, run_escalations, start_ladder
from alerts.outbox import enqueue
from alerts.store import DETECTOR, dumps, iso, event_payload, insert_audit, insert_event, row_to_alert
from index.base import Query, Store
from yuqing.config import AlertsConfig, Settings, WatchlistConfig
from yuqing.records import Post
from yuqing.state.schema import alert_events, alerts, sources

log = logging.getLogger(__name__)

INTERVAL_NAMES: dict[int, str] = {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 86400: "1d"}
CHART_WINDOWS = 8  # the chart shows the last 8 windows (2 h at the default 15 min)

__all__ = ["AlertChange", "ChangeKind", "TickReport", "run_detection", "statement_effect", "tick"]


def alert_key(watchlist: str, rule: str) -> str:
    return f"{watchlist}/{rule}"


def thread_key(watchlist: str, topic: str | None) -> str:
    """The incident thread of a watchlist (`"<watchlist>/volume"`: the name predates the other
    rule families, which now feed the same thread) or of one topic within it."""
    return alert_key(watchlist, "volume") if topic is None else f"{watchlist}/topic:{topic}"


def _notify(conn: Connection, settings: Settings, alert_id: int, event_id: int, kind: str, level: str, now: datetime) -> None:
    """Outbox rows for this event, and rung 0 of the level's on-call ladder when the event
    starts a ladder run: in the caller's transaction, so a crash loses no notification."""
    extra = start_ladder(conn, settings, alert_id, event_id, level, now) if kind in TRIGGER_KINDS else []
    enqueue(conn, settings, alert_id=alert_id, event_id=event_id, kind=kind, level=level, now=now, extra_channels=extra)


def interval_name(cfg: AlertsConfig) -> str:
    return INTERVAL_NAMES[int(cfg.step.total_seconds())]


def floor_time(now: datetime, step: timedelta, tz: str) -> datetime:
    """Start of the calendar bucket of `step` containing `now`, in `tz` (as the index buckets
    it), returned in UTC. Only complete intervals are judged: the one still filling would
    always look like a dip."""
    local = now.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        return midnight.astimezone(timezone.utc)
    since = local - midnight
    return (midnight + (since // step) * step).astimezone(timezone.utc)


# --------------------------------------------------------------------------------------------
# counts from the store
# --------------------------------------------------------------------------------------------


@dataclass
class Counts:
    """Per-interval counts from `start` (UTC), one slot per interval, empty slots zero."""

    start: datetime
    step: timedelta
    total: list[int]
    negative: list[int]
    split: list[dict[str, int]]
    rumor: list[int] | None = None  # posts (stories) at or above `rumor_min`, when judged
    unit: str = "posts"  # or "stories" (see `fetch_cluster_counts`)
    # per-interval posts (every copy and repost) when `total` counts stories; else `total`
    posts: list[int] | None = None
    posts_negative: list[int] | None = None

    @property
    def shares(self) -> list[int]:
        """Posts per interval, whatever the detector counts: the chart's series."""
        return self.posts if self.posts is not None else self.total

    @property
    def shares_negative(self) -> list[int]:
        return self.posts_negative if self.posts_negative is not None else self.negative

    def slot_start(self, i: int) -> datetime:
        return self.start + i * self.step


def _scope(watchlist: str, topic: str | None, start: datetime, end: datetime) -> Query:
    return Query(watchlists=[watchlist], topics=[topic] if topic else None, start=start, end=end, size=0)


def fetch_counts(
    store: Store, watchlist: str, start: datetime, end: datetime, cfg: AlertsConfig, tz: str, topic: str | None = None
) -> Counts:
    """Per-interval post counts (total, negative, and rumour when the rumour rule is on)."""
    step = cfg.step
    n = round((end - start) / step)
    out = Counts(start=start, step=step, total=[0] * n, negative=[0] * n, split=[{} for _ in range(n)])
    q = _scope(watchlist, topic, start, end)
    for b in store.histogram(q, interval_name(cfg), tz, split_by="sentiment"):
        i = int((b.start.astimezone(timezone.utc) - start) // step)
        if 0 <= i < n:
            out.total[i] += b.count
            out.negative[i] += int(b.split.get("negative", 0))
            for k, v in b.split.items():
                out.split[i][k] = out.split[i].get(k, 0) + int(v)
    if cfg.rumor_levels:
        out.rumor = [0] * n
        for b in store.histogram(q.model_copy(update={"rumor_min": cfg.rumor_min}), interval_name(cfg), tz):
            i = int((b.start.astimezone(timezone.utc) - start) // step)
            if 0 <= i < n:
                out.rumor[i] += b.count
    return out


def block_edges(start: datetime, end: datetime, cfg: AlertsConfig) -> list[datetime]:
    """Edges of the window-long blocks the detector judges, aligned to `end` (the newest block
    is the window; a leading remainder shorter than a window is its own, partial range)."""
    edges = [end]
    while edges[-1] - cfg.window >= start:
        edges.append(edges[-1] - cfg.window)
    if edges[-1] > start:
        edges.append(start)
    return edges[::-1]


def fetch_cluster_counts(
    store: Store, watchlist: str, start: datetime, end: datetime, cfg: AlertsConfig, tz: str, topic: str | None = None
) -> Counts:
    """Counts of story clusters (posts sharing a `cluster_id`, which the inbox gives every
    near-duplicate copy; a post without one is its own story), exact on every backend through
    `Store.stories`. A story counts once per window-long block (blocks aligned to `end`, as the
    detector cuts the baseline); each block's count is stored in the block's last interval, so
    every sum the detector takes over whole blocks (window, baseline blocks, the previous
    window) is a number of distinct stories. A story is negative (rumour) when any of its posts
    in the block is. The per-interval post counts (`posts`, `split`: what the chart shows) come
    from the histogram: a thousand copies are one story with a thousand shares."""
    posts = fetch_counts(store, watchlist, start, end, cfg.model_copy(update={"rumor_levels": []}), tz, topic)
    step = cfg.step
    n = len(posts.total)
    edges = block_edges(start, end, cfg)
    q = _scope(watchlist, topic, start, end)
    out = Counts(
        start=start, step=step, total=[0] * n, negative=[0] * n, split=posts.split, rumor=[0] * n, unit="stories",
        posts=posts.total, posts_negative=posts.negative,
    )
    filters: list[tuple[list[int], Query]] = [(out.total, q), (out.negative, q.model_copy(update={"sentiments": ["negative"]}))]
    if cfg.rumor_levels:
        assert out.rumor is not None
        filters.append((out.rumor, q.model_copy(update={"rumor_min": cfg.rumor_min})))
    for target, fq in filters:
        for sc in store.stories(fq, edges):
            i = round((sc.end - start) / step) - 1
            if 0 <= i < n:
                target[i] += sc.stories
    if not cfg.rumor_levels:
        out.rumor = None
    return out


# --------------------------------------------------------------------------------------------
# the decision (pure)
# --------------------------------------------------------------------------------------------

Action = Literal["none", "open", "reopen", "escalate", "update", "resolve", "suppress"]


@dataclass(frozen=True)
class ActiveView:
    id: int
    level: str
    state: str
    last_event_at: datetime


@dataclass(frozen=True)
class ResolvedView:
    id: int
    level: str
    resolved_at: datetime
    auto: bool  # resolved by the detector (volume back to baseline), not by an officer
    snoozed_until: datetime | None = None  # an officer snoozed this known story until then


def decide(
    det: Detection,
    quiet: bool,
    active: ActiveView | None,
    last_resolved: ResolvedView | None,
    now: datetime,
    cfg: AlertsConfig,
) -> Action:
    """What to do with this key now; see the module docstring for the rules."""
    if active is not None:
        if det.fired and level_rank(det.level) > level_rank(active.level):
            return "escalate"
        if det.fired:
            return "update" if now - active.last_event_at >= cfg.update_every else "none"
        return "resolve" if quiet else "none"
    if not det.fired:
        return "none"
    if last_resolved is not None:
        in_cooldown = now - last_resolved.resolved_at < cfg.cooldown
        if last_resolved.auto and in_cooldown:
            return "reopen"
        snoozed = last_resolved.snoozed_until is not None and now < last_resolved.snoozed_until
        if not last_resolved.auto and (in_cooldown or snoozed):
            # the officer's judgement holds; only a higher level breaks through
            return "open" if level_rank(det.level) > level_rank(last_resolved.level) else "suppress"
    return "open"


# --------------------------------------------------------------------------------------------
# evidence and title
# --------------------------------------------------------------------------------------------


def _reach(p: Post) -> int:
    return (p.author.followers or 0) + p.engagement.total()


def _negative_score(p: Post) -> float | None:
    if p.classification is None:
        return None
    return float(p.classification.sentiment_scores.get("negative", 1.0 if p.classification.sentiment == "negative" else 0.0))


def _evidence_post(p: Post, why: list[str]) -> EvidencePost:
    c = p.classification
    text = p.text if len(p.text) <= 280 else p.text[:279] + "…"
    return EvidencePost(
        id=p.id,
        why=why,
        url=p.url,
        source=p.source,
        source_tier=p.source_tier.value,
        platform=p.platform,
        lang=p.lang,
        published_at=p.published_at,
        title=p.title,
        text=text,
        followers=p.author.followers,
        engagement=p.engagement.total(),
        reach=_reach(p),
        sentiment=c.sentiment if c else None,
        negative_score=_negative_score(p),
        rumor=c.rumor if c else None,
        cluster_size=p.cluster_size,
    )


def _scan(store: Store, q: Query, limit: int) -> list[Post]:
    """Up to `limit` posts for `q`, following the cursor."""
    out: list[Post] = []
    cursor: str | None = None
    while len(out) < limit:
        page = store.search(q.model_copy(update={"size": min(1000, limit - len(out)), "cursor": cursor}))
        out.extend(h.post for h in page.hits)
        if not page.hits or not page.next_cursor:
            break
        cursor = page.next_cursor
    return out


def _dedupe(posts: Sequence[Post]) -> list[Post]:
    """One post per story cluster, in the given order: three copies of one text are one story.
    The kept post carries the largest `cluster_size` seen among its copies (each copy carries
    the cluster's size when it arrived), so the evidence shows the story's shares so far."""
    kept: dict[str, Post] = {}
    size: dict[str, int] = {}
    for p in posts:
        c = p.cluster_id or p.id
        kept.setdefault(c, p)
        size[c] = max(size.get(c, 1), p.cluster_size)
    return [p if p.cluster_size == size[c] else p.model_copy(update={"cluster_size": size[c]}) for c, p in kept.items()]


def _story_terms(terms: list[tuple[str, int]], names: Sequence[str]) -> list[tuple[str, int]]:
    from yuqing.text import fold

    folded = [fold(n) for n in names]
    return [(t, c) for t, c in terms if not any(fold(t) in n for n in folded)]


def gather_evidence(
    store: Store, watchlist: str, counts: Counts, det: Detection, cfg: AlertsConfig, end: datetime, topic: str | None = None,
    names: Sequence[str] = (),
) -> Evidence:
    """Representative posts (one per story cluster), chart series and aggregates for the
    judged window. `names`: the watchlist's own terms; words inside them ("兰山", "务局" of
    兰山市水务局) are in every matching post and say nothing about the story, so they are left
    out of the top terms."""
    wl = window_len(cfg)
    win_start = end - cfg.window
    base = _scope(watchlist, topic, win_start, end).model_copy(update={"size": 20})
    n = cfg.evidence_posts
    picks: dict[str, tuple[Post, list[str]]] = {}

    def pick(posts: Sequence[Post], why: str) -> None:
        # keyed by story: the earliest copy of a story already shown for its reach is the same story
        for p in _dedupe(posts)[:n]:
            key = p.cluster_id or p.id
            if key in picks:
                shown, whys = picks[key]
                if why not in whys:
                    whys.append(why)
                if p.cluster_size > shown.cluster_size:
                    picks[key] = (shown.model_copy(update={"cluster_size": p.cluster_size}), whys)
            else:
                picks[key] = (p, [why])

    scanned = _scan(store, base.model_copy(update={"sort": "engagement"}), cfg.evidence_scan)
    pick(sorted(scanned, key=lambda p: (-_reach(p), p.published_at, p.id)), "highest_reach")
    # earliest: the first interval of the window that holds posts is small; read all of it
    first = next((i for i in range(len(counts.shares) - wl, len(counts.shares)) if counts.shares[i]), None)
    if first is not None:
        s = counts.slot_start(first)
        early = _scan(store, base.model_copy(update={"start": s, "end": s + cfg.step, "sort": "time"}), cfg.evidence_scan)
        pick(sorted(early, key=lambda p: (p.published_at, p.id)), "earliest")
    negs = _scan(store, base.model_copy(update={"sentiments": ["negative"], "sort": "engagement"}), cfg.evidence_scan)
    pick(sorted(negs, key=lambda p: (-(_negative_score(p) or 0.0), -_reach(p), p.id)), "most_negative")
    rumors = _scan(store, base.model_copy(update={"rumor_min": cfg.rumor_candidate_min, "sort": "rumor"}), 4 * n)
    rumor_posts = _dedupe(sorted(rumors, key=lambda p: (-(p.classification.rumor if p.classification else 0.0), p.id)))[:n]

    posts = [_evidence_post(p, why) for p, why in picks.values()]
    chart = min(len(counts.shares), CHART_WINDOWS * wl)
    first_chart = len(counts.total) - chart
    sentiment: dict[str, int] = {}
    for sp in counts.split[-wl:]:
        for k, v in sp.items():
            sentiment[k] = sentiment.get(k, 0) + v
    if counts.posts is None:
        per_interval = det.figures.expected / wl
    else:  # the chart is in posts: the usual posts per interval over the baseline
        before = counts.shares[: len(counts.shares) - wl]
        per_interval = sum(before) / len(before) if before else 0.0
    return Evidence(
        post_ids=[p.id for p in posts],
        posts=posts,
        rumor_candidates=[_evidence_post(p, ["rumor_candidate"]) for p in rumor_posts],
        interval=interval_name(cfg),
        expected_per_interval=round(per_interval, 6),
        series=[
            SeriesPoint(t=counts.slot_start(i), total=counts.shares[i], negative=counts.shares_negative[i])
            for i in range(first_chart, len(counts.total))
        ],
        window_start=win_start,
        window_end=end,
        top_terms=_story_terms(store.terms(base, "term", 10 + 4 * len(names)), names)[:10],
        sources=store.terms(base, "source", 5),
        languages=store.terms(base, "lang", 5),
        sentiment=sentiment,
        source_tiers=store.terms(base, "source_tier", 4),
    )


def _minutes(d: timedelta) -> str:
    m = int(d.total_seconds() // 60)
    return f"{m} min" if m < 120 else f"{m // 60} h"


def make_title(watchlist: str, det: Detection, evidence: Evidence, cfg: AlertsConfig, counts: Counts) -> str:
    """The incident in one line: volume against the usual (stories, with the posts that carry
    them), negativity, what it is about, and the rule that set the level when it is not volume."""
    f = det.figures
    lead = f"{watchlist}: " if det.rule == "volume" or det.level is None else f"{watchlist}: {det.rule.replace('_', ' ')} rule; "
    volume = f"{f.observed} {counts.unit}"
    if counts.posts is not None:
        volume += f" ({sum(counts.shares[-window_len(cfg):])} posts)"
    parts = [f"{lead}{volume} in {_minutes(cfg.window)}, {f.ratio:.1f}× the usual {f.expected:.1f}"]
    if f.negative_share is not None:
        parts.append(f"{round(100 * f.negative_share)}% negative")
    if evidence.top_terms:
        parts.append("about " + ", ".join(t for t, _ in evidence.top_terms[:3]))
    return "; ".join(parts)


def _figures(det: Detection, cfg: AlertsConfig, end: datetime, pinned: float | None, peak: int | None, counts: Counts) -> dict[str, Any]:
    """The alert's `figures`: the volume figures at the top level (in `unit`: posts or stories;
    with stories, `posts` / `posts_negative` are every copy and repost in the window, so a
    thousand copies read as one story with a thousand shares), every rule family's verdict
    under `rules`."""
    f = det.figures.as_dict()
    wl = window_len(cfg)
    shares = {"posts": sum(counts.shares[-wl:]), "posts_negative": sum(counts.shares_negative[-wl:])}
    if det.rules:
        f["rules"] = {r.rule: r.as_dict() for r in det.rules}
        f["rules"]["volume"].update(det.figures.as_dict())
        f["rules"]["volume"].update(unit=counts.unit, **shares)
        if det.confirmation is not None:
            f["rules"]["volume"]["confirm"] = det.confirmation.as_dict()
    f["pickups"] = dict(det.pickups)
    f["unit"] = counts.unit
    f.update(shares)
    f.update(
        rule=det.rule,
        fired_level=det.level,
        reasons=list(det.reasons),
        explain=det.explain(),
        window=_minutes(cfg.window),
        window_start=iso(end - cfg.window),
        window_end=iso(end),
        pinned_expected=pinned if pinned is not None else det.figures.expected,
        peak_observed=max(peak or 0, det.figures.observed),
    )
    return f


# --------------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------------


def _active_row(conn: Connection, key: str, lock: bool = False) -> Any:
    q = sa.select(alerts).where(alerts.c.key == key, alerts.c.state != "resolved").order_by(alerts.c.id.desc()).limit(1)
    return conn.execute(q.with_for_update() if lock else q).first()


def _last_event_at(conn: Connection, alert_id: int) -> datetime:
    at = conn.execute(
        sa.select(alert_events.c.at)
        .where(alert_events.c.alert_id == alert_id, alert_events.c.actor == DETECTOR)
        .order_by(alert_events.c.id.desc())
        .limit(1)
    ).scalar()
    return at if at is not None else datetime.min.replace(tzinfo=timezone.utc)


def _last_resolved(conn: Connection, key: str) -> ResolvedView | None:
    row = conn.execute(
        sa.select(alerts)
        .where(alerts.c.key == key, alerts.c.state == "resolved")
        .order_by(alerts.c.resolved_at.desc(), alerts.c.id.desc())
        .limit(1)
    ).first()
    if row is None or row.resolved_at is None:
        return None
    ev = conn.execute(
        sa.select(alert_events.c.actor, alert_events.c.payload)
        .where(alert_events.c.alert_id == row.id, alert_events.c.kind == "resolved")
        .order_by(alert_events.c.id.desc())
        .limit(1)
    ).first()
    snooze = json.loads(ev.payload).get("snooze_until") if ev is not None else None
    return ResolvedView(
        id=row.id,
        level=row.level,
        resolved_at=row.resolved_at,
        auto=ev is not None and ev.actor == DETECTOR,
        snoozed_until=datetime.fromisoformat(snooze) if snooze else None,
    )


def run_detection(settings: Settings, store: Store, engine: Engine, now: datetime) -> list[AlertChange]:
    """Judge every watchlist (and each of its configured topics) at `now` (aware) and persist
    what changed, with the outbox rows of every change in the same transaction. A watchlist
    whose store queries fail is logged and skipped; the others still run (one broken query
    must not silence every alert)."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    changes: list[AlertChange] = []
    for wl in settings.watchlists:
        cfg = settings.alerts.for_watchlist(wl.name)
        for topic in [None, *cfg.topics]:
            try:
                change = detect_watchlist(settings, store, engine, now, wl, topic=topic)
            except Exception:  # noqa: BLE001 - logged with its traceback, the next watchlist runs
                log.exception("alert detection failed for watchlist %s%s", wl.name, f" topic {topic}" if topic else "")
                continue
            if change is not None:
                changes.append(change)
    try:
        changes.extend(detect_silent_sources(settings, engine, now))
    except Exception:  # noqa: BLE001 - coverage checks must not stop volume alerts
        log.exception("coverage (silent source) check failed")
    return changes


@dataclass
class TickReport:
    """What one tick did: the detector's changes, the ladder's pages, the deliveries sent or
    failed in this tick's drain."""

    changes: list[AlertChange] = field(default_factory=list)
    pages: list[AlertChange] = field(default_factory=list)
    deliveries: list[Any] = field(default_factory=list)  # alerts.delivery.Delivery


def tick(settings: Settings, store: Store, engine: Engine, now: datetime, *, notifier: Any = None) -> TickReport:
    """The scheduler's one call every `alerts.interval`: detect (alert changes and their
    outbox rows in one transaction each), escalate unacknowledged alerts up the on-call ladder,
    then drain the outbox. Each step runs even if an earlier one failed, because a broken index
    must not stop pages already owed (and the reverse). `notifier`: an `alerts.delivery.Notifier`
    (default: one with the service's acknowledge-link key)."""
    report = TickReport()
    try:
        report.changes = run_detection(settings, store, engine, now)
    except Exception:  # noqa: BLE001 - logged; escalation and delivery still run
        log.exception("alert detection failed")
    try:
        report.pages = run_escalations(settings, engine, now)
    except Exception:  # noqa: BLE001
        log.exception("alert escalation failed")
    if settings.channels:
        if notifier is None:
            from alerts.delivery import Notifier
            from alerts.links import ack_key

            notifier = Notifier(settings, engine, ack_key=ack_key(settings))
        try:
            report.deliveries = notifier.drain(now)
        except Exception:  # noqa: BLE001
            log.exception("alert delivery drain failed")
    return report


# --------------------------------------------------------------------------------------------
# coverage gaps: a source that goes silent
# --------------------------------------------------------------------------------------------


def detect_silent_sources(settings: Settings, engine: Engine, now: datetime) -> list[AlertChange]:
    """One `silence` thread per enabled source with no successful crawl for
    `silence_after_intervals` x its interval; resolved when it succeeds again. A source that has
    never run is not judged (it may just have been added); one that has run and never
    succeeded is silent since its first run. No statement deadline: the gap is ours to fix."""
    cfg = settings.alerts
    out: list[AlertChange] = []
    with engine.connect() as conn:
        health = {r.name: r for r in conn.execute(sa.select(sources))}
    for src in settings.sources:
        row = health.get(src.name)
        if not src.enabled or row is None or row.last_run is None:
            continue
        limit = src.interval * cfg.silence_after_intervals
        since = row.last_success
        silent = (now - since > limit) if since is not None else (row.runs >= cfg.silence_after_intervals)
        key = alert_key(f"source:{src.name}", "silence")
        try:
            with engine.begin() as conn:
                active = _active_row(conn, key, lock=True)
                if silent and active is None:
                    out.append(_open_silence(conn, settings, key, src.name, row, limit, now))
                elif not silent and active is not None:
                    fig = json.loads(active.figures)
                    fig["recovered_at"] = iso(since) if since else None
                    conn.execute(
                        sa.update(alerts).where(alerts.c.id == active.id).values(state="resolved", resolved_at=now, updated_at=now, figures=dumps(fig))
                    )
                    out.append(_event(conn, settings, active.id, "resolved", key, "silence", None, active.level, now, {"reason": "source crawled successfully again", "auto": True}))
        except IntegrityError:  # another detector opened the same gap first: one thread it is
            log.info("%s: opened concurrently by another detector", key)
    # a source removed or disabled while silent: its gap is no longer ours to watch
    watched = {alert_key(f"source:{s.name}", "silence") for s in settings.sources if s.enabled}
    with engine.begin() as conn:
        stale = conn.execute(
            sa.select(alerts.c.id, alerts.c.key, alerts.c.level).where(
                alerts.c.rule == "silence", alerts.c.state != "resolved", alerts.c.key.not_in(watched) if watched else sa.true()
            )
        ).all()
        for a in stale:
            conn.execute(sa.update(alerts).where(alerts.c.id == a.id).values(state="resolved", resolved_at=now, updated_at=now))
            out.append(_event(conn, settings, a.id, "resolved", a.key, "silence", None, a.level, now, {"reason": "source disabled or removed", "auto": True}))
    return out


def _open_silence(conn: Connection, settings: Settings, key: str, name: str, row: Any, limit: timedelta, now: datetime) -> AlertChange:
    cfg = settings.alerts
    since = row.last_success
    lines = (row.last_error or "").strip().splitlines()
    error = lines[0][:200] if lines else None
    when = f"since {iso(since)}" if since else "since it was added"
    title = f"source {name} silent: no successful crawl {when} — a coverage gap, not a quiet story"
    if error:
        title += f" (last error: {error})"
    figures = {
        "rule": "silence",
        "source": name,
        "last_success": iso(since) if since else None,
        "last_run": iso(row.last_run) if row.last_run else None,
        "last_error": row.last_error,
        "runs": row.runs,
        "errors": row.errors,
        "silent_for_s": (now - since).total_seconds() if since else None,
        "limit_s": limit.total_seconds(),
        "explain": f"silence rule {cfg.silence_level}: no successful crawl for more than {_minutes(limit)}",
    }
    evidence = Evidence(interval="-", expected_per_interval=0.0, window_start=since or row.last_run, window_end=now)
    res = conn.execute(
        sa.insert(alerts).values(
            key=key, state="open", level=cfg.silence_level, rule="silence", watchlist=None, title=title,
            figures=dumps(figures), evidence=dumps(evidence.model_dump(mode="json")), opened_at=now, updated_at=now, deadline_at=None,
        )
    )
    alert_id = int(res.inserted_primary_key[0])
    return _event(conn, settings, alert_id, "opened", key, "silence", None, None, now, {"explain": figures["explain"]})


def _event(
    conn: Connection, settings: Settings, alert_id: int, kind: ChangeKind, key: str, rule: str, watchlist: str | None,
    previous_level: str | None, now: datetime, extra: dict[str, Any],
) -> AlertChange:
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
    event_id = insert_event(conn, alert_id, kind, now, DETECTOR, event_payload(row, previous_level=previous_level, **extra))
    insert_audit(conn, now, DETECTOR, f"alert.{kind}", f"alert:{alert_id}", {"level": row.level, **extra})
    _notify(conn, settings, alert_id, event_id, kind, row.level, now)
    return AlertChange(
        kind=kind, alert_id=alert_id, event_id=event_id, key=key, rule=rule, watchlist=watchlist, level=row.level,
        previous_level=previous_level, at=now, title=row.title, alert=row_to_alert(row, with_evidence=True),
    )


# --------------------------------------------------------------------------------------------
# one watchlist (or one topic of it)
# --------------------------------------------------------------------------------------------


def _pickups(store: Store, scope: Query, cfg: AlertsConfig) -> dict[str, int]:
    if not cfg.pickup_raise or not cfg.pickup_tiers:
        return {}
    tiers = {t.value for t in cfg.pickup_tiers}
    return {k: v for k, v in store.terms(scope, "source_tier", 4) if k in tiers and v}


def _volume(store: Store, scope: Query, stories: bool) -> int:
    """Posts, or distinct stories, in `scope`'s time range."""
    if not stories:
        return store.count(scope)
    assert scope.start is not None and scope.end is not None
    return store.stories(scope, [scope.start, scope.end])[0].stories


def confirm_references(store: Store, watchlist: str, topic: str | None, counts: Counts, cfg: AlertsConfig, end: datetime) -> list[float]:
    """The reference count of each `cfg.confirm` window (see `alerts.detector.confirm`): the
    `span` before the judged window, or the window `lag` ago, in the unit the detector counts.
    A span inside the fetched counts is summed from them when that is exact (posts, or whole
    blocks of stories); anything else is asked of the store."""
    wl, n = window_len(cfg), len(counts.total)
    stories = counts.unit == "stories"
    out: list[float] = []
    for w in cfg.confirm:
        if w.span is not None:
            sl = round(w.span / cfg.step)
            if wl + sl <= n and (not stories or sl % wl == 0):
                out.append(float(sum(counts.total[n - wl - sl : n - wl])))
            else:
                out.append(float(_volume(store, _scope(watchlist, topic, end - cfg.window - w.span, end - cfg.window), stories)))
        else:
            assert w.lag is not None
            out.append(float(_volume(store, _scope(watchlist, topic, end - w.lag - cfg.window, end - w.lag), stories)))
    return out


def judge(
    store: Store, watchlist: str, topic: str | None, counts: Counts, cfg: AlertsConfig, end: datetime,
    *, previous: int, seasonal: list[float] | None, pinned: float | None, confirm_refs: list[float] | None = None,
) -> Detection:
    """Every rule family on one window: volume (count-aware tail test against the seasonal,
    robust baseline), negative share against the baseline's share, a surge of high rumour
    likelihood posts (the same tail test on their own baseline), a single high-reach post;
    then official / national media pickup raises the level. See `alerts.detector.combine`."""
    wlen, blen = window_len(cfg), baseline_len(cfg)
    det = detect(
        counts.total[-wlen:], counts.negative[-wlen:], counts.total[:blen], cfg,
        rule="volume", previous=previous, seasonal=seasonal, pinned_expected=pinned, confirm_refs=confirm_refs,
    )
    others: list[RuleResult] = []
    if cfg.negative_share:
        others.append(
            judge_negative_share(
                sum(counts.negative[-wlen:]), sum(counts.total[-wlen:]), sum(counts.negative[:blen]), sum(counts.total[:blen]), cfg.negative_share
            )
        )
    if cfg.rumor_levels and counts.rumor is not None:
        r = detect(counts.rumor[-wlen:], [0] * wlen, counts.rumor[:blen], cfg.model_copy(update={"levels": cfg.rumor_levels}), rule="rumor")
        fig = r.figures
        others.append(
            RuleResult("rumor", r.level, r.reasons, {
                "observed": fig.observed, "expected": fig.expected, "ratio": fig.ratio, "p_value": fig.p_value,
                "score": fig.score, "rumor_min": cfg.rumor_min, "unit": counts.unit,
            })
        )
    window_scope = _scope(watchlist, topic, end - cfg.window, end)
    if cfg.high_reach:
        scanned = _scan(store, window_scope.model_copy(update={"sort": "engagement"}), cfg.evidence_scan)
        others.append(
            judge_high_reach(
                [{"id": p.id, "source": p.source, "followers": p.author.followers, "reach": _reach(p), "negative_score": _negative_score(p)} for p in scanned],
                cfg.high_reach,
            )
        )
    return combine(det, others, _pickups(store, window_scope, cfg), cfg.pickup_raise)


def detect_watchlist(
    settings: Settings, store: Store, engine: Engine, now: datetime, wl: WatchlistConfig, topic: str | None = None
) -> AlertChange | None:
    """Judge one watchlist's (or one topic's) incident thread at `now` and write what changed.
    When another detector opens the same thread between our read and our write (the unique
    index on unresolved keys refuses our insert), the state is read again and judged again
    against that thread — an update or escalation of it, never a duplicate or a crash."""
    cfg = settings.alerts.for_watchlist(wl.name)
    tz = settings.timezone
    key = thread_key(wl.name, topic)
    end = floor_time(now, cfg.step, tz)
    start = end - cfg.window - cfg.baseline
    stories = cfg.count_by == "clusters"
    if stories:
        counts = fetch_cluster_counts(store, wl.name, start, end, cfg, tz, topic)
    else:
        counts = fetch_counts(store, wl.name, start, end, cfg, tz, topic)
    seasonal: list[float] | None = None
    if cfg.seasonal_days:
        seasonal = [float(_volume(store, _scope(wl.name, topic, end - timedelta(days=d) - cfg.window, end - timedelta(days=d)), stories)) for d in range(1, cfg.seasonal_days + 1)]
    wlen = window_len(cfg)
    evidence: Evidence | None = None
    refs: list[float] | None = None
    for attempt in range(2):
        with engine.connect() as conn:
            active_row = _active_row(conn, key)
            active = (
                ActiveView(active_row.id, active_row.level, active_row.state, _last_event_at(conn, active_row.id))
                if active_row is not None
                else None
            )
            last_resolved = _last_resolved(conn, key) if active is None else None
        old_figures: dict[str, Any] = json.loads(active_row.figures) if active_row is not None else {}
        # a new thread must be confirmed on the longer horizons; an open one is already confirmed
        if active is None and cfg.confirm_min and refs is None:
            refs = confirm_references(store, wl.name, topic, counts, cfg, end)
        det = judge(
            store, wl.name, topic, counts, cfg, end,
            previous=sum(counts.total[-2 * wlen : -wlen]), seasonal=seasonal, pinned=old_figures.get("pinned_expected"),
            confirm_refs=refs if active is None else None,
        )
        if active is None and det.confirmation is not None and det.confirmation.held and not det.confirmation.confirmed:
            log.info("%s: %s", key, det.explain())
        ra = round(cfg.resolve_after / cfg.step)
        if ra <= len(counts.total) and not stories:
            recent = sum(counts.total[-ra:])
        else:  # stories: distinct over the whole span (block sums would count a story per block)
            recent = _volume(store, _scope(wl.name, topic, end - cfg.resolve_after, end), stories)
        assert det.expectation is not None
        quiet = back_to_baseline(recent, ra, det.expectation, cfg)
        action = decide(det, quiet, active, last_resolved, now, cfg)
        if action in ("none", "suppress"):
            if action == "suppress":
                log.info("%s: %s within the cool-down after an officer resolved alert %s; not re-raised", key, det.explain(), last_resolved and last_resolved.id)
            return None
        if action != "resolve" and evidence is None:
            evidence = gather_evidence(store, wl.name, counts, det, cfg, end, topic, names=wl.terms)
        try:
            with engine.begin() as conn:
                current = _active_row(conn, key, lock=True)
                if (current.id if current is not None else None) != (active.id if active else None) or (
                    current is not None and active_row is not None and (current.level, current.state) != (active_row.level, active_row.state)
                ):
                    log.info("%s changed while it was judged; it is judged again next run", key)
                    return None
                return _write(
                    conn, settings, action, key, wl, det, evidence, cfg, now, end, current, last_resolved, old_figures,
                    label=wl.name if topic is None else f"{wl.name} · {topic}", counts=counts,
                )
        except IntegrityError:
            if attempt:
                raise
            log.info("%s: another detector opened this thread first; judging against it", key)
    return None


def _write(
    conn: Connection,
    settings: Settings,
    action: Action,
    key: str,
    wl: WatchlistConfig,
    det: Detection,
    evidence: Evidence | None,
    cfg: AlertsConfig,
    now: datetime,
    end: datetime,
    current: Any,
    last_resolved: ResolvedView | None,
    old_figures: dict[str, Any],
    *,
    label: str,
    counts: Counts,
) -> AlertChange:
    previous_level: str | None = current.level if current is not None else None
    values: dict[str, Any] = {"updated_at": now}
    if action == "resolve":
        assert current is not None
        alert_id = current.id
        fig = dict(old_figures)
        fig["resolved_figures"] = det.figures.as_dict()
        values.update(state="resolved", resolved_at=now, figures=dumps(fig))
        conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))
        kind: ChangeKind = "resolved"
        extra = {"reason": "volume back to baseline", "auto": True, "figures": det.figures.as_dict()}
    else:
        assert evidence is not None and det.level is not None
        title = make_title(label, det, evidence, cfg, counts)
        deadline = cfg.deadlines.get(det.level)  # type: ignore[call-overload]
        conference = cfg.press_conference.get(det.level)  # type: ignore[call-overload]
        if action == "open":
            fig = _figures(det, cfg, end, None, None, counts)
            res = conn.execute(
                sa.insert(alerts).values(
                    key=key,
                    state="open",
                    level=det.level,
                    rule=det.rule,
                    watchlist=wl.name,
                    title=title,
                    figures=dumps(fig),
                    evidence=dumps(evidence.model_dump(mode="json")),
                    opened_at=now,
                    updated_at=now,
                    deadline_at=(now + deadline) if deadline is not None else None,
                )
            )
            alert_id = int(res.inserted_primary_key[0])
            kind = "opened"
            previous_level = None
        elif action == "reopen":
            assert last_resolved is not None
            alert_id = last_resolved.id
            row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
            prior = json.loads(row.figures)
            level = det.level if level_rank(det.level) > level_rank(row.level) else row.level
            fig = _figures(det, cfg, end, prior.get("pinned_expected"), prior.get("peak_observed"), counts)
            new_deadline = row.deadline_at
            if deadline is not None and level == det.level:
                cand = now + deadline
                new_deadline = min(new_deadline, cand) if new_deadline else cand
            values.update(
                state="open", level=level, rule=det.rule if level == det.level else row.rule, title=title, figures=dumps(fig),
                evidence=dumps(evidence.model_dump(mode="json")), resolved_at=None, acknowledged_at=None, acknowledged_by=None,
                deadline_at=new_deadline,
            )
            if row.published_at is not None and row.press_conference_at is None and conference is not None and level == det.level:
                values["press_conference_at"] = row.opened_at + conference
            conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))
            kind = "reopened"
            previous_level = row.level
        else:  # escalate | update
            assert current is not None
            alert_id = current.id
            fig = _figures(det, cfg, end, old_figures.get("pinned_expected"), old_figures.get("peak_observed"), counts)
            values.update(title=title, figures=dumps(fig), evidence=dumps(evidence.model_dump(mode="json")))
            if action == "escalate":
                values["level"] = det.level
                values["rule"] = det.rule
                if deadline is not None:
                    cand = now + deadline
                    values["deadline_at"] = min(current.deadline_at, cand) if current.deadline_at else cand
                if current.state == "acknowledged":
                    values.update(state="open", acknowledged_at=None, acknowledged_by=None)
                # a statement is out and the incident now needs a press conference: start its countdown
                if current.published_at is not None and current.press_conference_at is None and conference is not None:
                    values["press_conference_at"] = current.opened_at + conference
                kind = "escalated"
            else:
                kind = "updated"
            conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))
        extra = {"figures": det.figures.as_dict(), "explain": det.explain(), "previous_level": previous_level, "fired_rule": det.rule}
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
    event_id = insert_event(conn, alert_id, kind, now, DETECTOR, event_payload(row, **extra))
    insert_audit(conn, now, DETECTOR, f"alert.{kind}", f"alert:{alert_id}", {"level": row.level, "explain": det.explain()})
    _notify(conn, settings, alert_id, event_id, kind, row.level, now)
    return AlertChange(
        kind=kind,
        alert_id=alert_id,
        event_id=event_id,
        key=key,
        rule=row.rule,
        watchlist=wl.name,
        level=row.level,
        previous_level=previous_level,
        at=now,
        title=row.title,
        alert=row_to_alert(row, with_evidence=True),
    )


# --------------------------------------------------------------------------------------------
# after the statement: did it work?
# --------------------------------------------------------------------------------------------


def statement_effect(settings: Settings, store: Store, alert: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """Volume, negative share and rumour share in the `statement_effect_window` before the
    statement was published and in the same span after it (or as much of it as has passed),
    per hour so the two sides compare even while the "after" side is still filling. None when
    no statement is recorded. The figures are what the index holds; no causal claim is made."""
    if not alert.get("published_at") or not alert.get("watchlist"):
        return None
    cfg = settings.alerts.for_watchlist(alert["watchlist"])
    at = datetime.fromisoformat(alert["published_at"])
    span = cfg.statement_effect_window
    after_end = min(now, at + span)
    if after_end <= at:
        after_end = at + timedelta(seconds=1)

    def side(start: datetime, end: datetime) -> dict[str, Any]:
        q = Query(watchlists=[alert["watchlist"]], start=start, end=end, size=0)
        total = store.count(q)
        neg = store.count(q.model_copy(update={"sentiments": ["negative"]}))
        rum = store.count(q.model_copy(update={"rumor_min": cfg.rumor_min}))
        hours = (end - start) / timedelta(hours=1)
        return {
            "start": iso(start), "end": iso(end), "posts": total, "per_hour": round(total / hours, 3) if hours else None,
            "negative_share": round(neg / total, 4) if total else None, "rumor_share": round(rum / total, 4) if total else None,
        }

    before, after = side(at - span, at), side(at, after_end)
    delta = {
        k: (round(after[k] - before[k], 4) if after[k] is not None and before[k] is not None else None)
        for k in ("per_hour", "negative_share", "rumor_share")
    }
    return {"published_at": alert["published_at"], "before": before, "after": after, "change": delta, "complete": now >= at + span}
