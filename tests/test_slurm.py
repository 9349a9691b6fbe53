"""profiles/slurm: every rule is either local or sized for the cluster, and the whole workflow (tiny
configuration) runs through a real SLURM on localhost with the same results as a local run.

The SLURM run needs root (it installs slurmctld, slurmd and munge from Debian when missing and
starts the daemons, tests/slurm_local.py); it skips with the reason otherwise.
"""

from __future__ import annotations

import csv
import filecmp
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import copy_workflow
from tiny_workflow import read_profile, workflow_rules, write_tiny_config

pytestmark = pytest.mark.workflow

# Resource keys a rule may declare: portable ones, plus the two the stage convention passes
# through resources because they never change a result (device, config_runtime).
PORTABLE = {"mem_mb", "runtime", "gpu", "device", "config_runtime"}
# Snakemake's own entries in a rule's resources (threads are `_cores`).
INTERNAL = {"_cores", "_nodes", "tmpdir", "disk_mb"}


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> dict[str, dict]:
    """Every rule of the default workflow (named targets included) as Snakemake parsed it."""
    return workflow_rules(copy_workflow(tmp_path_factory.mktemp("rules")))


def test_rules_declare_only_portable_resources(rules):
    for name, rule in rules.items():
        extra = set(rule["resources"]) - PORTABLE - INTERNAL
        assert not extra, f"rule {name} declares non-portable resources {sorted(extra)} (site keys go in profiles/)"


@pytest.mark.parametrize("profile", ["slurm", "paper"])
def test_profile_sizes_every_cluster_rule(rules, profile):
    """Each rule runs on the submit host (localrules) or has set-resources in the profile; rules
    that take --device get a GPU; no entry names a rule that does not exist; no entry asks for
    less than the rule declares."""
    prof = read_profile(Path(__file__).resolve().parents[1], profile)
    sized = prof["set-resources"]
    assert set(sized) <= set(rules), f"profiles/{profile} sizes unknown rules: {sorted(set(sized) - set(rules))}"
    assert set(prof.get("set-threads", {})) <= set(sized)
    for name, rule in rules.items():
        declared = rule["resources"]
        if rule["local"]:
            assert name not in sized, f"{name} runs on the submit host (localrules) yet profiles/{profile} sizes it"
            continue
        assert name in sized, (f"rule {name} is neither in a `localrules:` directive nor under set-resources "
                               f"in profiles/{profile}")
        res = sized[name]
        assert res["mem_mb"] >= declared["mem_mb"] and res["runtime"] >= declared["runtime"], name
        assert (res.get("gpu", 0) >= 1) == ("device" in declared), (
            f"{name}: a GPU exactly for the rules that take --device (resources: device=...)")


def test_every_key_of_the_slurm_profile_is_commented():
    lines = (Path(__file__).resolve().parents[1] / "profiles/slurm/config.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z][\w-]*:", line):
            assert lines[i - 1].startswith("#"), f"profiles/slurm/config.yaml:{i + 1}: `{line}` has no comment above"


def test_a_conf_left_by_a_killed_test_is_replaced_and_nobody_elses(tmp_path):
    """A killed run of the SLURM test leaves its /etc/slurm/slurm.conf behind; the next run must
    not skip for that, but must never touch a real cluster's file."""
    from slurm_local import SLURM_CONF, _stale_own_conf

    def conf(root, text=None):
        path = tmp_path / f"conf{len(list(tmp_path.iterdir()))}"
        path.write_text(text or SLURM_CONF.format(host="h", ctld_port=1, slurmd_port=2, root=root, munge_socket="s",
                                                  cpus=2, mem_mb=100, partition="local"))
        return path

    gone = tmp_path / "t2s-slurm-gone"
    assert _stale_own_conf(conf(gone))
    live = tmp_path / "t2s-slurm-live"
    (live / "state").mkdir(parents=True)
    assert not _stale_own_conf(conf(live))  # a test running now
    theirs = conf(gone).read_text().replace("ClusterName=t2stest", "ClusterName=prod")
    assert not _stale_own_conf(conf(gone, theirs))


def local_overlay(prof: dict, rules: dict, partition: str) -> dict:
    """The site overlay for the one-node test cluster: its partition, no GPUs (the node has none),
    each rule's own thread count (so that a job computes exactly what the local run computed), and
    at most 1 GB a job (the node's memory is shared by all). The executor settings come from
    profiles/slurm; without accounting the plugin must not look up an account, and a quicker
    first status check suits seconds-long jobs."""
    return {
        "default-resources": {**prof["default-resources"], "slurm_partition": partition, "mem_mb": 1000},
        "set-resources": {r: {**res, "gpu": 0, "mem_mb": 1000} for r, res in prof["set-resources"].items()},
        "set-threads": {r: rules[r]["resources"]["_cores"] for r in prof["set-threads"]},
        "slurm-no-account": True,
        "slurm-init-seconds-before-status-checks": 2,
        "latency-wait": 5,
    }


