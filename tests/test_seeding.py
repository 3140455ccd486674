"""k-means++ draws: rows are drawn from block sums of the potential, recomputing only the
drawn block, and must land where a draw from the full cumulative sum would. Each namespace's
selected kernels are tested, and the reference draw on every namespace."""

import numpy as np

from anykmeans import backends
from anykmeans._seeding import SEEDING_BLOCK_ROWS
from anykmeans.backends import reference


def _problem(n=1000, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    weights = rng.uniform(0.5, 2.0, size=n)
    weights[rng.choice(n, size=n // 4, replace=False)] = 0  # never to be drawn
    weights[-3:] = 0  # the last row with a term is not the last row
    closest = rng.uniform(0.0, 5.0, size=n)
    pending = X[7:8]
    terms = weights * np.minimum(closest, ((X - pending) ** 2).sum(axis=1))
    n_blocks = -(-n // SEEDING_BLOCK_ROWS)
    padded = np.zeros(n_blocks * SEEDING_BLOCK_ROWS)
    padded[:n] = terms
    block_sums = padded.reshape(n_blocks, SEEDING_BLOCK_ROWS).sum(axis=1)
    return X, weights, closest, pending, terms, block_sums


def _draw_on(placement, kernels="auto"):
    """Draws by the kernels ``auto`` selects for the placement, or by the reference."""

    def draw(X, weights, closest, pending, block_sums, targets):
        xp = placement.xp
        args = [placement.asarray(a, "float64") for a in (X, weights, closest, pending, block_sums, targets)]
        if kernels == "reference":
            drawn = reference.seeding_draw(*args, block_rows=SEEDING_BLOCK_ROWS, shift=None, xp=xp)
        else:
            selected = backends.select_kernels(kernels, xp, placement.device)
            drawn = selected.seeding_draw(*args, block_rows=SEEDING_BLOCK_ROWS, shift=None, xp=xp)
        return placement.to_numpy(drawn).astype(np.int64)

    return draw


def _draws_match_the_full_cumulative_sum(draw):
    X, weights, closest, pending, terms, block_sums = _problem()
    targets = np.random.default_rng(1).uniform(size=200) * block_sums.sum()
    got = draw(X, weights, closest, pending, block_sums, targets)
    np.testing.assert_array_equal(got, np.searchsorted(np.cumsum(terms), targets, side="right"))
    assert (terms[got] > 0).all()


def _draws_at_block_edges_take_a_row_with_a_positive_term(draw):
    X, weights, closest, pending, terms, block_sums = _problem()
    cumulative = np.cumsum(block_sums)
    # A target exactly at a block's end belongs to the next block, whose first rows may weigh
    # nothing; a target at the very end (rounding) belongs to the last row with a term.
    targets = np.concatenate([[0.0], cumulative[:-1], cumulative[-1:] * (1 + 1e-12)])
    got = draw(X, weights, closest, pending, block_sums, targets)
    positive = np.flatnonzero(terms > 0)
    starts = np.arange(len(block_sums)) * SEEDING_BLOCK_ROWS
    expected = [positive[positive >= start][0] for start in starts] + [positive[-1]]
    np.testing.assert_array_equal(got, expected)


def test_draws_match_the_full_cumulative_sum(placement):
    _draws_match_the_full_cumulative_sum(_draw_on(placement))


def test_draws_at_block_edges_take_a_row_with_a_positive_term(placement):
    _draws_at_block_edges_take_a_row_with_a_positive_term(_draw_on(placement))


def test_reference_draw_matches_the_full_cumulative_sum(placement):
    _draws_match_the_full_cumulative_sum(_draw_on(placement, "reference"))


def test_reference_draw_at_block_edges_takes_a_row_with_a_positive_term(placement):
    _draws_at_block_edges_take_a_row_with_a_positive_term(_draw_on(placement, "reference"))


def _draw_past_the_total_skips_blocks_without_terms(draw):
    X, weights, closest, pending, _, _ = _problem()
    weights[700:] = 0  # the last block (rows 768 to 999) has no term at all
    terms = weights * np.minimum(closest, ((X - pending) ** 2).sum(axis=1))
    padded = np.zeros(-(-len(X) // SEEDING_BLOCK_ROWS) * SEEDING_BLOCK_ROWS)
    padded[: len(X)] = terms
    block_sums = padded.reshape(-1, SEEDING_BLOCK_ROWS).sum(axis=1)
    assert block_sums[-1] == 0
    got = draw(X, weights, closest, pending, block_sums, np.array([block_sums.sum() * (1 + 1e-12)]))
    np.testing.assert_array_equal(got, [np.flatnonzero(terms > 0)[-1]])


def test_a_draw_past_the_total_takes_the_last_row_with_a_term(placement):
    _draw_past_the_total_skips_blocks_without_terms(_draw_on(placement))
    _draw_past_the_total_skips_blocks_without_terms(_draw_on(placement, "reference"))
