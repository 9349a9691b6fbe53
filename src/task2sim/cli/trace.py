"""Trace a result back to what made it: the chain of stages, their resolved parameters, code
versions and inputs (with sha256), down to the task files and the config values.

Usage::

    python -m task2sim.cli.trace results/policy/summary.md          # human-readable lineage
    python -m task2sim.cli.trace results/rewards/table.tsv --check  # re-hash every input on the way
    python -m task2sim.cli.trace results/rewards/table.tsv --json   # the records, for machines

Run it from the workflow's directory (records name their inputs as the jobs saw them). Each file's
record is found by the one rule of ``task2sim.provenance.record_of``. ``--check`` exits 1 when an
input changed since its record was written (or is gone), naming each one.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from . import stage_main, stage_parser
from ..provenance import lineage, record_of, sha256_file


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "trace")
    p.add_argument("result", help="any file a stage wrote (or one of its outputs' siblings)")
    p.add_argument("--check", action="store_true", help="re-hash every input and flag what changed")
    p.add_argument("--json", action="store_true", help="print the records as one JSON object")
    return p.parse_args(argv)


def _changed(records: list[dict]) -> list[str]:
    out = []
    for rec in records:
        for path, sha in rec.get("inputs", {}).items():
            if not Path(path).is_file():
                out.append(f"{path}: gone (recorded by {rec['record']})")
            elif sha256_file(path) != sha:
                out.append(f"{path}: changed since {rec['record']} was written")
    return sorted(set(out))


def _describe(records: list[dict]) -> str:
    lines = []
    for i, rec in enumerate(records):
        git = rec.get("git") or {}
        lines.append(f"[{i}] {rec['stage']}  {rec['record']}")
        lines.append(f"    outputs: {', '.join(rec.get('outputs', []))}")
        lines.append(f"    code: task2sim {rec.get('task2sim_version')} git {git.get('sha')}"
                     f"{' (dirty)' if git.get('dirty') else ''}; finished {rec.get('finished')}")
        params = rec.get("params") or {}
        if params:
            lines.append("    params: " + ", ".join(f"{k}={v}" for k, v in params.items()))
        if rec.get("seeds"):
            lines.append(f"    seeds: {rec['seeds']}")
        for path, sha in rec.get("inputs", {}).items():
            lines.append(f"    input: {path}  sha256 {sha[:16]}{'' if record_of(path) else '  (source)'}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = Path(args.result)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if record_of(path) is None:
        raise ValueError(f"{path}: no provenance record lists this file (was it written by a stage?)")
    records = lineage(path)
    changed = _changed(records) if args.check else []
    if args.json:
        out = {"result": os.fspath(path), "records": records, **({"changed": changed} if args.check else {})}
        print(json.dumps(out, indent=1, default=str))
    else:
        print(_describe(records))
        if args.check:
            print("\n".join(["changed inputs:", *changed]) if changed else "every input matches its record")
    return 1 if changed else 0


main = stage_main(run, parse_args, __name__)
