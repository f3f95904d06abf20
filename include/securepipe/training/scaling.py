"""Feature scaling inside ε: per-feature bounds from one Gaussian-noised histogram on a public grid.

Why: the model standardises its inputs, and a mean and standard deviation computed exactly
from the training rows would be released with the model outside the DP guarantee. Here
every numeric feature is counted into the same public, data-independent grid of bins
(log-spaced, 20 per decade, both signs), all features' histograms are released at once
through one Gaussian mechanism, and the scaling is derived from the noisy counts alone
(post-processing, free of further privacy cost): the bins between the noisy 1st and 99th
percentile give a low and a high bound, and a feature is scaled by their midpoint and half
width. Missing values take the midpoint.

Accounting: adding or removing one row changes one count per feature by one, so the L2
sensitivity of the released vector is sqrt(d) for d numeric features; the noise standard
deviation is `noise_multiplier * sqrt(d)`, and the mechanism is a `GaussianDpEvent` with
that noise multiplier, composed with DP-SGD by the accountant (accounting.py).

Noisy counts below `THRESHOLD_SIGMAS` noise deviations are dropped before percentiles are
read, so empty bins far away cannot pose as data (with ~480 bins per feature, 5 deviations
keep the chance of one stray bin per run near 1e-3). Where too little survives at full
resolution, neighbouring bins are merged (5, then 20: one decade) and thresholded again;
a feature that still has nothing left is left unscaled (midpoint 0, half width 1) and the
card says so.
"""
from __future__ import annotations

import math
import secrets

import numpy as np

GRID = np.concatenate([-np.logspace(9, -3, 241), [0.0], np.logspace(-3, 9, 241)])
LOW_QUANTILE, HIGH_QUANTILE = 0.01, 0.99
THRESHOLD_SIGMAS = 5.0
MERGES = (1, 5, 20)
MIN_SURVIVING_SHARE = 0.5


def noisy_histograms(x: np.ndarray, noise_multiplier: float, rng: np.random.Generator) -> np.ndarray:
    """Per feature (rows of the result), counts over GRID's bins plus Gaussian noise: the one release."""
    d = x.shape[1]
    counts = np.zeros((d, len(GRID) + 1))
    for j in range(d):
        present = x[:, j][~np.isnan(x[:, j])]
        counts[j] = np.bincount(np.searchsorted(GRID, present, side="right"), minlength=len(GRID) + 1)
    return counts + rng.normal(0.0, noise_multiplier * math.sqrt(d), counts.shape)


def _bounds(noisy: np.ndarray, noise_std: float, n: int) -> tuple[float, float] | None:
    """Low and high bound from one feature's noisy counts, or None when too little survives."""
    edges = np.concatenate([[GRID[0]], GRID, [GRID[-1]]])  # open tail bins end at the grid's ends
    for merge in MERGES:
        groups = np.arange(len(noisy)) // merge
        merged = np.bincount(groups, weights=noisy)
        kept = np.where(merged >= THRESHOLD_SIGMAS * noise_std * math.sqrt(merge), merged, 0.0)
        if kept.sum() < MIN_SURVIVING_SHARE * n:
            continue
        share = np.cumsum(kept) / kept.sum()
        low_group = int(np.searchsorted(share, LOW_QUANTILE, side="right"))
        high_group = int(np.searchsorted(share, HIGH_QUANTILE, side="left"))
        low = edges[min(low_group * merge, len(edges) - 1)]
        high = edges[min((high_group + 1) * merge, len(edges) - 1)]
        return float(low), float(high)
    return None


def dp_scaling(x: np.ndarray, noise_multiplier: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Midpoint and half width per feature from the noisy histograms, and how each was found."""
    d = x.shape[1]
    center, half = np.zeros(d), np.ones(d)
    how = []
    if d == 0:
        return center, half, how
    # Fresh OS entropy, never the run's seed: noise a reader can regenerate protects nothing.
    noisy = noisy_histograms(x, noise_multiplier, np.random.default_rng(secrets.randbits(128)))
    for j in range(d):
        # The number of rows is public (the accountant's sampling rate uses it too); per-feature
        # counts of present values are not, so they do not steer the choice.
        bounds = _bounds(noisy[j], noise_multiplier * math.sqrt(d), len(x))
        if bounds is None:
            how.append("unscaled: too few rows for DP bounds")
            continue
        low, high = bounds
        center[j], half[j] = (low + high) / 2, max((high - low) / 2, 1e-3)
        how.append("scaled by DP bounds")
    return center, half, how
