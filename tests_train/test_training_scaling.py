"""DP input scaling: bounds on the public grid from noised histograms, never exact statistics."""
from __future__ import annotations

import numpy as np

from securepipe.training import accounting, scaling


def _features(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(105, 30, n), rng.normal(27, 5, n), rng.integers(18, 91, n).astype(float)])
    x[rng.random(n) < 0.05, 1] = np.nan  # missing values are not counted
    return x


def test_bounds_lie_on_the_public_grid_and_cover_the_bulk_of_each_feature():
    x = _features(16_000)
    sigma = accounting.release_noise(3.0, 1e-5)["scaling"]
    center, half, how = scaling.dp_scaling(x, sigma)
    assert how == ["scaled by DP bounds"] * 3
    for j in range(3):
        low, high = center[j] - half[j], center[j] + half[j]
        assert np.isclose(scaling.GRID, low).any() and np.isclose(scaling.GRID, high).any()
        p10, p90 = np.nanquantile(x[:, j], [0.10, 0.90])
        assert low <= p10 and high >= p90  # the scaled bulk lies within about [-1, 1]
        assert high - low < 4 * (np.nanquantile(x[:, j], 0.99) - np.nanquantile(x[:, j], 0.01))


def test_noise_is_fresh_each_time_and_too_few_rows_leave_a_feature_unscaled():
    x = _features(16_000)
    first, second = (scaling.noisy_histograms(x, 30.0, np.random.default_rng()) for _ in range(2))
    assert not np.allclose(first, second)
    center, half, how = scaling.dp_scaling(_features(100), 30.0)
    assert how == ["unscaled: too few rows for DP bounds"] * 3 and np.all(center == 0) and np.all(half == 1)
