"""The noise statistic (seed sd beside the spread of a task's rewards) on planted tables."""

import json
import math

import numpy as np
import pytest

from task2sim.cli import reward as cli
from task2sim.reward.noise import SIGNAL_P, noise_p_value, read_noise_tsv, reward_noise, ties, write_noise_tsv
from task2sim.reward.table import RewardTableError


def planted():
    # "signal": 16 configs 0..30 points apart; "flat": a 1-point spread. Both have a seed sd of
    # exactly 2 on the two repeated configs (values +-2 around the mean over 3 seeds: -2, 0, +2).
    configs = [f"{i:04b}0000" for i in range(16)]
    table = {"signal": {b: 2.0 * i for i, b in enumerate(configs)},
             "flat": {b: 50 + (i % 2) for i, b in enumerate(configs)}}
    repeated = configs[:2]
    repeats = {s: {b: {t: table[t][b] + d for t in table} for b in repeated} for s, d in ((1, -2.0), (2, 2.0))}
    return table, repeats


def test_planted_noise_and_ratio():
    table, repeats = planted()
    noise = reward_noise(table, repeats)
    assert noise["signal"]["seed_sd"] == pytest.approx(2.0)
    assert noise["signal"]["spread"] == pytest.approx(30.0) and noise["signal"]["ratio"] == pytest.approx(15.0)
    assert noise["flat"]["ratio"] == pytest.approx(0.5)
    assert noise["signal"]["configs"] == 2 and noise["signal"]["seeds"] == 3
    tied = ties(table, noise)
    # within 2 sd (4 points) of the best 30: 30, 28, 26
    assert tied["signal"] == {"11110000", "11100000", "11010000"}
    assert len(tied["flat"]) == 16  # every config is a tie when the spread is within the noise


def test_p_value_of_the_spread_is_calibrated_on_pure_noise():
    # The default's noise design: 16 configurations, 2 of them at 2 more seeds (4 dof). Pure noise
    # (no configuration better than another): "ratio >= 4" passes about half of the tasks, the
    # p-value passes about 5 %; a planted 10-sd effect passes every time.
    rng = np.random.default_rng(0)
    configs = [f"{i:04b}0000" for i in range(16)]
    passed_ratio, passed_p, n = 0, 0, 400
    for _ in range(n):
        table = {"t": {b: float(v) for b, v in zip(configs, rng.normal(50, 2, 16))}}
        repeats = {s: {b: {"t": float(50 + rng.normal(0, 2))} for b in configs[:2]} for s in (1, 2)}
        r = reward_noise(table, repeats)["t"]
        assert r["dof"] == 4
        passed_ratio += r["ratio"] >= 4
        passed_p += r["p_value"] < SIGNAL_P
    assert 0.35 < passed_ratio / n < 0.65
    assert passed_p / n < 0.10
    table, repeats = planted()
    assert reward_noise(table, repeats)["signal"]["p_value"] < 0.01  # 15 sd apart, but only 4 dof
    assert reward_noise(table, repeats)["flat"]["p_value"] > 0.5
    assert noise_p_value(8.79, 16, 4) == pytest.approx(0.05, abs=0.002)


def test_pooled_sd_weights_configs_by_degrees_of_freedom():
    table = {"t": {"00000000": 10.0, "00000001": 20.0}}
    repeats = {1: {"00000000": {"t": 12.0}, "00000001": {"t": 20.0}}, 2: {"00000000": {"t": 14.0}}}
    # config 0: 10, 12, 14 -> ss 8, dof 2; config 1: 20, 20 -> ss 0, dof 1 => sqrt(8 / 3)
    assert reward_noise(table, repeats)["t"]["seed_sd"] == pytest.approx(math.sqrt(8 / 3))


def test_errors_name_the_culprit(tmp_path):
    table, repeats = planted()
    with pytest.raises(RewardTableError, match="at least one repeated run"):
        reward_noise(table, {})
    with pytest.raises(RewardTableError, match="11111111 is not in the table"):
        reward_noise(table, {1: {"11111111": {"signal": 1.0}}})
    write_noise_tsv(reward_noise(table, repeats), tmp_path / "noise.tsv")
    back = read_noise_tsv(tmp_path / "noise.tsv")["signal"]
    assert back["ratio"] == pytest.approx(15.0) and back["dof"] == 4 and back["p_value"] < 0.01
    (tmp_path / "bad.tsv").write_text("task\tseed_sd\nx\tnot-a-number\n")
    with pytest.raises(RewardTableError, match="bad.tsv: not a noise table"):
        read_noise_tsv(tmp_path / "bad.tsv")


