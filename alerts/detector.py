"""The detection math, pure: counts in, figures and a level out.

Nothing here touches a store, a database or a clock, so the service (`alerts.service`), the
backtest (`alerts.backtest`) and the tests all run exactly the same arithmetic. Every threshold
comes from `yuqing.config.AlertsConfig` / `LevelRule`.

How a window is judged
----------------------
1. **Expectation.** The baseline (per-interval counts before the window) is cut into
   window-sized blocks. Each block is capped at median + 3 robust standard deviations before
   averaging, so a past spike inside the baseline does not raise the expectation and hide the
   next one. The expectation per window never drops below `baseline_floor` (a watchlist that
   usually sees nothing must not page on 0 -> 2). Where a seasonal reference is given (the
   same time of day on earlier days), the larger of the two is used: a story that always peaks
   at the morning commute is not an incident.
2. **Tail probability.** How surprising the observed count is under the expectation: the
   Poisson upper tail P(X >= observed), or the negative-binomial tail when the baseline blocks
   vary more than Poisson allows (real social-media volume is overdispersed: a Poisson test on
   it pages on every ordinary wobble). Computed in log space, so a huge spike gives a large
   finite score instead of p = 0.
3. **Level.** `LevelRule`s are checked from red down; the first whose every figure is reached
   (count, ratio, p-value, negative share) sets the level, and the reasons name each figure
   against its threshold, so the duty officer reads *why* it paged.

4. **Confirmation** (`confirm`). A volume level that holds on the window opens a thread only
   when at least `confirm_min` of the configured longer horizons confirm it: the window
   against the hours just before it (is it rising now?) and against the same window a week
   ago (is it more than usual for this hour?). One noisy quarter hour is not an incident.

The rule family computed here is `volume` (all matching posts, with the negative share as a
condition of the higher levels). `negative` runs the same test on negative posts alone, so a
turn of opinion is caught even when total volume is flat.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from yuqing.config import LEVELS, AlertsConfig, ConfirmWindow, HighReachRule, LevelRule, NegativeShareRule

LEVEL_RANK: dict[str, int] = {name: i + 1 for i, name in enumerate(LEVELS)}  # blue 1 .. red 4

TestKind = Literal["poisson", "negbin"]


def level_rank(level: str | None) -> int:
    """0 for "no level", 1 blue .. 4 red; used to compare levels."""
    return LEVEL_RANK.get(level or "", 0)


# --------------------------------------------------------------------------------------------
# tail probabilities (log space)
# --------------------------------------------------------------------------------------------

_EPS = 1e-15
_MAX_ITER = 100_000


def _log_lower_gamma_regularized(a: float, x: float) -> float:
    """log P(a, x), the regularized lower incomplete gamma function (a > 0, x >= 0).

    Series where it converges fast (x < a + 1, which is the spike case: the observed count
    is well above the expectation), the continued fraction for Q = 1 - P otherwise.
    """
    if x <= 0.0:
        return -math.inf
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        ap = a
        term = total = 1.0 / a
        for _ in range(_MAX_ITER):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return log_front + math.log(total)
    # Lentz's continued fraction for Q(a, x)
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    q = math.exp(log_front) * h
    return math.log1p(-q) if q < 1.0 else -math.inf


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = tiny if abs(d) < tiny else d
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_ITER):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = tiny if abs(d) < tiny else d
        c = 1.0 + aa / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def _log_beta_regularized(a: float, b: float, x: float) -> float:
    """log I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return -math.inf
    if x >= 1.0:
        return 0.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return log_front + math.log(_betacf(a, b, x)) - math.log(a)
    other = math.exp(log_front + math.log(_betacf(b, a, 1.0 - x)) - math.log(b))
    return math.log1p(-other) if other < 1.0 else -math.inf


