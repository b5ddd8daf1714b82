"""The pure detection math: tails, expectation, levels — over count arrays, no store."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from alerts.detector import (
    Expectation,
    back_to_baseline,
    block_sums,
    choose_level,
    detect,
    expectation,
    negbin_logsf,
    poisson_logsf,
    robust_mean_and_dispersion,
    score_window,
)
from tests.alerts.streams import draw, seasonal_rate, split_negative
from yuqing.config import AlertsConfig, LevelRule

CFG = AlertsConfig()  # 1 min interval, 15 min window, 6 h baseline


# -- tails ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k,mu",
    [(1, 0.5), (2, 1.0), (5, 1.0), (40, 3.0), (100, 100.0), (130, 100.0), (80, 100.0), (3, 10.0), (700, 500.0)],
)
def test_poisson_tail_matches_scipy(k: int, mu: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    assert poisson_logsf(k, mu) == pytest.approx(stats.poisson.logsf(k - 1, mu), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("k,mu,var", [(5, 1, 3), (40, 3, 30), (130, 100, 400), (80, 100, 400), (300, 100, 1000), (2, 10, 50)])
def test_negbin_tail_matches_scipy(k: int, mu: float, var: float) -> None:
    stats = pytest.importorskip("scipy.stats")
    r = mu * mu / (var - mu)
    expected = stats.nbinom.logsf(k - 1, r, r / (r + mu))
    assert negbin_logsf(k, mu, var) == pytest.approx(expected, rel=1e-8, abs=1e-12)


def test_tails_edge_cases() -> None:
    assert poisson_logsf(0, 3.0) == 0.0  # P(X >= 0) = 1
    assert poisson_logsf(1, 0.0) == -math.inf
    # hand check: P(X >= 2 | mu = 1) = 1 - 2/e
    assert math.exp(poisson_logsf(2, 1.0)) == pytest.approx(1 - 2 / math.e)
    # a huge spike stays finite in log space (p underflows, the score must not)
    assert -14700 < poisson_logsf(5000, 100.0) < -14600
    # no overdispersion -> the negative binomial is the Poisson
    assert negbin_logsf(10, 4.0, 4.0) == poisson_logsf(10, 4.0)
    # overdispersion makes the same count less surprising
    assert negbin_logsf(10, 4.0, 12.0) > poisson_logsf(10, 4.0)


# -- expectation --------------------------------------------------------------------------------


def test_block_sums_align_to_the_end() -> None:
    assert block_sums([9, 1, 1, 2, 2, 3, 3], 2) == [2.0, 4.0, 6.0]  # the 9 is an incomplete block


def test_a_past_spike_in_the_baseline_does_not_hide_the_next() -> None:
    blocks = [30.0] * 23 + [600.0]
    mean, _ = robust_mean_and_dispersion(blocks)
    assert mean < 40  # the naive mean would be 53.75
    assert sum(blocks) / len(blocks) > 50


def test_floor_keeps_zero_to_two_from_paging() -> None:
    quiet = [0] * CFG_BASELINE_LEN
    for n in (1, 2, 3, 4):
        window = [0] * 15
        window[-1] = n
        det = detect(window, [0] * 15, quiet, CFG)
        assert det.level is None, (n, det.explain())
        assert det.figures.expected == CFG.baseline_floor


CFG_BASELINE_LEN = 360


def test_five_posts_on_an_empty_watchlist_is_blue_not_more() -> None:
    window = [0] * 10 + [1] * 5
    det = detect(window, [1] * 0 + [0] * 15, [0] * CFG_BASELINE_LEN, CFG)
    assert det.level == "blue"
    assert det.rule == "volume"
    assert any("count 5 ≥ 5" in r for r in det.reasons)


def test_seasonal_reference_suppresses_the_usual_peak() -> None:
    exp = expectation([2] * 360, 15, 1.0, seasonal=[118.0, 125.0, 120.0])
    assert exp.expected == 120.0 and exp.raw == 30.0 and exp.seasonal == 120.0
    det = detect([8] * 15, [1] * 15, [2] * 360, CFG, seasonal=[118.0, 125.0, 120.0])
    assert det.level is None
    det = detect([8] * 15, [1] * 15, [2] * 360, CFG)
    assert det.level is not None


def test_overdispersed_baseline_tolerates_ordinary_wobble() -> None:
    # blocks alternate 10 and 50 per window: variance far above the mean
    baseline = ([10 // 15 + (1 if i < 10 % 15 else 0) for i in range(15)] + [50 // 15 + (1 if i < 50 % 15 else 0) for i in range(15)]) * 12
    window = [5] * 15  # 75: busy but within the usual swing
    poisson_cfg = AlertsConfig(test="poisson")
    assert detect(window, [0] * 15, baseline, poisson_cfg).level is not None
    det = detect(window, [0] * 15, baseline, CFG)
    assert det.figures.dispersion > 1.0
    assert det.level is None
    # a real spike still pages with the overdispersed test
    assert detect([20] * 15, [0] * 15, baseline, CFG).level is not None


def test_max_dispersion_caps_the_variance() -> None:
    exp = expectation([0] * 15 + [20] * 15, 15, 1.0, max_dispersion=2.0)
    assert exp.dispersion == 1.0  # two blocks only: too few to estimate a variance
    baseline = ([0] * 15 + [20] * 15) * 6
    assert expectation(baseline, 15, 1.0).dispersion > 2.0
    assert expectation(baseline, 15, 1.0, max_dispersion=2.0).dispersion == 2.0
    assert expectation(baseline, 15, 1.0, test="poisson").dispersion == 1.0


# -- levels ---------------------------------------------------------------------------------


def _spike(total_per_min: int, negative_per_min: int, base_per_min: int = 1) -> tuple[list[int], list[int], list[int]]:
    return [total_per_min] * 15, [negative_per_min] * 15, [base_per_min] * CFG_BASELINE_LEN


def test_levels_checked_red_down_with_their_reasons() -> None:
    # 15/window usual; 150 observed (ratio 10), 60 % negative -> red
    det = detect(*_spike(10, 6), CFG)
    assert det.level == "red"
    assert det.reasons == ("count 150 ≥ 40", "ratio 10 ≥ 8", "p " + det.reasons[2].split(" ", 1)[1], "negative share 0.6 ≥ 0.5")
    assert det.figures.p_value < 1e-30
    assert det.explain().startswith("volume rule red: count 150 ≥ 40")
    # the same volume, 30 % negative: orange and red need negativity -> yellow
    det = detect(*_spike(10, 3), CFG)
    assert det.level == "yellow"
    # 45 % negative: orange (needs 0.4) but not red (0.5)
    det = detect(*_spike(20, 9), CFG)
    assert det.level == "orange"


def test_every_threshold_comes_from_config() -> None:
    strict = AlertsConfig(
        levels=[LevelRule(level="blue", min_count=200, min_ratio=2.0), LevelRule(level="red", min_count=100, min_ratio=50.0)],
        baseline_floor=5.0,
    )
    det = detect(*_spike(10, 6), strict)
    assert det.level is None  # 150 < 200 for blue, ratio 10 < 50 for red
    det = detect([0] * 15, [0] * 15, [0] * CFG_BASELINE_LEN, strict)
    assert det.figures.expected == 5.0
    lenient = AlertsConfig(levels=[LevelRule(level="orange", min_count=2, min_ratio=1.5, max_p_value=0.5)])
    assert detect([0] * 13 + [1, 1], [0] * 15, [0] * CFG_BASELINE_LEN, lenient).level == "orange"


def test_choose_level_none_when_nothing_holds() -> None:
    fig = score_window(3, 0, Expectation(expected=10.0, raw=10.0, dispersion=1.0, blocks=24))
    assert choose_level(fig, CFG.levels) == (None, [])
    assert fig.ratio == 0.3 and fig.p_value > 0.9


def test_growth_and_shares_in_figures() -> None:
    det = detect(*_spike(4, 1), CFG, previous=20)
    f = det.figures
    assert (f.observed, f.negative, f.negative_share, f.previous, f.growth) == (60, 15, 0.25, 20, 3.0)
    assert score_window(0, 0, Expectation(1.0, 0.0, 1.0, 24)).negative_share is None
    with pytest.raises(ValueError):
        score_window(3, 4, Expectation(1.0, 0.0, 1.0, 24))


def test_pinned_expectation_keeps_a_plateau_alerting() -> None:
    # three hours of plateau at 10/min inside a 6 h baseline: the live baseline absorbs it
    baseline = [1] * 180 + [10] * 180
    live = detect([10] * 15, [6] * 15, baseline, CFG)
    assert live.level is None
    pinned = detect([10] * 15, [6] * 15, baseline, CFG, pinned_expected=15.0)
    assert pinned.level == "red" and pinned.figures.expected == 15.0
    # a pin above the live expectation is ignored (the natural level rose)
    assert detect([1] * 15, [0] * 15, [1] * 360, CFG, pinned_expected=500.0).figures.expected == 15.0


def test_back_to_baseline() -> None:
    exp = Expectation(expected=15.0, raw=15.0, dispersion=1.0, blocks=24)  # 1 per minute
    assert back_to_baseline(45, 30, exp, CFG)  # 1.5 x 30
    assert not back_to_baseline(46, 30, exp, CFG)
    assert back_to_baseline(60, 30, exp, AlertsConfig(resolve_ratio=2.0))


# -- synthetic streams ------------------------------------------------------------------------


def _slide(
    total: np.ndarray, negative: np.ndarray, cfg: AlertsConfig, step: int = 5, seasonal_days: int = 0, start: int = 0
) -> list[tuple[int, str | None]]:
    """Judge every `step` minutes once a full baseline (and the seasonal days) exist."""
    out = []
    w, b = 15, 360
    first = max(w + b, seasonal_days * 1440 + w, start)
    for end in range(first, len(total) + 1, step):
        seasonal = [float(total[end - d * 1440 - w : end - d * 1440].sum()) for d in range(1, seasonal_days + 1)]
        det = detect(
            total[end - w : end].tolist(),
            negative[end - w : end].tolist(),
            total[end - w - b : end - w].tolist(),
            cfg,
            seasonal=seasonal or None,
        )
        out.append((end, det.level))
    return out


def test_daily_cycle_pages_without_a_seasonal_reference_and_not_with_one() -> None:
    # a strong daily cycle (trough-to-peak 4x): a trailing 6 h baseline lags the morning ramp
    minutes = 4 * 1440
    total = draw(seasonal_rate(minutes, base=2.0, amplitude=0.6), seed=7)
    negative = split_negative(total, 0.3, seed=7)
    trailing_only = [m for m, lvl in _slide(total, negative, CFG, start=2 * 1440) if lvl]
    assert trailing_only, "this stream is meant to fool a trailing baseline"
    with_seasonal = [m for m, lvl in _slide(total, negative, CFG, seasonal_days=2) if lvl]
    assert with_seasonal == []


def test_injected_spike_is_found_at_its_start_with_its_level() -> None:
    minutes = 1440
    rate = seasonal_rate(minutes, base=2.0, amplitude=0.6)
    share = np.full(minutes, 0.3)
    rate[900:960] += 30.0  # an incident at 15:00, one hour, 65 % negative
    share[900:960] = 0.65
    total = draw(rate, seed=11)
    negative = split_negative(total, share, seed=11)
    verdicts = _slide(total, negative, CFG)
    fired = [(m, lvl) for m, lvl in verdicts if lvl]
    assert fired, "the spike was missed"
    first_minute, first_level = fired[0]
    assert 900 < first_minute <= 905  # the first judgement after it starts
    assert {lvl for m, lvl in fired if 915 <= m <= 960} == {"red"}
    assert all(900 < m <= 960 + 15 for m, _ in fired)  # nothing outside the incident


def test_gentle_growth_does_not_page_but_a_runaway_does() -> None:
    minutes = 900
    t = np.arange(minutes)
    gentle = np.full(minutes, 2.0) * (1 + 0.3 * t / minutes)  # +30 % over 15 h
    total = draw(gentle, seed=3)
    negative = split_negative(total, 0.3, seed=3)
    assert [lvl for _, lvl in _slide(total, negative, CFG) if lvl] == []
    runaway = np.full(minutes, 2.0)
    runaway[600:] = 2.0 * np.exp((t[600:] - 600) / 30.0)  # doubling every ~21 min
    total = draw(np.minimum(runaway, 500.0), seed=4)
    negative = split_negative(total, 0.6, seed=4)
    fired = [(m, lvl) for m, lvl in _slide(total, negative, CFG, step=1) if lvl]
    assert fired[0][1] == "blue" and fired[0][0] < 630  # caught while still small
    assert next(m for m, lvl in fired if lvl == "red") < 690  # red within 90 min of the start
    # without the service's pinned baseline the plateau would be absorbed: see the pin test


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"bucket": "2m"}, "bucket must be one of"),
        ({"bucket": "5m", "window": "12m"}, "window must be a whole number of buckets"),
        ({"resolve_after": "90s"}, "must be whole minutes"),
        ({"levels": [{"level": "red"}, {"level": "red", "min_count": 9}]}, "one rule only"),
        ({"baseline": "20m"}, "at least two windows"),
        ({"resolve_ratio": 0.5}, "greater than or equal to 1"),
    ],
)
def test_config_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertsConfig(**kwargs)


def test_count_bucket_follows_the_run_interval() -> None:
    """The detector may run more often than it counts (the demo runs every 10 s): it then
    judges whole minutes; a coarser run interval counts in the largest bucket that fits."""
    from datetime import timedelta

    assert AlertsConfig().step == timedelta(minutes=1)
    assert AlertsConfig(interval="10s", window="5m", baseline="8h").step == timedelta(minutes=1)
    assert AlertsConfig(interval="5m").step == timedelta(minutes=5)
    assert AlertsConfig(interval="1h", window="2h", baseline="1d", resolve_after="1h").step == timedelta(hours=1)
    assert AlertsConfig(interval="1h").step == timedelta(minutes=15)  # 15 min window: 15 min buckets
    assert AlertsConfig(interval="5m", bucket="1m").step == timedelta(minutes=1)


# -- multi-window confirmation ----------------------------------------------------------------


def _spike_inputs() -> tuple[list[int], list[int], list[int]]:
    """A steady 1 post a minute for 6 h, then 2 a minute for 15 min: blue on the window alone."""
    window = [2] * 15
    return window, [0] * 15, [1] * 360


def test_confirmation_passes_when_a_longer_horizon_agrees() -> None:
    window, neg, base = _spike_inputs()
    det = detect(window, neg, base, CFG, confirm_refs=[180.0, 15.0])  # 3 h before: 180; last week: 15
    assert det.level == "blue"
    c = det.confirmation
    assert c is not None and c.confirmed and c.held == "blue" and c.required == 1
    span, lag = c.windows
    assert (span.name, span.kind, span.observed, span.reference, span.ratio, span.confirmed) == ("last 3 h", "span", 30, 15.0, 2.0, True)
    assert (lag.name, lag.kind, lag.reference, lag.ratio, lag.confirmed) == ("same time last week", "lag", 15.0, 2.0, True)
    assert det.reasons[-1] == "confirmed on 2 of 2 longer horizons (≥ 1 needed)"
    assert c.as_dict()["confirmed_by"] == 2 and len(c.as_dict()["windows"]) == 2


def test_a_spike_no_longer_horizon_confirms_does_not_fire() -> None:
    window, neg, base = _spike_inputs()
    # the 3 h before held 50 a window, and last week this quarter hour held 55
    det = detect(window, neg, base, CFG, confirm_refs=[600.0, 55.0])
    assert det.level is None and det.reasons == ()
    c = det.confirmation
    assert c is not None and c.held == "blue" and not c.confirmed
    assert [w.confirmed for w in c.windows] == [False, False]
    assert det.explain().startswith("volume: blue holds on the window but is not confirmed (last 3 h: 30 vs 50 in the span before, ratio 0.6 < 1.5")
    # two of two required: one agreeing horizon is not enough
    both = CFG.model_copy(update={"confirm_min": 2})
    assert detect(window, neg, base, both, confirm_refs=[180.0, 55.0]).level is None
    assert detect(window, neg, base, CFG, confirm_refs=[180.0, 55.0]).level == "blue"


def test_confirmation_is_skipped_without_references_or_when_off() -> None:
    window, neg, base = _spike_inputs()
    assert detect(window, neg, base, CFG).confirmation is None  # an open thread: not judged
    off = CFG.model_copy(update={"confirm_min": 0})
    d = detect(window, neg, base, off, confirm_refs=[600.0, 55.0])
    assert d.level == "blue" and d.confirmation is None


def test_confirmation_reference_is_floored() -> None:
    """Nothing in the reference span: the floor (1 a window) stands in, so 0 -> 2 confirms
    nothing the level rules would not page on anyway."""
    from alerts.detector import confirm

    [w] = confirm(2, [0.0], [CFG.confirm[1]], CFG)
    assert (w.reference, w.raw_reference, w.ratio) == (1.0, 0.0, 2.0)
    with pytest.raises(ValueError, match="2 confirm windows but 1 references"):
        detect(*_spike_inputs(), CFG, confirm_refs=[1.0])


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"confirm": [{"name": "x", "span": "3h", "lag": "7d"}]}, "exactly one of span"),
        ({"confirm": [{"name": "x"}]}, "exactly one of span"),
        ({"confirm": [{"name": "x", "span": "5m"}]}, "span must be at least the window"),
        ({"confirm": [{"name": "x", "lag": "7d"}, {"name": "x", "span": "1h"}]}, "names must be unique"),
        ({"confirm_min": 3}, "confirm_min is 3 but only 2"),
        ({"confirm": [{"name": "x", "span": "3h", "min_ratio": 0.5}]}, "greater than or equal to 1"),
        ({"bucket": "15m", "confirm": [{"name": "x", "span": "20m"}]}, "whole number of buckets"),
        ({"overrides": {"water": {"confirm_min": 5}}}, "overrides.water.confirm_min is 5"),
    ],
)
def test_confirm_config_is_validated(kw: dict, message: str) -> None:
    base = {"interval": "15m", "window": "15m", "baseline": "6h", "resolve_after": "30m"} if kw.get("bucket") else {}
    with pytest.raises(ValidationError, match=message):
        AlertsConfig(**{**base, **kw})
