"""Where a workflow's wall time went: its jobs placed on the cores, from Snakemake's own log.

    python -m task2sim.bench.timeline .snakemake/log/<run>.snakemake.log [--cores 2] [--min-gap 30]

Reads each job's start (the timestamp before its ``rule``/``localrule``/``checkpoint`` block), its
thread count and its end (``Finished jobid``), and prints: the span from the first start to the
last end, the core-seconds the jobs held (threads x wall, at most ``--cores`` a job) and left idle,
core-seconds by rule, and every stretch of at least ``--min-gap`` seconds with an idle core, with
the jobs that ran in it. Timestamps have one-second resolution. BENCHMARKS.md, "Default workflow".
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]$")
_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_FIELD = re.compile(r"^\s+(jobid|threads|wildcards): (.*)$")
_DONE = re.compile(r"^Finished jobid: (\d+)")


def parse_log(text: str) -> list[dict]:
    """Every finished job: rule, wildcards, threads, start and end (seconds from the first start)."""
    stamp = None
    jobs: dict[int, dict] = {}
    current: dict | None = None
    for line in text.splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            current = {"rule": m.group(1), "wildcards": "", "threads": 1, "start": stamp}
        elif current is not None and (m := _FIELD.match(line)):
            key, value = m.groups()
            if key == "jobid":
                jobs[int(value)] = current
            elif key == "threads":
                current["threads"] = int(value)
            else:
                current["wildcards"] = value
        elif m := _DONE.match(line):
            if int(m.group(1)) in jobs:
                jobs[int(m.group(1))]["end"] = stamp
            current = None
        elif not line.startswith(" "):
            current = None  # a block ends at the first unindented line after it
    done = [j for j in jobs.values() if "end" in j and j["start"] is not None]
    if not done:
        return []
    t0 = min(j["start"] for j in done)
    return sorted(({**j, "start": (j["start"] - t0).total_seconds(), "end": (j["end"] - t0).total_seconds()}
                   for j in done), key=lambda j: (j["start"], j["rule"]))


def timeline(jobs: list[dict], cores: int = 2, min_gap: int = 30) -> dict:
    """Span, held and idle core-seconds, core-seconds by rule, and the stretches with an idle core."""
    span = int(max((j["end"] for j in jobs), default=0))
    busy = [0] * span
    by_rule: dict[str, float] = defaultdict(float)
    for j in jobs:
        n = min(j["threads"], cores)
        by_rule[j["rule"]] += n * (j["end"] - j["start"])
        for s in range(int(j["start"]), int(j["end"])):
            busy[s] += n
    gaps, start = [], None
    for s, b in enumerate(busy + [cores]):
        if b < cores and start is None:
            start = s
        elif b >= cores and start is not None:
            if s - start >= min_gap:
                running = [f"{j['rule']}({j['wildcards']})" for j in jobs if j["start"] <= start < j["end"]]
                idle = sum(cores - min(x, cores) for x in busy[start:s])
                gaps.append({"from_s": start, "to_s": s, "idle_core_s": idle, "running": running})
            start = None
    return {"span_s": span, "cores": cores, "jobs": len(jobs),
            "held_core_s": round(sum(min(b, cores) for b in busy)),
            "idle_core_s": round(sum(max(0, cores - b) for b in busy)),
            "core_s_by_rule": {r: round(v) for r, v in sorted(by_rule.items(), key=lambda kv: -kv[1])},
            "gaps": gaps}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", type=Path)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--min-gap", type=int, default=30)
    a = p.parse_args(argv)
    print(json.dumps(timeline(parse_log(a.log.read_text()), a.cores, a.min_gap), indent=1))


if __name__ == "__main__":
    main()
