"""The detection job: every minute, per watchlist, count, judge, and keep one thread per incident.

    run_detection(settings, store, engine, now) -> list[AlertChange]

The scheduler calls this once a minute (from one leader: see docs/decisions.md), passing the
index `Store`, the migrated state engine and the time. Counts come only through
`Store.histogram(query, interval, tz, split_by="sentiment")`, `Store.count`, `Store.search` and
`Store.terms`, so the same code runs on SQLite and Elasticsearch.

Per watchlist and rule family (today: `volume`) the key `"<watchlist>/<rule>"` names one
incident thread, and at most one alert per key is not resolved at any time:

- **open** a new alert when a level rule holds and no thread for the key is active;
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

Every change writes the alert row, an `alert_events` row (the SSE feed) and an `audit_log` row
(actor `detector`) in one transaction, and is returned as an `AlertChange` for delivery.
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

from alerts.detector import (
    Detection,
    back_to_baseline,
    baseline_len,
    detect,
    level_rank,
    window_len,
)
from alerts.models import Evidence, EvidencePost, SeriesPoint
from alerts.store import DETECTOR, dumps, iso, event_payload, insert_audit, insert_event, row_to_alert
from index.base import Query, Store
from yuqing.config import AlertsConfig, Settings, WatchlistConfig
from yuqing.records import Post
from yuqing.state.schema import alert_events, alerts, sources

log = logging.getLogger(__name__)

INTERVAL_NAMES: dict[int, str] = {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 86400: "1d"}
CHART_WINDOWS = 8  # the chart shows the last 8 windows (2 h at the default 15 min)

ChangeKind = Literal["opened", "escalated", "updated", "reopened", "resolved"]


@dataclass(frozen=True)
class AlertChange:
    """One change the detector wrote; the scheduler hands these to delivery."""

    kind: ChangeKind
    alert_id: int
    event_id: int
    key: str
    rule: str
    watchlist: str | None
    level: str
    previous_level: str | None
    at: datetime
    title: str
    alert: dict[str, Any] = field(repr=False)  # Alert JSON (with evidence, without events)


def alert_key(watchlist: str, rule: str) -> str:
    return f"{watchlist}/{rule}"


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

    def slot_start(self, i: int) -> datetime:
        return self.start + i * self.step


def fetch_counts(store: Store, watchlist: str, start: datetime, end: datetime, cfg: AlertsConfig, tz: str) -> Counts:
    step = cfg.step
    n = round((end - start) / step)
    out = Counts(start=start, step=step, total=[0] * n, negative=[0] * n, split=[{} for _ in range(n)])
    q = Query(watchlists=[watchlist], start=start, end=end, size=0)
    for b in store.histogram(q, interval_name(cfg), tz, split_by="sentiment"):
        i = int((b.start.astimezone(timezone.utc) - start) // step)
        if 0 <= i < n:
            out.total[i] += b.count
            out.negative[i] += int(b.split.get("negative", 0))
            for k, v in b.split.items():
                out.split[i][k] = out.split[i].get(k, 0) + int(v)
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


def gather_evidence(
    store: Store, watchlist: str, counts: Counts, det: Detection, cfg: AlertsConfig, end: datetime
) -> Evidence:
    """Representative posts, chart series and aggregates for the judged window."""
    wl = window_len(cfg)
    win_start = end - cfg.window
    base = Query(watchlists=[watchlist], start=win_start, end=end)
    n = cfg.evidence_posts
    picks: dict[str, tuple[Post, list[str]]] = {}

    def pick(posts: Sequence[Post], why: str) -> None:
        for p in posts:
            if p.id in picks:
                if why not in picks[p.id][1]:
                    picks[p.id][1].append(why)
            else:
                picks[p.id] = (p, [why])

    scanned = _scan(store, base.model_copy(update={"sort": "engagement"}), cfg.evidence_scan)
    pick(sorted(scanned, key=lambda p: (-_reach(p), p.published_at, p.id))[:n], "highest_reach")
    # earliest: the first interval of the window that holds posts is small; read all of it
    first = next((i for i in range(len(counts.total) - wl, len(counts.total)) if counts.total[i]), None)
    if first is not None:
        s = counts.slot_start(first)
        early = _scan(store, base.model_copy(update={"start": s, "end": s + cfg.step, "sort": "time"}), cfg.evidence_scan)
        pick(sorted(early, key=lambda p: (p.published_at, p.id))[:n], "earliest")
    negs = _scan(store, base.model_copy(update={"sentiments": ["negative"], "sort": "engagement"}), cfg.evidence_scan)
    pick(
        sorted(negs, key=lambda p: (-(_negative_score(p) or 0.0), -_reach(p), p.id))[:n],
        "most_negative",
    )
    rumors = _scan(
        store, base.model_copy(update={"rumor_min": cfg.rumor_candidate_min, "sort": "rumor"}), n
    )
    rumor_posts = sorted(rumors, key=lambda p: (-(p.classification.rumor if p.classification else 0.0), p.id))[:n]

    posts = [_evidence_post(p, why) for p, why in picks.values()]
    chart = min(len(counts.total), CHART_WINDOWS * wl)
    first_chart = len(counts.total) - chart
    sentiment: dict[str, int] = {}
    for sp in counts.split[-wl:]:
        for k, v in sp.items():
            sentiment[k] = sentiment.get(k, 0) + v
    exp = det.figures.expected
    return Evidence(
        post_ids=[p.id for p in posts],
        posts=posts,
        rumor_candidates=[_evidence_post(p, ["rumor_candidate"]) for p in rumor_posts],
        interval=interval_name(cfg),
        expected_per_interval=round(exp / wl, 6),
        series=[
            SeriesPoint(t=counts.slot_start(i), total=counts.total[i], negative=counts.negative[i])
            for i in range(first_chart, len(counts.total))
        ],
        window_start=win_start,
        window_end=end,
        top_terms=store.terms(base, "term", 10),
        sources=store.terms(base, "source", 5),
        languages=store.terms(base, "lang", 5),
        sentiment=sentiment,
        source_tiers=store.terms(base, "source_tier", 4),
    )


def _minutes(d: timedelta) -> str:
    m = int(d.total_seconds() // 60)
    return f"{m} min" if m < 120 else f"{m // 60} h"


def make_title(watchlist: str, det: Detection, evidence: Evidence, cfg: AlertsConfig) -> str:
    """The incident in one line: volume against the usual, negativity, what it is about."""
    f = det.figures
    parts = [f"{watchlist}: {f.observed} posts in {_minutes(cfg.window)}, {f.ratio:.1f}× the usual {f.expected:.1f}"]
    if f.negative_share is not None:
        parts.append(f"{round(100 * f.negative_share)}% negative")
    if evidence.top_terms:
        parts.append("about " + ", ".join(t for t, _ in evidence.top_terms[:3]))
    return "; ".join(parts)


def _figures(det: Detection, cfg: AlertsConfig, end: datetime, pinned: float | None, peak: int | None) -> dict[str, Any]:
    f = det.figures.as_dict()
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
    """Judge every watchlist at `now` (aware) and persist what changed. A watchlist whose
    store queries fail is logged and skipped; the others still run (one broken query must
    not silence every alert)."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    changes: list[AlertChange] = []
    for wl in settings.watchlists:
        try:
            change = detect_watchlist(settings, store, engine, now, wl)
        except Exception:  # noqa: BLE001 - logged with its traceback, the next watchlist runs
            log.exception("alert detection failed for watchlist %s", wl.name)
            continue
        if change is not None:
            changes.append(change)
    try:
        changes.extend(detect_silent_sources(settings, engine, now))
    except Exception:  # noqa: BLE001 - coverage checks must not stop volume alerts
        log.exception("coverage (silent source) check failed")
    return changes


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
        with engine.begin() as conn:
            active = _active_row(conn, key, lock=True)
            if silent and active is None:
                out.append(_open_silence(conn, key, src.name, row, limit, now, cfg))
            elif not silent and active is not None:
                fig = json.loads(active.figures)
                fig["recovered_at"] = iso(since) if since else None
                conn.execute(
                    sa.update(alerts).where(alerts.c.id == active.id).values(state="resolved", resolved_at=now, updated_at=now, figures=dumps(fig))
                )
                out.append(_event(conn, active.id, "resolved", key, "silence", None, active.level, now, {"reason": "source crawled successfully again", "auto": True}))
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
            out.append(_event(conn, a.id, "resolved", a.key, "silence", None, a.level, now, {"reason": "source disabled or removed", "auto": True}))
    return out