def poisson_logsf(k: int, mu: float) -> float:
    """log P(X >= k) for X ~ Poisson(mu). P(X >= k) = P(k, mu) (regularized lower gamma)."""
    if k <= 0:
        return 0.0
    if mu <= 0.0:
        return -math.inf
    return _log_lower_gamma_regularized(float(k), float(mu))


def negbin_logsf(k: int, mu: float, var: float) -> float:
    """log P(X >= k) for a negative binomial with mean `mu` and variance `var` (> mu).

    With size r = mu^2 / (var - mu) and q = mu / (mu + r): P(X >= k) = I_q(k, r). Falls back
    to Poisson when `var` <= `mu` (no overdispersion to model).
    """
    if k <= 0:
        return 0.0
    if mu <= 0.0:
        return -math.inf
    if var <= mu * (1.0 + 1e-9):
        return poisson_logsf(k, mu)
    r = mu * mu / (var - mu)
    q = mu / (mu + r)
    return _log_beta_regularized(float(k), r, q)


# --------------------------------------------------------------------------------------------
# expectation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectation:
    """What one window is expected to hold.

    `expected` is the count per window used in the test (floored, seasonal-aware); `raw` the
    robust baseline mean before the floor; `dispersion` the variance-to-mean ratio of the
    baseline blocks (1 = Poisson); `blocks` how many baseline windows it was estimated from
    (few blocks = young history, said so in the figures); `seasonal` the same-time-of-day
    reference when one was given.
    """

    expected: float
    raw: float
    dispersion: float
    blocks: int
    seasonal: float | None = None

    @property
    def variance(self) -> float:
        return self.expected * self.dispersion


def _median(xs: Sequence[float]) -> float:
    return float(np.median(np.asarray(xs, dtype=float))) if len(xs) else 0.0


def block_sums(counts: Sequence[int | float], block: int) -> list[float]:
    """Sums of consecutive `block`-long slices, aligned to the end (the most recent block is
    complete; an incomplete leading remainder is dropped)."""
    if block <= 0:
        raise ValueError("block must be positive")
    n = len(counts) // block
    if n == 0:
        return []
    arr = np.asarray(counts, dtype=float)[len(counts) - n * block :]
    return arr.reshape(n, block).sum(axis=1).tolist()


def robust_mean_and_dispersion(blocks: Sequence[float]) -> tuple[float, float]:
    """Mean and variance/mean of `blocks`, each capped at median + 3 robust SDs first.

    The robust SD is 1.4826 x MAD but never below the Poisson SD sqrt(median) nor 1, so
    sparse counts (mostly zeros) are not all treated as outliers.
    """
    if len(blocks) == 0:
        return 0.0, 1.0
    b = np.asarray(blocks, dtype=float)
    med = float(np.median(b))
    mad = float(np.median(np.abs(b - med))) * 1.4826
    sd = max(mad, math.sqrt(max(med, 0.0)), 1.0)
    capped = np.minimum(b, med + 3.0 * sd)
    mean = float(capped.mean())
    if len(capped) < 3 or mean <= 0.0:
        return mean, 1.0
    var = float(capped.var(ddof=1))
    return mean, max(1.0, var / mean)


def expectation(
    baseline: Sequence[int | float],
    window_len: int,
    floor: float,
    *,
    seasonal: Sequence[float] | None = None,
    test: TestKind = "negbin",
    max_dispersion: float | None = None,
) -> Expectation:
    """Expected count for one window from the baseline intervals before it.

    `seasonal`: counts of the same window at the same time of day on earlier days/weeks
    (their median is the seasonal reference). `test` "poisson" forces dispersion 1.
    `max_dispersion` caps the variance-to-mean ratio so a baseline spanning a strong daily
    swing cannot make the test blind.
    """
    blocks = block_sums(baseline, window_len)
    raw, dispersion = robust_mean_and_dispersion(blocks)
    seasonal_ref: float | None = None
    if seasonal:
        seasonal_ref = _median([float(s) for s in seasonal])
    expected = max(raw, seasonal_ref or 0.0, floor)
    if test == "poisson":
        dispersion = 1.0
    elif max_dispersion is not None:
        dispersion = min(dispersion, max_dispersion)
    return Expectation(expected=expected, raw=raw, dispersion=dispersion, blocks=len(blocks), seasonal=seasonal_ref)


