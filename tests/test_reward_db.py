"""Published reward_db.json layout <-> our bit strings, and the table.tsv format."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from task2sim.bits import configs_for
from task2sim.reward.table import (RewardTableError, bits_to_key, key_to_bits, read_reward_db,
                                     read_table_tsv, write_reward_db, write_table_tsv)

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "task2sim" / "reward_db.json"
SEEN = "CropDisease EuroSAT SVHN ChestX Sketch DTD Flowers102 DeepWeeds Resisc45 Omniglot ISIC Kaokore".split()


def test_known_keys():
    assert bits_to_key("00000000") == "0_0_0_0_0_1_0_0_0"
    assert bits_to_key("11111111") == "1_1_1_1_1_3_0_1_1"
    assert bits_to_key("10000000") == "0_0_0_0_0_1_0_1_0"   # rotation = pose_rot
    assert bits_to_key("01000000") == "0_0_0_0_0_1_0_0_1"   # distance = pose_scale
    assert bits_to_key("00000010") == "1_0_0_0_0_1_0_0_0"   # background = backgr
    assert bits_to_key("00010000") == "0_0_1_0_0_1_0_0_0"   # light colour
    assert bits_to_key("00100000") == "0_0_0_0_1_1_0_0_0"   # light intensity


def test_round_trip_all_256():
    all_bits = ["".join(p) for p in itertools.product("01", repeat=8)]
    keys = [bits_to_key(b) for b in all_bits]
    assert len(set(keys)) == 256
    assert [key_to_bits(k) for k in keys] == all_bits


@pytest.mark.parametrize("bad", ["0_0_0_0_0_2_0_0_0", "0_0_0_0_0_1_1_0_0", "0_0_0", "0_0_0_0_0_1_0_0_2"])
def test_bad_keys(bad):
    with pytest.raises(ValueError):
        key_to_bits(bad)


def test_file_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    table = {t: {b: float(rng.uniform(0, 100)) for b in configs_for([0, 5, 6, 7])} for t in ("a", "b")}
    write_reward_db(table, tmp_path / "db.json")
    assert read_reward_db(tmp_path / "db.json") == table
    write_table_tsv(table, tmp_path / "table.tsv")
    back = read_table_tsv(tmp_path / "table.tsv")
    assert back.keys() == table.keys()
    for t in table:
        for b in table[t]:
            assert back[t][b] == pytest.approx(table[t][b], abs=1e-4)


def test_malformed_db_names_the_task(tmp_path):
    p = tmp_path / "db.json"
    p.write_text(json.dumps({"EuroSAT": {"0_0_0_0_0_5_0_0_0": 1.0}}))
    with pytest.raises(RewardTableError, match="EuroSAT"):
        read_reward_db(p)


@pytest.mark.skipif(not PUBLISHED.is_file(), reason=f"published reward db not present at {PUBLISHED}")
def test_published_table_facts():
    table = read_reward_db(PUBLISHED)
    assert len(table) == 20 and all(len(r) == 256 for r in table.values())
    # README facts (mean over the 12 seen tasks, %)
    assert np.mean([max(table[t].values()) for t in SEEN]) == pytest.approx(32.60, abs=0.005)
    assert np.mean([table[t]["00000000"] for t in SEEN]) == pytest.approx(26.52, abs=0.005)
    assert np.mean([table[t]["11111111"] for t in SEEN]) == pytest.approx(24.07, abs=0.005)
    assert np.mean([np.mean(list(table[t].values())) for t in SEEN]) == pytest.approx(25.12, abs=0.005)
