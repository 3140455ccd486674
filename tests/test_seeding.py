"""k-means++ draws: rows are drawn from block sums of the potential, recomputing only the
drawn block, and must land where a draw from the full cumulative sum would."""

import numpy as np
import pytest

from anykmeans._engine import SEEDING_BLOCK_ROWS, Engine
from anykmeans._init import _draw


def _problem(n=1000, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    weights = rng.uniform(0.5, 2.0, size=n)
    weights[rng.choice(n, size=n // 4, replace=False)] = 0  # never to be drawn
    closest = rng.uniform(0.0, 5.0, size=n)
    pending = X[7:8]
    terms = weights * np.minimum(closest, ((X - pending) ** 2).sum(axis=1))
    n_blocks = -(-n // SEEDING_BLOCK_ROWS)
    padded = np.zeros(n_blocks * SEEDING_BLOCK_ROWS)
    padded[:n] = terms
    block_sums = padded.reshape(n_blocks, SEEDING_BLOCK_ROWS).sum(axis=1)
    return X, weights, closest, pending, terms, block_sums


def _run(placement, X, weights, closest, pending, block_sums, targets):
    xp = placement.xp
    engine = Engine.create(xp, placement.device, n_features=X.shape[1], n_columns=2, dtype=xp.float64)
    args = [placement.asarray(a, "float64") for a in (X, weights, closest, pending, block_sums, targets)]
    return placement.to_numpy(_draw(*args, engine)).astype(np.int64)


def test_draws_match_the_full_cumulative_sum(placement):
    X, weights, closest, pending, terms, block_sums = _problem()
    targets = np.random.default_rng(1).uniform(size=200) * block_sums.sum()
    got = _run(placement, X, weights, closest, pending, block_sums, targets)
    np.testing.assert_array_equal(got, np.searchsorted(np.cumsum(terms), targets, side="right"))
    assert (terms[got] > 0).all()


def test_draws_at_block_edges_take_a_row_with_a_positive_term(placement):
    X, weights, closest, pending, terms, block_sums = _problem()
    cumulative = np.cumsum(block_sums)
    # A target exactly at a block's end belongs to the next block, whose first rows may weigh
    # nothing; a target at the very end (rounding) belongs to the last row with a term.
    targets = np.concatenate([[0.0], cumulative[:-1], cumulative[-1:] * (1 + 1e-12)])
    got = _run(placement, X, weights, closest, pending, block_sums, targets)
    positive = np.flatnonzero(terms > 0)
    starts = np.arange(len(block_sums)) * SEEDING_BLOCK_ROWS
    expected = [positive[positive >= start][0] for start in starts] + [positive[-1]]
    np.testing.assert_array_equal(got, expected)