# --------------------------------------------------------------------------------------------
# figures and levels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """Everything an alert says about the window; stored as the alert's `figures` JSON."""

    observed: int
    expected: float
    ratio: float
    p_value: float
    score: float  # -log10(p): higher = more anomalous; finite even when p underflows
    negative: int
    negative_share: float | None  # None when nothing was observed
    baseline_raw: float
    dispersion: float
    baseline_blocks: int
    seasonal: float | None = None
    previous: int | None = None  # the window before this one
    growth: float | None = None  # observed / previous (None when previous is 0 or unknown)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_window(
    observed: int,
    negative: int,
    exp: Expectation,
    *,
    previous: int | None = None,
) -> Figures:
    """Figures for one window against its expectation."""
    if observed < 0 or negative < 0:
        raise ValueError("counts cannot be negative")
    if negative > observed:
        raise ValueError(f"negative count {negative} exceeds total {observed}")
    if exp.dispersion > 1.0:
        logp = negbin_logsf(observed, exp.expected, exp.variance)
    else:
        logp = poisson_logsf(observed, exp.expected)
    p = math.exp(logp) if logp > -745.0 else 0.0
    score = -logp / math.log(10.0) if logp > -math.inf else 1e6
    growth = (observed / previous) if previous else None
    return Figures(
        observed=int(observed),
        expected=round(exp.expected, 6),
        ratio=round(observed / exp.expected, 6),
        p_value=p,
        score=round(max(score, 0.0), 6),
        negative=int(negative),
        negative_share=(round(negative / observed, 6) if observed else None),
        baseline_raw=round(exp.raw, 6),
        dispersion=round(exp.dispersion, 6),
        baseline_blocks=exp.blocks,
        seasonal=exp.seasonal,
        previous=previous,
        growth=(round(growth, 6) if growth is not None else None),
    )


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) < 1e-3:
        return f"{x:.1e}"
    return f"{x:.3g}"


def rule_checks(fig: Figures, rule: LevelRule) -> tuple[bool, list[str]]:
    """Whether `rule` holds for `fig`, and each condition as 'figure >= threshold' text."""
    checks: list[tuple[bool, str]] = [
        (fig.observed >= rule.min_count, f"count {fig.observed} {'≥' if fig.observed >= rule.min_count else '<'} {rule.min_count}"),
        (fig.ratio >= rule.min_ratio, f"ratio {_fmt(fig.ratio)} {'≥' if fig.ratio >= rule.min_ratio else '<'} {_fmt(rule.min_ratio)}"),
        (fig.p_value <= rule.max_p_value, f"p {_fmt(fig.p_value)} {'≤' if fig.p_value <= rule.max_p_value else '>'} {_fmt(rule.max_p_value)}"),
    ]
    if rule.min_negative_share is not None:
        share = fig.negative_share or 0.0
        ok = share >= rule.min_negative_share
        checks.append((ok, f"negative share {_fmt(share)} {'≥' if ok else '<'} {_fmt(rule.min_negative_share)}"))
    return all(ok for ok, _ in checks), [text for _, text in checks]


def choose_level(fig: Figures, rules: Sequence[LevelRule]) -> tuple[LevelRule | None, list[str]]:
    """The highest-level rule that holds (checked red down) and its reasons; (None, []) when
    none holds."""
    for rule in sorted(rules, key=lambda r: level_rank(r.level), reverse=True):
        ok, reasons = rule_checks(fig, rule)
        if ok:
            return rule, reasons
    return None, []


