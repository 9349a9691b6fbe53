"""Bit strings, config validation, provenance records and atomic writes."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from task2sim import bits
from task2sim.config import ConfigError, check_config, load_schema
from task2sim.io import atomic_path, write_json
from task2sim.provenance import Provenance, sha256_file

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "schemas" / "config.schema.yaml")


def default_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_configs_for_varies_only_listed_bits():
    configs = bits.configs_for([0, 5, 6, 7])
    assert len(configs) == 16 and len(set(configs)) == 16
    assert configs[0] == "00000000" and configs[-1] == "10000111"
    for c in configs:
        assert c[1:5] == "0000"
    assert bits.configs_for([]) == ["00000000"]
    assert len(bits.configs_for(range(8))) == 256


def test_bits_validation_and_description():
    with pytest.raises(ValueError):
        bits.validate_bits("0101")
    with pytest.raises(ValueError):
        bits.configs_for([8])
    assert bits.describe("00000000") == "all off"
    assert bits.describe("10000001") == "rotation+materials"
    assert bits.format_bits(bits.parse_bits("01100110")) == "01100110"


def test_default_config_is_valid():
    check_config(default_config(), SCHEMA)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.update(sede=1), "<top level>: unknown key 'sede'"),
        (lambda c: c["pretrain"].update(epochs="five"), "pretrain.epochs: 'five' is not of type 'integer'"),
        (lambda c: c["tasks"]["items"]["digits8"].update(sourc="x"), "tasks.items.digits8: unknown key 'sourc'"),
        (lambda c: c["tasks"]["items"].update({"bad task!": {"source": "digits8"}}), "tasks.items"),
        (lambda c: c["render"].update(vary_bits=[0, 9]), "render.vary_bits.1"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(mutate, expected):
    cfg = default_config()
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        check_config(cfg, SCHEMA)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(expected), msg


def test_schema_describes_and_defaults_every_key():
    def walk(node, where):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{where}.{key} has no description"
            if sub.get("type") == "object" and "properties" in sub:
                assert sub.get("additionalProperties") is False, f"{where}.{key} allows unknown keys"
                walk(sub, f"{where}.{key}")
            elif where.split(".")[-1] != "task":
                assert "default" in sub, f"{where}.{key} has no default"

    assert SCHEMA["additionalProperties"] is False
    walk(SCHEMA, "config")
    for name, sub in SCHEMA.get("$defs", {}).items():
        walk(sub, name)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_shared_atomic_path_keeps_a_concurrent_writers_temporary(tmp_path):
    """Two jobs building the same asset cache write one file at once: the second must not delete
    the first's temporary (which made the first job's rename fail); a job output still sweeps."""
    target = tmp_path / "manifest.tsv"
    with atomic_path(target, suffix=".tsv", shared=True) as first:
        first.write_text("a")
        with atomic_path(target, suffix=".tsv", shared=True) as second:
            second.write_text("a")
        assert first.exists()
    assert target.read_text() == "a" and [p.name for p in tmp_path.iterdir()] == ["manifest.tsv"]
    stale = tmp_path / ".out.bin.x1.part"
    stale.write_text("left by a killed writer")
    with atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"whole")
    assert not stale.exists()


def test_provenance_record(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    inp = tmp_path / "in.txt"
    inp.write_text("abc")
    rec = Provenance.start("unit", {"a": 1}, seeds={"torch": 3}, inputs=[inp], task="t")
    out = rec.finish([tmp_path / "x.h5", tmp_path / "x.png"], extra={"acc": 0.5})
    meta = json.loads((tmp_path / "x.meta.json").read_text())
    assert meta["params"] == {"a": 1, "task": "t"} and meta["outputs"][0] == str(tmp_path / "x.h5")
    assert meta == json.loads(json.dumps(out))
    for key in ("git", "params", "seeds", "inputs", "packages", "device", "host", "slurm",
                "started", "finished", "task2sim_version"):
        assert key in meta, key
    assert meta["inputs"] == {str(inp): sha256_file(inp)}
    assert "defaulted" not in meta  # a plain dict: everything given
    assert meta["inputs"][str(inp)] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert meta["slurm"] == {"SLURM_JOB_ID": "4242"}
    assert meta["packages"]["numpy"]
    assert set(meta["git"]) == {"sha", "dirty"}
    assert meta["extra"] == {"acc": 0.5}


def test_provenance_names_the_settings_a_job_was_not_given(tmp_path):
    """A rule passes only the keys its job reads; the others are filled from the schema. The record
    lists those as defaulted, so that an auditor does not read a schema default as the run's
    setting (results/final/choices.meta.json once showed a final_budget_methods the config did not have)."""
    from task2sim.final import FinalConfig
    from task2sim.config import config_from_dict

    cfg = config_from_dict(FinalConfig, {"random_seed": 3, "random_draws": 2}, "final")
    meta = Provenance.start("unit", cfg).finish([tmp_path / "x.tsv"])
    assert meta["params"]["random_seed"] == 3 and "final_budget_methods" in meta["params"]
    assert "final_budget_methods" in meta["defaulted"] and "random_seed" not in meta["defaulted"]
    given = {"random_seed", "random_draws"}
    assert set(meta["defaulted"]) == {f.name for f in dataclasses.fields(FinalConfig)} - given


def test_write_json_handles_numpy(tmp_path):
    np = pytest.importorskip("numpy")
    write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "y": [0, 1, 2]}