@pytest.fixture(scope="module")
def cluster():
    """munge + slurmctld + slurmd on localhost, stopped by PID afterwards."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm not installed")
    from slurm_local import LocalSlurm, ensure_packages

    reason = ensure_packages()
    if reason:
        pytest.skip(f"no local SLURM: {reason}")
    if os.geteuid() != 0:
        pytest.skip("no local SLURM: starting munged, slurmctld and slurmd needs root")
    slurm = LocalSlurm(partition="t2s")
    try:
        try:
            slurm.start()
        except FileExistsError as err:
            pytest.skip(f"no local SLURM: {err}")
        yield slurm
    finally:
        slurm.stop()
    assert all(p.poll() is not None for p in slurm.procs.values())


# Files that differ between any two runs by design: provenance records (start/end times, host),
# benchmark timings and Snakemake's own logs.
def _compared_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / "results").rglob("*")
                  if p.is_file() and not p.name.endswith(".meta.json"))


# Fields that time a run (wall seconds, throughput), different in any two runs.
TIMINGS = {"seconds", "images_per_s"}


def _assert_same_result(a: Path, b: Path) -> None:
    """``a`` and ``b`` hold the same results: checkpoints by content (their zip entries are named
    after the random temporary file each was saved to before its atomic rename), JSON and TSV files
    but for timing fields, feature caches but for their key (the checkpoint file's hash)."""
    if a.suffix == ".pt":
        _assert_same_checkpoint(a, b)
    elif a.suffix == ".json":
        drop = lambda d: {k: v for k, v in d.items() if k not in TIMINGS}  # noqa: E731
        assert drop(json.loads(a.read_text())) == drop(json.loads(b.read_text())), a
    elif a.suffix == ".tsv":
        ra, rb = (list(csv.DictReader(p.read_text().splitlines(), delimiter="\t")) for p in (a, b))
        assert set(ra[0]) & TIMINGS, f"{a}: differs and has no timing column"
        strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMINGS} for r in rows]  # noqa: E731
        assert strip(ra) == strip(rb), a
    elif a.suffix == ".npz" and "features" in a.parts:
        with np.load(a) as x, np.load(b) as y:
            assert x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files if k != "key"), a
    else:
        raise AssertionError(f"{a}: not byte-identical to the local run's")


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    import torch

    def same(x, y, where):
        assert type(x) is type(y), where
        if isinstance(x, dict):
            assert list(x) == list(y), where
            for k in x:
                same(x[k], y[k], f"{where}/{k}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                same(u, v, f"{where}[{i}]")
        elif isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y), where
        else:
            assert x == y, where

    same(torch.load(a, map_location="cpu", weights_only=True), torch.load(b, map_location="cpu", weights_only=True),
         str(a))


def test_tiny_workflow_through_slurm_matches_the_local_run(request, cluster, tmp_path):
    wf = copy_workflow(tmp_path)
    write_tiny_config(wf)
    rules = workflow_rules(wf)
    overlay = local_overlay(read_profile(wf.root, "slurm"), rules, cluster.partition)
    (wf.root / "profiles/site").mkdir()
    (wf.root / "profiles/site/config.yaml").write_text(yaml.safe_dump(overlay))
    t0 = time.monotonic()
    res = wf.run("--profile", "profiles/slurm", "--workflow-profile", "profiles/site", env=cluster.env, timeout=3600)
    wall = time.monotonic() - t0
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:] + cluster.logs()

    # every job the plugin submitted ran through slurmctld on our partition and completed
    jobids = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert jobids, out[-3000:]
    finished = {j["JobId"]: j for j in cluster.completed_jobs()}
    submitted_rules = []
    for jid in jobids:
        assert finished[jid]["JobState"] == "COMPLETED" and finished[jid]["Partition"] == cluster.partition
        comment = cluster.job(jid)["Comment"]
        submitted_rules.append(re.match(r"rule_(\w+?)(_wildcards_.*)?$", comment)[1])
    # exactly the non-local rules went to SLURM, the local ones ran on the submit host
    # (counted from the jobs that finished: the final stage's checkpoint adds jobs after the plan)
    ran = Counter(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", out))
    cluster_jobs = {r: n for r, n in ran.items() if r in rules and not rules[r]["local"]}
    assert {r: submitted_rules.count(r) for r in set(submitted_rules)} == cluster_jobs
    assert {"pretrain_backbone", "reward_knn5", "task2vec_embed", "policy_train", "asg_finetune",
            "evaluate_downstream", "noise_pretrain"} <= set(cluster_jobs)

    # the provenance records name the SLURM job of each cluster job, none for the local ones
    def slurm_job(meta: str) -> str | None:
        return (json.loads((wf.root / meta).read_text()).get("slurm") or {}).get("SLURM_JOB_ID")

    assert slurm_job("results/tasks/faces/data.meta.json") is None
    for meta in ("results/pretrain/00000001/model.meta.json", "results/task2vec/faces.meta.json",
                 "results/policy/policy.meta.json", "results/asg/policy.meta.json"):
        assert slurm_job(meta) in jobids, meta

    # the same results as the local run: byte for byte, or (where a file records how long something
    # took, or is a checkpoint) equal in everything but the timings
    # (the local run is asked for only now: under pytest-xdist another worker builds it meanwhile)
    tiny_run = request.getfixturevalue("tiny_run")
    ours, ref = _compared_files(wf.root), _compared_files(tiny_run.root)
    assert ours == ref
    differ = [f for f in ours if not filecmp.cmp(wf.root / f, tiny_run.root / f, shallow=False)]
    for f in differ:
        _assert_same_result(wf.root / f, tiny_run.root / f)
    assert "results/rewards/table.tsv" in ours and "results/rewards/table.tsv" not in differ
    assert "results/policy/summary.md" in ours and "results/policy/summary.md" not in differ
    n_jobs = sum(n for r, n in ran.items() if r in rules)
    print(f"SLURM run: {len(jobids)} SLURM jobs, {n_jobs} jobs in all, {wall:.0f} s")