@dataclass(frozen=True)
class Detection:
    """The verdict for one window of one rule family."""

    rule: str  # family: "volume" | "negative"
    level: str | None
    figures: Figures
    reasons: tuple[str, ...] = ()
    level_rule: LevelRule | None = None
    expectation: Expectation | None = field(default=None, compare=False)
    # every rule family's verdict when several were judged (see `combine`), and the pickups
    rules: tuple["RuleResult", ...] = field(default=(), compare=False)
    pickups: dict[str, int] = field(default_factory=dict, compare=False)
    # multi-window confirmation of the volume level (None: not judged, e.g. an open thread)
    confirmation: "Confirmation | None" = field(default=None, compare=False)

    @property
    def fired(self) -> bool:
        return self.level is not None

    def explain(self) -> str:
        """One line: which rule fired and with what figures."""
        if not self.fired:
            c = self.confirmation
            if c is not None and c.held is not None and not c.confirmed:
                return f"{self.rule}: {c.held} holds on the window but is not confirmed ({'; '.join(c.reasons)})"
            return f"{self.rule}: no level holds ({self.figures.observed} vs {_fmt(self.figures.expected)} expected)"
        return f"{self.rule} rule {self.level}: " + ", ".join(self.reasons)


@dataclass(frozen=True)
class WindowCheck:
    """One confirmation horizon: the window's count against its reference (per window,
    floored at `baseline_floor`)."""

    name: str
    kind: Literal["span", "lag"]
    horizon: str  # the span or lag, e.g. "3:00:00"
    observed: int
    reference: float  # per window, floored
    raw_reference: float  # per window, before the floor
    ratio: float
    min_ratio: float
    confirmed: bool

    def reason(self) -> str:
        sign = "≥" if self.confirmed else "<"
        what = "the span before" if self.kind == "span" else "the same window"
        return f"{self.name}: {self.observed} vs {_fmt(self.reference)} in {what}, ratio {_fmt(self.ratio)} {sign} {_fmt(self.min_ratio)}"


@dataclass(frozen=True)
class Confirmation:
    """Whether the volume level held on enough horizons. `held`: the level the window alone
    reached (None when none did); `confirmed`: at least `required` windows confirmed it."""

    required: int
    windows: tuple[WindowCheck, ...]
    held: str | None
    confirmed: bool

    @property
    def reasons(self) -> list[str]:
        return [w.reason() for w in self.windows]

    def as_dict(self) -> dict[str, Any]:
        return {
            "required": self.required,
            "confirmed_by": sum(w.confirmed for w in self.windows),
            "confirmed": self.confirmed,
            "held": self.held,
            "windows": [asdict(w) for w in self.windows],
        }


def confirm(observed: int, references: Sequence[float], windows: Sequence[ConfirmWindow], cfg: AlertsConfig) -> list[WindowCheck]:
    """Each confirmation window's verdict. `references[i]`: the count in window i's reference
    span (the whole `span` before the window, or the window `lag` ago), scaled here to one
    window and floored at `baseline_floor`, so 0 -> 2 confirms nothing it would not page on."""
    if len(references) != len(windows):
        raise ValueError(f"{len(windows)} confirm windows but {len(references)} references")
    out = []
    for w, ref in zip(windows, references):
        if w.span is not None:
            raw = float(ref) * (cfg.window / w.span)
            kind: Literal["span", "lag"] = "span"
            horizon = w.span
        else:
            assert w.lag is not None
            raw, kind, horizon = float(ref), "lag", w.lag
        reference = max(raw, cfg.baseline_floor)
        ratio = observed / reference
        out.append(WindowCheck(w.name, kind, str(horizon), int(observed), round(reference, 6), round(raw, 6), round(ratio, 6), w.min_ratio, ratio >= w.min_ratio))
    return out


def window_len(cfg: AlertsConfig) -> int:
    """Intervals per window (the config validator guarantees an exact multiple)."""
    return round(cfg.window / cfg.step)


