"""Intervals of paired differences (task2sim.stats): they cover a planted difference as often as
they say, on synthetic data with the structure of the real comparisons."""

import numpy as np
import pytest

from task2sim.stats import crossed_interval, paired_interval


def _simulate(rng, seeds, tasks, mu, sd_task, sd_seed, sd_cell):
    return (mu + sd_task * rng.standard_normal(tasks)[None, :] + sd_seed * rng.standard_normal(seeds)[:, None]
            + sd_cell * rng.standard_normal((seeds, tasks)))


@pytest.mark.parametrize("seeds,tasks,sd_task,sd_seed", [(3, 12, 2.0, 1.0), (3, 4, 1.0, 3.0), (5, 4, 3.0, 0.5)])
def test_crossed_interval_covers_a_planted_difference_at_its_level(seeds, tasks, sd_task, sd_seed):
    rng = np.random.default_rng(0)
    runs = 1500
    covered = sum(crossed_interval(_simulate(rng, seeds, tasks, 1.5, sd_task, sd_seed, 1.0)).covers(1.5)
                  for _ in range(runs))
    # 95 % nominal (Satterthwaite's df make it approximate: 93-95 % measured over 3000 runs each);
    # the binomial sd of the rate over 1500 runs is 0.6 points
    assert 0.925 <= covered / runs <= 0.985


def test_cells_counted_as_independent_would_undercover_when_seeds_share_backbones():
    """The reason for the crossed model: a seed effect shared by all tasks of a seed."""
    rng = np.random.default_rng(1)
    runs = 1000
    naive = sum(paired_interval(_simulate(rng, 3, 12, 1.5, 1.0, 3.0, 1.0).ravel()).covers(1.5) for _ in range(runs))
    crossed = sum(crossed_interval(_simulate(rng, 3, 12, 1.5, 1.0, 3.0, 1.0)).covers(1.5) for _ in range(runs))
    # measured: naive about 0.6, crossed 0.93 (3000 runs)
    assert naive / runs < 0.8 < 0.91 <= crossed / runs


def test_crossed_interval_falls_back_to_one_axis():
    row = [1.0, 2.0, 0.5, 1.5]
    one_seed = crossed_interval([row])
    iv = paired_interval(row)
    assert (one_seed.mean, one_seed.low, one_seed.high, one_seed.n) == (iv.mean, iv.low, iv.high, 4)
    one_task = crossed_interval([[1.0], [2.0], [0.5]])
    assert one_task.n == 3 and one_task.low < one_task.mean < one_task.high
    flat = crossed_interval(np.full((3, 4), 2.0))
    assert flat.low == flat.high == 2.0
    with pytest.raises(ValueError):
        crossed_interval([1.0, 2.0])
