"""`yuqing alerts backtest`: replay a count series through the service's detector.

    main(["--series", "FILE.csv", "--interval", "5m", "--config", "config.yaml"]) -> int

Reads a `timestamp,value` CSV of mention counts per interval (the NAB series format), infers the
interval when `--interval` is not given, and runs the *same* detector and the same alert
lifecycle as `alerts.service` (open / update / escalate / resolve / cool-down via
`alerts.service.decide`) in time order, seeing only the past at every step. It copes with a short
history: judging starts once one baseline window exists, with the expectation floored and the
test falling back to Poisson until enough blocks exist to estimate dispersion. The seasonal
reference uses the same window on earlier days as soon as they exist. A new thread needs the
multi-window confirmation the service asks for (`alerts.confirm`); a confirmation window
reaching back before the first row sees zero there, which its floor turns into "confirmed".

Output: one JSON line per alert **raised** (a new thread: not updates, escalations, reopenings
or resolutions):

    {"timestamp": "<the CSV's timestamp of the triggering interval>", "level": "blue",
     "score": 7.3, "rule": "volume"}

`score` is -log10 of the tail probability (higher = more anomalous). Exit status 0; 2 for a
usage or data error (the message says which line and what was expected).

Officer verdicts (issue 6: "the backtest reports them"): with `--verdicts SOURCE` the backtest
also says how many of the alerts it raised fall on a time an officer marked a false positive or
inside a snooze. SOURCE is `state` (the recorded verdicts in the configuration's state database,
`AlertStore.verdicts`, optionally of one `--watchlist`) or a JSONL file, one span per line:

    {"kind": "false_positive", "start": "2025-03-03T01:00:00Z", "end": "2025-03-03T02:00:00Z"}
    {"kind": "snooze", "start": "2025-03-03T02:00:00Z", "end": "2025-03-04T02:00:00Z"}

A recorded false positive covers its alert from one window before it opened until the officer
resolved it; a recorded snooze runs from that resolution to `snooze_until`. Naive times (the
CSV's, a JSONL line's) are read in the configuration's `timezone`. The report is one JSON line
on **stderr**, after the alerts:

    {"verdicts": {"false_positives": 2, "snoozes": 1}, "raised": 9, "on_false_positive": 1,
     "in_snooze": 2, "flagged": [{"timestamp": "...", "false_positive": true, "snooze": false}]}

stdout stays exactly one JSON line per alert raised (the benchmark contract), with or without
`--verdicts`; without it nothing is read from the state database.

Thresholds come from the configuration's `alerts` section (`--config`, else `$YUQING_CONFIG`
or `./config.yaml`, else the defaults) with `interval` replaced by the series' interval. A
series has no sentiment, so negative counts are zero and rules that need a negative share
never hold here.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from alerts.detector import back_to_baseline, baseline_len, detect, level_rank, window_len
from alerts.service import ActiveView, ResolvedView, decide
from yuqing.config import AlertsConfig, ConfigError, load_settings, parse_duration


@dataclass(frozen=True)
class Raised:
    """One alert raised by the backtest."""

    index: int
    timestamp: str
    level: str
    score: float
    rule: str

    def as_json(self) -> str:
        return json.dumps({"timestamp": self.timestamp, "level": self.level, "score": round(self.score, 4), "rule": self.rule})


class SeriesError(ValueError):
    """The CSV cannot be read as a count series."""


def read_series(path: Path) -> tuple[list[str], list[datetime], list[float]]:
    """Timestamps as written, parsed times, values. Rows must be in time order."""
    raw: list[str] = []
    times: list[datetime] = []
    values: list[float] = []
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as e:
        raise SeriesError(f"{path}: cannot read: {e.strerror}") from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["timestamp", "value"]:
            raise SeriesError(f"{path}:1: expected the header 'timestamp,value', got {','.join(header or [])!r}")
        for n, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise SeriesError(f"{path}:{n}: expected 'timestamp,value', got {','.join(row)!r}")
            try:
                t = datetime.fromisoformat(row[0].strip())
            except ValueError:
                raise SeriesError(f"{path}:{n}: timestamp {row[0]!r} is not ISO 8601 (e.g. 2015-02-26 21:42:53)") from None
            try:
                v = float(row[1])
            except ValueError:
                raise SeriesError(f"{path}:{n}: value {row[1]!r} is not a number") from None
            if v < 0:
                raise SeriesError(f"{path}:{n}: a count cannot be negative ({v})")
            if times and t <= times[-1]:
                raise SeriesError(f"{path}:{n}: timestamps must increase ({row[0]} after {raw[-1]})")
            raw.append(row[0])
            times.append(t)
            values.append(v)
    if len(times) < 2:
        raise SeriesError(f"{path}: needs at least two rows")
    return raw, times, values


def infer_interval(times: Sequence[datetime]) -> timedelta:
    """The most common step between consecutive timestamps."""
    steps: dict[timedelta, int] = {}
    for a, b in zip(times, times[1:]):
        steps[b - a] = steps.get(b - a, 0) + 1
    return max(steps.items(), key=lambda kv: (kv[1], -kv[0]))[0]


def regularise(times: Sequence[datetime], values: Sequence[float], step: timedelta) -> tuple[list[int | None], list[int]]:
    """Place each row on the regular grid from the first timestamp. Returns, per grid slot,
    the row index it came from (None for a gap) and the count (0 in a gap: a missing interval
    cannot raise an alert, and a real gap in coverage shows as a dip, not a spike)."""
    n = int((times[-1] - times[0]) / step) + 1
    rows: list[int | None] = [None] * n
    counts = [0] * n
    for i, (t, v) in enumerate(zip(times, values)):
        slot = round((t - times[0]) / step)
        rows[slot] = i
        counts[slot] = int(round(v))
    return rows, counts


def run_backtest(counts: Sequence[int], cfg: AlertsConfig, step: timedelta) -> list[tuple[int, str, float, str]]:
    """(slot, level, score, rule) per alert raised, judging after each slot completes."""
    wl, bl = window_len(cfg), baseline_len(cfg)
    ra = round(cfg.resolve_after / cfg.step)
    day = round(timedelta(days=1) / step)
    # per confirm window: (span in slots, 0) or (0, lag in slots); before the series counts 0
    confirm_spans = [(round(w.span / step), 0) if w.span is not None else (0, round(w.lag / step)) for w in cfg.confirm]  # type: ignore[operator]
    prefix = [0]
    for c in counts:
        prefix.append(prefix[-1] + c)

    def span(a: int, b: int) -> int:  # sum of counts[a:b]
        return prefix[max(b, 0)] - prefix[max(a, 0)]

    raised: list[tuple[int, str, float, str]] = []
    active: dict[str, Any] | None = None
    last_resolved: ResolvedView | None = None
    last_resolved_pin: float | None = None
    t0 = datetime(2000, 1, 1)  # a clock in slots: decide() only compares durations
    zeros = [0] * wl
    for i in range(2 * wl - 1, len(counts)):
        end = i + 1  # the window is counts[end - wl : end]
        now = t0 + end * step
        window = list(counts[end - wl : end])
        baseline = list(counts[max(0, end - wl - bl) : end - wl])
        seasonal = [float(span(end - d * day - wl, end - d * day)) for d in range(1, cfg.seasonal_days + 1) if end - d * day - wl >= 0]
        refs = None
        if active is None and cfg.confirm_min:  # as the service: only a new thread is confirmed
            refs = [float(span(end - wl - s, end - wl) if s else span(end - lag - wl, end - lag)) for s, lag in confirm_spans]
        det = detect(
            window,
            zeros,
            baseline,
            cfg,
            previous=span(end - 2 * wl, end - wl),
            seasonal=seasonal or None,
            pinned_expected=active["pinned"] if active else None,
            confirm_refs=refs,
        )
        assert det.expectation is not None
        quiet = back_to_baseline(span(end - ra, end), min(ra, end), det.expectation, cfg)
        view = ActiveView(0, active["level"], "open", active["last_event_at"]) if active else None
        action = decide(det, quiet, view, last_resolved if active is None else None, now, cfg)
        if action == "open":
            assert det.level is not None
            raised.append((i, det.level, det.figures.score, det.rule))
            active = {"level": det.level, "last_event_at": now, "pinned": det.figures.expected}
        elif action == "reopen":
            assert last_resolved is not None and det.level is not None
            lvl = det.level if level_rank(det.level) > level_rank(last_resolved.level) else last_resolved.level
            active = {"level": lvl, "last_event_at": now, "pinned": last_resolved_pin}
        elif action in ("escalate", "update"):
            assert active is not None
            if action == "escalate":
                active["level"] = det.level
            active["last_event_at"] = now
        elif action == "resolve":
            assert active is not None
            last_resolved = ResolvedView(0, active["level"], now, auto=True)
            last_resolved_pin = active["pinned"]
            active = None
    return raised


@dataclass(frozen=True)
class Span:
    """A time an officer's verdict covers: `kind` is "false_positive" or "snooze"."""

    kind: str
    start: datetime
    end: datetime

    def covers(self, t: datetime) -> bool:
        return self.start <= t <= self.end