def baseline_len(cfg: AlertsConfig) -> int:
    return round(cfg.baseline / cfg.step)


def detect(
    window_total: Sequence[int],
    window_negative: Sequence[int],
    baseline_total: Sequence[int],
    cfg: AlertsConfig,
    *,
    rule: str = "volume",
    previous: int | None = None,
    seasonal: Sequence[float] | None = None,
    pinned_expected: float | None = None,
    confirm_refs: Sequence[float] | None = None,
) -> Detection:
    """Judge one window.

    `window_total` / `window_negative`: per-interval counts of the window (total, negative);
    `baseline_total`: per-interval counts before it (oldest first). `pinned_expected`: the
    expectation frozen when an alert for this incident opened; while the incident runs, the
    live baseline fills with the incident itself, so the smaller of the two is used and an
    ongoing story is not judged against its own volume. `confirm_refs`: one reference count
    per `cfg.confirm` window (see `confirm`); given, a level holds only when at least
    `cfg.confirm_min` of them confirm it. None: no confirmation (an open thread, a rule
    family other than volume).
    """
    if len(window_total) != len(window_negative):
        raise ValueError("window_total and window_negative must have the same length")
    exp = expectation(
        baseline_total,
        window_len(cfg),
        cfg.baseline_floor,
        seasonal=seasonal,
        test=cfg.test,
        max_dispersion=cfg.max_dispersion,
    )
    if pinned_expected is not None and pinned_expected < exp.expected:
        exp = Expectation(
            expected=max(pinned_expected, cfg.baseline_floor),
            raw=exp.raw,
            dispersion=exp.dispersion,
            blocks=exp.blocks,
            seasonal=exp.seasonal,
        )
    fig = score_window(int(sum(window_total)), int(sum(window_negative)), exp, previous=previous)
    level_rule, reasons = choose_level(fig, cfg.levels)
    confirmation: Confirmation | None = None
    if confirm_refs is not None and cfg.confirm_min > 0:
        checks = confirm(fig.observed, confirm_refs, cfg.confirm, cfg)
        ok = sum(c.confirmed for c in checks) >= cfg.confirm_min
        confirmation = Confirmation(cfg.confirm_min, tuple(checks), level_rule.level if level_rule else None, ok)
        if level_rule is not None:
            if ok:
                reasons = reasons + [f"confirmed on {sum(c.confirmed for c in checks)} of {len(checks)} longer horizons (≥ {cfg.confirm_min} needed)"]
            else:
                level_rule, reasons = None, []
    return Detection(
        rule=rule,
        level=level_rule.level if level_rule else None,
        figures=fig,
        reasons=tuple(reasons),
        level_rule=level_rule,
        expectation=exp,
        confirmation=confirmation,
    )


def back_to_baseline(recent_total: int, recent_len: int, exp: Expectation, cfg: AlertsConfig) -> bool:
    """True when the last `recent_len` intervals hold no more than `resolve_ratio` x what the
    baseline expects for that span: the incident has subsided and its alert may resolve."""
    per_interval = exp.expected / window_len(cfg)
    return recent_total <= cfg.resolve_ratio * per_interval * recent_len


# --------------------------------------------------------------------------------------------
# further rule families: negative share, rumour surge (via `detect`), high reach, pickup
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    """The verdict of one rule family besides volume: its level (None: it did not fire), the
    reasons as 'figure vs threshold' text, and its figures (stored under `figures.rules`)."""

    rule: str
    level: str | None
    reasons: tuple[str, ...] = ()
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons), **self.figures}