def _open_silence(conn: Connection, key: str, name: str, row: Any, limit: timedelta, now: datetime, cfg: AlertsConfig) -> AlertChange:
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
    return _event(conn, alert_id, "opened", key, "silence", None, None, now, {"explain": figures["explain"]})


def _event(
    conn: Connection, alert_id: int, kind: ChangeKind, key: str, rule: str, watchlist: str | None, previous_level: str | None, now: datetime, extra: dict[str, Any]
) -> AlertChange:
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
    event_id = insert_event(conn, alert_id, kind, now, DETECTOR, event_payload(row, previous_level=previous_level, **extra))
    insert_audit(conn, now, DETECTOR, f"alert.{kind}", f"alert:{alert_id}", {"level": row.level, **extra})
    return AlertChange(
        kind=kind, alert_id=alert_id, event_id=event_id, key=key, rule=rule, watchlist=watchlist, level=row.level,
        previous_level=previous_level, at=now, title=row.title, alert=row_to_alert(row, with_evidence=True),
    )


def detect_watchlist(
    settings: Settings, store: Store, engine: Engine, now: datetime, wl: WatchlistConfig
) -> AlertChange | None:
    cfg = settings.alerts
    tz = settings.timezone
    rule = "volume"
    key = alert_key(wl.name, rule)
    wlen, blen = window_len(cfg), baseline_len(cfg)
    end = floor_time(now, cfg.step, tz)
    counts = fetch_counts(store, wl.name, end - cfg.window - cfg.baseline, end, cfg, tz)
    seasonal: list[float] | None = None
    if cfg.seasonal_days:
        seasonal = [
            float(store.count(Query(watchlists=[wl.name], start=end - timedelta(days=d) - cfg.window, end=end - timedelta(days=d), size=0)))
            for d in range(1, cfg.seasonal_days + 1)
        ]
    with engine.connect() as conn:
        active_row = _active_row(conn, key)
        active = (
            ActiveView(active_row.id, active_row.level, active_row.state, _last_event_at(conn, active_row.id))
            if active_row is not None
            else None
        )
        last_resolved = _last_resolved(conn, key) if active is None else None
    old_figures: dict[str, Any] = json.loads(active_row.figures) if active_row is not None else {}
    pinned = old_figures.get("pinned_expected")
    det = detect(
        counts.total[-wlen:],
        counts.negative[-wlen:],
        counts.total[:blen],
        cfg,
        rule=rule,
        previous=sum(counts.total[-2 * wlen : -wlen]),
        seasonal=seasonal,
        pinned_expected=pinned,
    )
    ra = round(cfg.resolve_after / cfg.step)
    if ra <= len(counts.total):
        recent = sum(counts.total[-ra:])
    else:
        recent = store.count(Query(watchlists=[wl.name], start=end - cfg.resolve_after, end=end, size=0))
    assert det.expectation is not None
    quiet = back_to_baseline(recent, ra, det.expectation, cfg)
    action = decide(det, quiet, active, last_resolved, now, cfg)
    if action in ("none", "suppress"):
        if action == "suppress":
            log.info("%s: %s within the cool-down after an officer resolved alert %s; not re-raised", key, det.explain(), last_resolved and last_resolved.id)
        return None

    evidence: Evidence | None = None
    if action != "resolve":
        evidence = gather_evidence(store, wl.name, counts, det, cfg, end)
    with engine.begin() as conn:
        current = _active_row(conn, key, lock=True)
        if (current.id if current is not None else None) != (active.id if active else None) or (
            current is not None and active_row is not None and (current.level, current.state) != (active_row.level, active_row.state)
        ):
            log.info("%s changed while it was judged; it is judged again next run", key)
            return None
        return _write(conn, action, key, rule, wl, det, evidence, cfg, now, end, current, last_resolved, old_figures, quiet)


