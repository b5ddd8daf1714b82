"""The benchmark's scoring (bench/alerts.py) on hand-made cases, and its reference detectors."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from bench.alerts import elastalert_spike, robust_z, score

D = datetime(2015, 3, 1)
H = timedelta(hours=1)
WINDOWS = [(D + 10 * H, D + 20 * H), (D + 40 * H, D + 50 * H)]


def test_alerts_under_an_hour_apart_are_one_event() -> None:
    s = score([D + 12 * H, D + 12 * H + timedelta(minutes=59), D + 13 * H + timedelta(minutes=58)], WINDOWS)
    assert (s.events, s.hits) == (1, 1)
    assert s.precision == 1.0 and s.recall == 0.5 and s.f1 == pytest.approx(2 / 3)
    assert s.earliness == pytest.approx(0.2)


def test_one_hit_per_window_and_everything_else_is_a_false_alarm() -> None:
    s = score([D + 11 * H, D + 15 * H, D + 30 * H, D + 45 * H], WINDOWS)
    assert (s.events, s.hits) == (4, 2)  # the second event in window one counts as a false alarm
    assert s.precision == 0.5 and s.recall == 1.0
    assert s.early == (0.1, 0.5) and s.earliness == pytest.approx(0.3)
    # an event that starts before a window and runs into it is judged by its first alert
    s = score([D + 9.5 * H, D + 10.2 * H], WINDOWS)
    assert (s.events, s.hits, s.f1) == (1, 0, 0.0)
    assert score([], WINDOWS).f1 == 0.0


def test_reference_detectors() -> None:
    values = np.full(500, 10.0)
    values[300:303] = 100.0
    assert elastalert_spike(values, window=3, height=3.0, floor=50)[0] == 300
    assert elastalert_spike(values, window=3, height=3.0, floor=500) == []
    hits = robust_z(values, history=50, z=5.0, floor=20)
    assert hits[:3] == [300, 301, 302]
