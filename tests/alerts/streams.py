"""Deterministic synthetic streams for the alert tests: a seasonal (daily) base rate with
injected spikes, slow growth and plateaus. Same seed, same counts, on every machine."""

from __future__ import annotations

import math

import numpy as np


def seasonal_rate(minutes: int, base: float = 2.0, amplitude: float = 0.5, start_minute: int = 0) -> np.ndarray:
    """Posts per minute following a daily cycle: base x (1 + amplitude x sin), peak mid-day."""
    t = np.arange(start_minute, start_minute + minutes)
    return base * (1.0 + amplitude * np.sin(2 * math.pi * (t % 1440) / 1440.0 - math.pi / 2))


def draw(rate: np.ndarray, seed: int) -> np.ndarray:
    """Poisson counts for a rate per minute."""
    return np.random.default_rng(seed).poisson(rate).astype(int)


def split_negative(total: np.ndarray, share: np.ndarray | float, seed: int) -> np.ndarray:
    """How many of each minute's posts are negative (binomial with the given share)."""
    shares = np.broadcast_to(np.asarray(share, dtype=float), total.shape)
    return np.random.default_rng(seed + 1).binomial(total, shares).astype(int)
