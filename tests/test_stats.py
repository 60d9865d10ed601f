"""Stats in lerobot's layout, exact."""

from __future__ import annotations

import numpy as np

from augment import stats


def test_image_stats_equal_the_direct_computation():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(7, 20, 30, 3), dtype=np.uint8)
    frames[..., 2] //= 3  # channels with different spreads
    got = stats.image_stats(frames)
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255.0
    expected = {"min": pixels.min(0), "max": pixels.max(0), "mean": pixels.mean(0), "std": pixels.std(0)}
    expected.update({k: np.quantile(pixels, q, axis=0) for k, q in zip(stats.QUANTILE_KEYS, stats.QUANTILES)})
    for key, value in expected.items():
        assert got[key].shape == (3, 1, 1)
        np.testing.assert_allclose(got[key].ravel(), value, rtol=1e-12, atol=1e-12, err_msg=key)
    assert got["count"].tolist() == [7]


def test_aggregate_pools_mean_and_variance_exactly():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 2)), rng.normal(3, 2, size=(30, 2))
    agg = stats.aggregate([{"x": stats.vector_stats(a)}, {"x": stats.vector_stats(b)}])["x"]
    both = np.concatenate([a, b])
    np.testing.assert_allclose(agg["mean"], both.mean(0))
    np.testing.assert_allclose(agg["std"], both.std(0))
    np.testing.assert_allclose(agg["min"], both.min(0))
    assert agg["count"].tolist() == [40]



def test_range_stats_are_vector_stats_of_the_range():
    for start, n, step in [(5, 1, 0), (7, 13, 0), (100, 1, 1), (100, 2, 1), (1234, 997, 1), (0, 3000, 1)]:
        got = stats.range_stats(start, n, step)
        want = stats.vector_stats(np.arange(n) * step + start)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].shape == want[key].shape
            np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-9, err_msg=key)