def _write(
    conn: Connection,
    action: Action,
    key: str,
    rule: str,
    wl: WatchlistConfig,
    det: Detection,
    evidence: Evidence | None,
    cfg: AlertsConfig,
    now: datetime,
    end: datetime,
    current: Any,
    last_resolved: ResolvedView | None,
    old_figures: dict[str, Any],
    quiet: bool,
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
        title = make_title(wl.name, det, evidence, cfg)
        deadline = cfg.deadlines.get(det.level)
        if action == "open":
            fig = _figures(det, cfg, end, None, None)
            res = conn.execute(
                sa.insert(alerts).values(
                    key=key,
                    state="open",
                    level=det.level,
                    rule=rule,
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
            fig = _figures(det, cfg, end, prior.get("pinned_expected"), prior.get("peak_observed"))
            new_deadline = row.deadline_at
            if deadline is not None and level == det.level:
                cand = now + deadline
                new_deadline = min(new_deadline, cand) if new_deadline else cand
            values.update(
                state="open", level=level, title=title, figures=dumps(fig), evidence=dumps(evidence.model_dump(mode="json")),
                resolved_at=None, acknowledged_at=None, acknowledged_by=None, deadline_at=new_deadline,
            )
            conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))
            kind = "reopened"
            previous_level = row.level
        else:  # escalate | update
            assert current is not None
            alert_id = current.id
            fig = _figures(det, cfg, end, old_figures.get("pinned_expected"), old_figures.get("peak_observed"))
            values.update(title=title, figures=dumps(fig), evidence=dumps(evidence.model_dump(mode="json")))
            if action == "escalate":
                values["level"] = det.level
                if deadline is not None:
                    cand = now + deadline
                    values["deadline_at"] = min(current.deadline_at, cand) if current.deadline_at else cand
                if current.state == "acknowledged":
                    values.update(state="open", acknowledged_at=None, acknowledged_by=None)
                kind = "escalated"
            else:
                kind = "updated"
            conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(**values))
        extra = {"figures": det.figures.as_dict(), "explain": det.explain(), "previous_level": previous_level}
    row = conn.execute(sa.select(alerts).where(alerts.c.id == alert_id)).one()
    event_id = insert_event(conn, alert_id, kind, now, DETECTOR, event_payload(row, **extra))
    insert_audit(conn, now, DETECTOR, f"alert.{kind}", f"alert:{alert_id}", {"level": row.level, "explain": det.explain()})
    return AlertChange(
        kind=kind,
        alert_id=alert_id,
        event_id=event_id,
        key=key,
        rule=rule,
        watchlist=wl.name,
        level=row.level,
        previous_level=previous_level,
        at=now,
        title=row.title,
        alert=row_to_alert(row, with_evidence=True),
    )
