"""Alert detection benchmark on the NAB Twitter-volume series (../shared/data/timeseries).

    python -m bench.alerts [--data DIR] [--quick]

Runs `yuqing alerts backtest` (through `alerts.backtest.main`, the same contract the CLI
serves) on the five shared series and scores it the way issue 6 defines:

- alerts less than 60 minutes apart form one event;
- an event whose first alert lies inside a labelled window is a hit (one per window); every
  other event is a false alarm;
- F1 from precision of events and recall of windows;
- earliness = (first alert - window start) / window length, median over hit windows.

Side by side, two reference detectors, each tuned over its grid on the same five series (one
parameter set per detector, chosen by mean F1, printed): an ElastAlert-style spike rule
(current / reference window ratio with a floor on the current count) and a rolling robust
z-score (median / MAD). Our detector is tuned the same way over a small grid of its config.
Targets (issue 6): better F1 than both references on every series, mean F1 >= 0.6, median
earliness <= 0.5.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from bench.machine import describe

EVENT_GAP = timedelta(minutes=60)
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "timeseries"


@dataclass(frozen=True)
class Score:
    hits: int
    events: int
    windows: int
    f1: float
    precision: float
    recall: float
    earliness: float | None  # median over hit windows
    early: tuple[float, ...] = ()  # per hit window


def load(data: Path) -> tuple[dict[str, tuple[list[datetime], np.ndarray]], dict[str, list[tuple[datetime, datetime]]]]:
    labels = json.loads((data / "labels.json").read_text(encoding="utf-8"))
    series = {}
    for name in sorted(labels):
        rows = (data / name).read_text(encoding="utf-8").splitlines()[1:]
        times = [datetime.fromisoformat(r.split(",")[0]) for r in rows if r.strip()]
        values = np.array([float(r.split(",")[1]) for r in rows if r.strip()])
        series[name] = (times, values)
    windows = {n: [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in w] for n, w in labels.items()}
    return series, windows


def score(alert_times: Iterable[datetime], windows: Sequence[tuple[datetime, datetime]]) -> Score:
    """Score alert times against labelled windows (see the module docstring)."""
    times = sorted(alert_times)
    firsts: list[datetime] = []
    last: datetime | None = None
    for t in times:
        if last is None or t - last >= EVENT_GAP:
            firsts.append(t)
        last = t
    hit_windows: dict[int, datetime] = {}
    hits = 0
    for t in firsts:
        inside = next((i for i, (a, b) in enumerate(windows) if a <= t <= b), None)
        if inside is not None and inside not in hit_windows:
            hit_windows[inside] = t
            hits += 1
    precision = hits / len(firsts) if firsts else 0.0
    recall = len(hit_windows) / len(windows) if windows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    early = [(t - windows[i][0]) / (windows[i][1] - windows[i][0]) for i, t in hit_windows.items()]
    return Score(hits, len(firsts), len(windows), f1, precision, recall, statistics.median(early) if early else None, tuple(early))


# -- our detector, through the backtest contract -------------------------------------------------


def ours(path: Path, params: dict[str, Any]) -> list[datetime]:
    from alerts.backtest import main

    lines = ["alerts:"] + [f"  {k}: {v}" for k, v in params.items() if k != "levels"]
    if "levels" in params:
        lines.append("  levels:")
        lines += [f"    - {json.dumps(rule)}" for rule in params["levels"]]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
        buf = io.StringIO()
        rc = main(["--series", str(path), "--config", str(cfg)], out=buf)
    if rc != 0:
        raise RuntimeError(f"backtest exited {rc} for {params}")
    return [datetime.fromisoformat(json.loads(line)["timestamp"]) for line in buf.getvalue().splitlines()]


def our_grid(quick: bool) -> list[dict[str, Any]]:
    """Hour windows against a multi-day robust baseline and the same hour on the last 7 days;
    one thread per incident for a day (cool-down), so a long story is one event. The
    multi-window confirmation (`alerts.confirm`) runs at its defaults, as a deployment would."""
    baselines = ["3d", "7d"] if quick else ["1d", "3d", "7d"]
    ratios = [4.0] if quick else [3.0, 4.0, 5.0]
    pvalues = [1e-4] if quick else [1e-3, 1e-4]
    return [
        {
            "window": "1h",
            "baseline": baseline,
            "seasonal_days": 7,
            "cooldown": "24h",
            "resolve_after": "2h",
            "max_dispersion": 1000,
            "levels": [{"level": "blue", "min_count": 5, "min_ratio": ratio, "max_p_value": p}],
        }
        for baseline, ratio, p in product(baselines, ratios, pvalues)
    ]


# -- reference detectors ------------------------------------------------------------------------


def elastalert_spike(values: np.ndarray, window: int, height: float, floor: float) -> list[int]:
    """ElastAlert `spike` rule (spike_type up): alert when the count over the current window is
    at least `height` x the count over the reference window just before it, and at least
    `floor` (threshold_cur)."""
    c = np.concatenate([[0.0], np.cumsum(values)])
    out = []
    for end in range(2 * window, len(values) + 1):
        cur = c[end] - c[end - window]
        ref = c[end - window] - c[end - 2 * window]
        if cur >= floor and cur >= height * max(ref, 1.0):
            out.append(end - 1)
    return out


def robust_z(values: np.ndarray, history: int, z: float, floor: float) -> list[int]:
    """Rolling robust z-score: (x - median of the last `history` points) / (1.4826 MAD)."""
    from numpy.lib.stride_tricks import sliding_window_view

    if len(values) <= history:
        return []
    hist = sliding_window_view(values[:-1], history)  # hist[i] = values[i : i + history]
    med = np.median(hist, axis=1)
    mad = np.median(np.abs(hist - med[:, None]), axis=1) * 1.4826
    x = values[history:]
    score = (x - med) / np.maximum(mad, 1.0)
    return [int(i + history) for i in np.nonzero((score >= z) & (x >= floor))[0]]


def ref_grids() -> dict[str, tuple[Callable[..., list[int]], list[dict[str, Any]]]]:
    return {
        "elastalert_spike": (
            elastalert_spike,
            [{"window": w, "height": h, "floor": f} for w, h, f in product([3, 6, 12], [1.5, 2.0, 3.0, 5.0], [5, 20, 50])],
        ),
        "robust_z": (
            robust_z,
            [{"history": h, "z": z, "floor": f} for h, z, f in product([36, 144, 288], [3.0, 5.0, 8.0, 12.0], [5, 20, 50])],
        ),
    }


def tune(
    names: Sequence[str],
    grid: Sequence[dict[str, Any]],
    run: Callable[[str, dict[str, Any]], list[datetime]],
    windows: dict[str, list[tuple[datetime, datetime]]],
) -> tuple[dict[str, Any], dict[str, Score]]:
    best: tuple[float, dict[str, Any], dict[str, Score]] | None = None
    for params in grid:
        scores = {n: score(run(n, params), windows[n]) for n in names}
        mean = statistics.mean(s.f1 for s in scores.values())
        if best is None or mean > best[0]:
            best = (mean, params, scores)
    assert best is not None
    return best[1], best[2]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.alerts")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("YUQING_TIMESERIES", DEFAULT_DATA)))
    ap.add_argument("--quick", action="store_true", help="a smaller grid for our detector")
    args = ap.parse_args(argv)
    series, windows = load(args.data)
    names = list(series)
    print(f"machine: {describe()}")
    results: dict[str, tuple[dict[str, Any], dict[str, Score]]] = {}

    def run_ref(fn: Callable[..., list[int]]) -> Callable[[str, dict[str, Any]], list[datetime]]:
        return lambda n, p: [series[n][0][i] for i in fn(series[n][1], **p)]

    for ref, (fn, grid) in ref_grids().items():
        results[ref] = tune(names, grid, run_ref(fn), windows)
    results["yuqing"] = tune(names, our_grid(args.quick), lambda n, p: ours(args.data / n, p), windows)

    for det, (params, scores) in results.items():
        print(f"\n{det}: chosen {json.dumps(params, ensure_ascii=False)}", flush=True)
        for n in names:
            s = scores[n]
            e = "-" if s.earliness is None else f"{s.earliness:.2f}"
            print(f"  {n:<32} F1 {s.f1:.3f}  P {s.precision:.2f} R {s.recall:.2f}  events {s.events:>3}  hits {s.hits}/{s.windows}  earliness {e}")
        hit_early = [e for s in scores.values() for e in s.early]
        print(f"  mean F1 {statistics.mean(s.f1 for s in scores.values()):.3f}  median earliness "
              f"{statistics.median(hit_early) if hit_early else float('nan'):.2f}")
    ok_every = all(
        results["yuqing"][1][n].f1 > max(results[r][1][n].f1 for r in ref_grids()) for n in names
    )
    mean_f1 = statistics.mean(s.f1 for s in results["yuqing"][1].values())
    early = [e for s in results["yuqing"][1].values() for e in s.early]
    med = statistics.median(early) if early else float("inf")
    print(f"\ntargets: better than both references on every series: {ok_every}; mean F1 {mean_f1:.3f} >= 0.6: {mean_f1 >= 0.6}; "
          f"median earliness {med:.2f} <= 0.5: {med <= 0.5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