def judge_negative_share(
    window_negative: int, window_total: int, baseline_negative: int, baseline_total: int, rules: Sequence[NegativeShareRule]
) -> RuleResult:
    """A turn of opinion: the window's negative share against the baseline's, highest level
    first; each rule needs its count floor, its share and its rise over the baseline share."""
    share = window_negative / window_total if window_total else 0.0
    base = baseline_negative / baseline_total if baseline_total else 0.0
    rise = share - base
    figures = {"negative": window_negative, "total": window_total, "share": round(share, 6), "baseline_share": round(base, 6), "rise": round(rise, 6)}
    for r in sorted(rules, key=lambda r: level_rank(r.level), reverse=True):
        checks = [
            (window_negative >= r.min_negative, f"negative {window_negative} {'≥' if window_negative >= r.min_negative else '<'} {r.min_negative}"),
            (share >= r.min_share, f"negative share {_fmt(share)} {'≥' if share >= r.min_share else '<'} {_fmt(r.min_share)}"),
            (rise >= r.min_rise, f"rise over baseline share {_fmt(base)}: {_fmt(rise)} {'≥' if rise >= r.min_rise else '<'} {_fmt(r.min_rise)}"),
        ]
        if all(ok for ok, _ in checks):
            return RuleResult("negative_share", r.level, tuple(t for _, t in checks), figures)
    return RuleResult("negative_share", None, (), figures)


def judge_high_reach(posts: Sequence[Mapping[str, Any]], rules: Sequence[HighReachRule]) -> RuleResult:
    """One post from a very large account. `posts`: dicts with id, source, followers, reach,
    negative_score. The highest rule any single post meets sets the level; the figures name
    that post."""
    for r in sorted(rules, key=lambda r: level_rank(r.level), reverse=True):
        for p in sorted(posts, key=lambda p: (-(p.get("reach") or 0), str(p["id"]))):
            followers, reach = p.get("followers"), p.get("reach") or 0
            reasons = []
            if r.min_followers is not None and followers is not None and followers >= r.min_followers:
                reasons.append(f"author followers {followers} ≥ {r.min_followers}")
            if r.min_reach is not None and reach >= r.min_reach:
                reasons.append(f"post reach {reach} ≥ {r.min_reach}")
            if not reasons:
                continue
            if r.min_negative_score is not None:
                neg = p.get("negative_score")
                if neg is None or neg < r.min_negative_score:
                    continue
                reasons.append(f"negative score {_fmt(neg)} ≥ {_fmt(r.min_negative_score)}")
            figures = {"post_id": p["id"], "source": p.get("source"), "followers": followers, "reach": reach}
            return RuleResult("high_reach", r.level, tuple(reasons), figures)
    return RuleResult("high_reach", None, (), {})


def raise_level(level: str, steps: int) -> str:
    """`level` raised by `steps` (capped at red)."""
    return LEVELS[min(len(LEVELS), level_rank(level) + steps) - 1]


RULE_ORDER = ("volume", "negative_share", "rumor", "high_reach")


def combine(volume: Detection, others: Sequence[RuleResult], pickups: Mapping[str, int], pickup_raise: int) -> Detection:
    """One verdict per incident thread: the highest level any rule family reached (ties go to
    the earlier family in RULE_ORDER), raised by `pickup_raise` steps when official or national
    media carried the story in the window. Every family's verdict stays in `rules`, so the alert
    says which rule fired and with what figures, including those that did not set the level."""
    results = [RuleResult("volume", volume.level, volume.reasons, {})] + list(others)
    best = max(results, key=lambda r: (level_rank(r.level), -RULE_ORDER.index(r.rule) if r.rule in RULE_ORDER else -99))
    level, reasons = best.level, list(best.reasons)
    picked = sum(pickups.values())
    if level is not None and picked and pickup_raise:
        raised = raise_level(level, pickup_raise)
        tiers = ", ".join(f"{k} {v}" for k, v in sorted(pickups.items()))
        reasons.append(f"picked up by {tiers} post(s): {level} raised to {raised}")
        level = raised
    return replace(
        volume,
        rule=best.rule,
        level=level,
        reasons=tuple(reasons),
        rules=tuple(results),
        pickups=dict(pickups),
    )