def _aware(t: datetime, tz: ZoneInfo) -> datetime:
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


def read_verdicts(path: Path, tz: ZoneInfo) -> list[Span]:
    """Spans from a JSONL file (see the module docstring)."""
    spans: list[Span] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SeriesError(f"{path}: cannot read: {e.strerror}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            kind = d["kind"]
            start = _aware(datetime.fromisoformat(str(d["start"])), tz)
            end = _aware(datetime.fromisoformat(str(d["end"])), tz)
        except (ValueError, KeyError, TypeError) as e:
            raise SeriesError(f"{path}:{n}: expected {{\"kind\", \"start\", \"end\"}} with ISO 8601 times ({type(e).__name__}: {e})") from None
        if kind not in ("false_positive", "snooze"):
            raise SeriesError(f"{path}:{n}: kind must be false_positive or snooze, got {kind!r}")
        if end < start:
            raise SeriesError(f"{path}:{n}: end is before start")
        spans.append(Span(kind, start, end))
    return spans


def spans_from_state(verdicts: Sequence[dict[str, Any]], window: timedelta) -> list[Span]:
    """Spans from `AlertStore.verdicts` rows."""
    spans: list[Span] = []
    for v in verdicts:
        opened = datetime.fromisoformat(v["opened_at"])
        at = datetime.fromisoformat(v["at"])
        if v["false_positive"]:
            spans.append(Span("false_positive", opened - window, at))
        if v["snooze_until"]:
            spans.append(Span("snooze", at, datetime.fromisoformat(v["snooze_until"])))
    return spans


def verdict_report(raised: Sequence[tuple[str, datetime]], spans: Sequence[Span]) -> dict[str, Any]:
    """How many raised alerts (CSV timestamp, aware time) fall on a false positive / in a snooze."""
    flagged = []
    fp_n = sn_n = 0
    for stamp, t in raised:
        fp = any(s.kind == "false_positive" and s.covers(t) for s in spans)
        sn = any(s.kind == "snooze" and s.covers(t) for s in spans)
        fp_n += fp
        sn_n += sn
        if fp or sn:
            flagged.append({"timestamp": stamp, "false_positive": fp, "snooze": sn})
    return {
        "verdicts": {"false_positives": sum(s.kind == "false_positive" for s in spans), "snoozes": sum(s.kind == "snooze" for s in spans)},
        "raised": len(raised), "on_false_positive": fp_n, "in_snooze": sn_n, "flagged": flagged,
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="yuqing alerts backtest", description="Replay a count series through the alert detector.")
    p.add_argument("--series", required=True, type=Path, help="CSV with 'timestamp,value' rows (counts per interval)")
    p.add_argument("--interval", help="interval of the series, e.g. 5m (inferred when not given)")
    p.add_argument("--config", help="configuration file whose 'alerts' section sets the thresholds")
    p.add_argument("--verdicts", help="'state' (officer verdicts recorded in the state database) or a JSONL file of spans; "
                   "reports on stderr how many raised alerts fall on a false positive or in a snooze")
    p.add_argument("--watchlist", help="with --verdicts state: only this watchlist's verdicts")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        raw, times, values = read_series(args.series)
        step = parse_duration(args.interval) if args.interval else infer_interval(times)
        settings = load_settings(args.config)
        data = settings.alerts.model_dump()
        data["interval"] = step
        data["bucket"] = step
        try:
            cfg = AlertsConfig(**data)
        except ValueError as e:
            raise ConfigError(f"alerts settings do not fit a series with interval {step}: {e}") from None
        rows, counts = regularise(times, values, step)
        tz = ZoneInfo(settings.timezone)
        spans: list[Span] | None = None
        if args.verdicts == "state":
            from alerts.store import AlertStore
            from yuqing.state.db import connect

            url = settings.state_url
            if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
                raise ConfigError(f"--verdicts state: no state database at {url.removeprefix('sqlite:///')}")
            engine = connect(url)
            try:
                spans = spans_from_state(AlertStore(engine).verdicts(watchlist=args.watchlist), cfg.window)
            finally:
                engine.dispose()
        elif args.verdicts is not None:
            spans = read_verdicts(Path(args.verdicts), tz)
    except (SeriesError, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the state database cannot be read: say so, exit 2
        print(f"error: cannot read verdicts from the state database: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    reported: list[tuple[str, datetime]] = []
    for slot, level, score, rule in run_backtest(counts, cfg, step):
        row = rows[slot]
        stamp = raw[row] if row is not None else (times[0] + slot * step).isoformat(sep=" ")
        print(Raised(slot, stamp, level, score, rule).as_json(), file=out)
        reported.append((stamp, _aware(times[row] if row is not None else times[0] + slot * step, tz)))
    if spans is not None:
        print(json.dumps(verdict_report(reported, spans)), file=err or sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