def _write_jsons(root, table):
    paths = []
    for task, row in table.items():
        for bits, v in row.items():
            p = root / bits / f"{task}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"bits": bits, "task": task, "knn5_top1": v}))
            paths.append(str(p))
    return paths


def test_cli_noise_then_annotated_heatmap(tmp_path):
    table, repeats = planted()
    run = _write_jsons(tmp_path / "run", table)
    dirs = []
    for seed, by_bits in repeats.items():
        by_task = {t: {b: by_bits[b][t] for b in by_bits} for t in table}
        _write_jsons(tmp_path / f"seed{seed}", by_task)
        dirs.append(str(tmp_path / f"seed{seed}"))
    assert cli.main(["noise", "--tsv", str(tmp_path / "noise.tsv"), "--repeats", *dirs, "--", *run]) == 0
    assert read_noise_tsv(tmp_path / "noise.tsv")["signal"]["seed_sd"] == pytest.approx(2.0)
    assert (tmp_path / "noise.meta.json").is_file()
    assert cli.main(["aggregate", "--tsv", str(tmp_path / "table.tsv"), "--png", str(tmp_path / "t.png"),
                     "--noise", str(tmp_path / "noise.tsv"), *run]) == 0
    assert (tmp_path / "t.png").stat().st_size > 5000
    assert cli.main(["noise", "--tsv", str(tmp_path / "n2.tsv"), "--repeats", str(tmp_path / "empty"),
                     "--", *run]) == 2


def test_table_seeds_average_the_cells_and_test_the_means():
    """reward.seeds: every configuration at S seeds; a cell is their mean, its sd seed_sd / sqrt(S),
    the spread is of the means, and 16 (S - 1) degrees of freedom. On pure noise the p-value passes
    about 5 % of tasks; a planted spread of 4 seed sd over 16 configurations (which one seed with 4
    dof could rarely tell from noise: its 95 % point is 8.8 sd) is found."""
    rng = np.random.default_rng(2)
    configs = [f"{i:04b}0000" for i in range(16)]

    def draw(effect):
        runs = [{b: 50 + effect * i / 15 + float(rng.normal(0, 2)) for i, b in enumerate(configs)} for _ in range(3)]
        table = {"t": runs[0]}
        table_repeats = {s: {b: {"t": runs[s][b]} for b in configs} for s in (1, 2)}
        return table, table_repeats, runs

    passed, n = 0, 300
    for _ in range(n):
        table, table_repeats, runs = draw(0.0)
        r = reward_noise(table, {}, table_repeats)["t"]
        assert r["dof"] == 32 and r["cell_seeds"] == 3 and r["configs"] == 16
        assert r["cell_sd"] == pytest.approx(r["seed_sd"] / math.sqrt(3))
        means = [np.mean([run[b] for run in runs]) for b in configs]
        assert r["spread"] == pytest.approx(max(means) - min(means))
        passed += r["p_value"] < SIGNAL_P
    assert passed / n < 0.10
    found = 0
    for _ in range(50):
        table, table_repeats, _ = draw(8.0)
        found += reward_noise(table, {}, table_repeats)["t"]["p_value"] < SIGNAL_P
    assert found >= 40
    with pytest.raises(RewardTableError, match="missing from a table seed"):
        reward_noise({"t": {configs[0]: 1.0}}, {}, {1: {}})


def test_cli_aggregate_averages_the_table_seeds(tmp_path):
    table = {"a": {"00000000": 10.0, "00000001": 20.0}}
    run = _write_jsons(tmp_path / "run", table)
    _write_jsons(tmp_path / "s1", {"a": {"00000000": 14.0, "00000001": 26.0}})
    assert cli.main(["aggregate", "--tsv", str(tmp_path / "table.tsv"), "--repeats", str(tmp_path / "s1"),
                     "--", *run]) == 0
    from task2sim.reward.table import read_table_tsv

    assert read_table_tsv(tmp_path / "table.tsv") == {"a": {"00000000": 12.0, "00000001": 23.0}}
    _write_jsons(tmp_path / "s2", {"a": {"00000000": 14.0}})  # a table seed without every cell
    assert cli.main(["aggregate", "--tsv", str(tmp_path / "t2.tsv"), "--repeats", str(tmp_path / "s2"),
                     "--", *run]) == 2
