"""The one prepared GPU check (``tools/gpu_check.sh``): one line per check, then a JSON record.

    python -m task2sim.bench.gpu_check [--repo .] [--device cuda] [--json out.json]

1. ``cuda``: the device torch sees (name, capability, memory, bf16), or a clean skip (exit 0)
   when there is none.
2. ``tiny``: the tiny complete workflow (tests/tiny_config.yaml) with ``device`` set, every stage
   in a fresh copy of the workflow; then one line per stage folder of ``logs/``: its jobs, how many
   logged ``device: cuda...`` (every torch stage resolves its device through
   ``backbones.runtime.resolve_device``, which logs it), and their summed wall time from ``benchmarks/``.
3. ``paper render`` / ``paper pretrain``: the paper profile's render and pre-training settings
   (profiles/paper/settings.yaml) on a few hundred images: a render at 224 px, then ResNet-50
   pre-trained on it for ``--epochs`` epochs, each epoch's images/s from history.tsv (the first
   includes cuDNN's autotuning and the loader's start).

``--device cpu`` runs the same checks on the CPU (a reference, slow at the paper's sizes).
The exit code is 1 when a check failed, 0 otherwise (a skip included).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ..config import split_runtime
from .tiny import copy_workflow_files, tiny_config


def say(check: str, status: str, detail: str) -> None:
    print(f"gpu_check: {check}: {status}: {detail}", flush=True)


def cuda_line(device: str) -> dict | None:
    """The device's description, or None when ``device`` is cuda and torch sees none."""
    import torch

    info = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "host": platform.node()}
    if device == "cpu":
        info["name"] = platform.processor() or platform.machine()
        say("device", "ok", f"cpu, {os.cpu_count()} cores, torch {torch.__version__}")
        return info
    if not torch.cuda.is_available():
        say("device", "skip", f"torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA device")
        return None
    p = torch.cuda.get_device_properties(0)
    info.update(name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                bf16=bool(torch.cuda.is_bf16_supported()), devices=torch.cuda.device_count())
    say("device", "ok", f"{p.name}, capability {p.major}.{p.minor}, {info['memory_gib']} GiB, "
        f"bf16 {'yes' if info['bf16'] else 'no'}, torch {torch.__version__} (CUDA {torch.version.cuda})")
    return info


def _fresh(path: Path) -> Path:
    """An empty folder at ``path`` (a kept ``--work-dir`` of an earlier check is cleared)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _env() -> dict:
    # Jobs run `python -m task2sim...`: the interpreter of this check first on PATH (the
    # workflow puts its own src/ on PYTHONPATH; tools/gpu_check.sh does the same for this process).
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _bench_seconds(path: Path) -> float:
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return float(rows[0]["s"]) if rows else 0.0


def stage_lines(root: Path, device: str) -> list[dict]:
    """Per stage folder of logs/: jobs, jobs that logged the device, summed benchmark seconds."""
    out = []
    logs = root / "logs"
    for stage in sorted(p for p in logs.iterdir() if p.is_dir()) if logs.is_dir() else []:
        files = sorted(stage.rglob("*.log"))
        texts = [f.read_text(errors="replace") for f in files]
        on_device = sum(f"device: {device}" in t for t in texts)
        other = sum(("device: " in t) and (f"device: {device}" not in t) for t in texts)
        bench = root / "benchmarks" / stage.name
        seconds = sum(_bench_seconds(b) for b in bench.rglob("*.tsv")) if bench.is_dir() else 0.0
        out.append({"stage": stage.name, "jobs": len(files), "on_device": on_device, "other_device": other,
                    "seconds": round(seconds, 1)})
    return out


def check_tiny(repo: Path, work: Path, device: str, cores: int, timeout: int) -> dict:
    root = _fresh(work / "tiny")
    copy_workflow_files(repo, root)
    cfg = tiny_config(repo)
    cfg["device"] = device
    (root / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--directory", str(root), "--cores", str(cores),
           "--show-failed-logs", "--quiet", "progress"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    stages = stage_lines(root, device)
    for s in stages:
        if s["other_device"]:
            status = "FAIL"
        elif s["on_device"] == s["jobs"]:
            status = "ok"
        else:
            status = "info"  # a stage with no torch device (renders, tasks, the policy's small MLPs)
        say(f"tiny {s['stage']}", status, f"{s['jobs']} jobs, {s['on_device']} logged device {device}, "
            f"{s['other_device']} another device, {s['seconds']} s")
    torch_jobs = sum(s["on_device"] for s in stages)
    ok = res.returncode == 0 and not any(s["other_device"] for s in stages) and torch_jobs > 0
    tail = (res.stdout + res.stderr)[-4000:]
    say("tiny workflow", "ok" if ok else "FAIL",
        f"snakemake exit {res.returncode}, {torch_jobs} jobs on {device}, {wall:.0f} s wall, {cores} cores"
        + ("" if ok else "\n" + tail))
    return {"ok": ok, "returncode": res.returncode, "wall_s": round(wall, 1), "cores": cores,
            "stages": stages, "output_tail": None if ok else tail}


def _run_stage(args: list[str], log: Path, timeout: int) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        res = subprocess.run([sys.executable, "-m", *args], env=_env(), stdout=subprocess.PIPE, stderr=f,
                             text=True, timeout=timeout)
    return res, time.perf_counter() - t0


def _last_json(text: str) -> dict:
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def check_paper(repo: Path, work: Path, device: str, classes: int, images_per_class: int, epochs: int,
                timeout: int) -> dict:
    paper = yaml.safe_load((repo / "profiles" / "paper" / "settings.yaml").read_text())
    root = _fresh(work / "paper")
    render = dict(paper["render"], classes=classes, images_per_class=images_per_class,
                  meshes_per_class=min(paper["render"]["meshes_per_class"], 4))
    render.pop("vary_bits")
    render, runtime = split_runtime("render", dict(render, cache_dir=str(repo / ".cache" / "assets")))
    images = root / "images.h5"
    res, dt = _run_stage(["task2sim.cli.render", "dataset", "--bits", "11111111", "--config", json.dumps(render),
                          "--runtime", json.dumps(runtime), "--seed", "0", "--out", str(images),
                          "--preview", str(root / "preview.png")], root / "render.log", timeout)
    n = classes * images_per_class
    ok = res.returncode == 0
    summary = _last_json(res.stdout) if ok else {}
    backend = "?"
    if ok:
        import h5py

        with h5py.File(images, "r") as f:
            backend = str(f.attrs["backend_version"])
    out: dict = {"render": {"ok": ok, "images": n, "image_size": render["image_size"], "seconds": round(dt, 1),
                            "images_per_s": summary.get("images_per_s"), "backend": backend}}
    say("paper render", "ok" if ok else "FAIL",
        f"{n} images at {render['image_size']} px, all 8 bits on ({render['blur_method']} blur, "
        f"{render['blur_passes']} passes): {summary.get('images_per_s', '?')} img/s rendering, {dt:.1f} s "
        f"with start and assets; {backend}"
        + ("" if ok else "\n" + (root / "render.log").read_text(errors="replace")[-3000:]))
    if not ok:
        return {**out, "ok": False}
    pre, pre_rt = split_runtime("pretrain", dict(paper["pretrain"], epochs=epochs, warmup_epochs=0))
    res, dt = _run_stage(["task2sim.cli.pretrain", "--images", str(images), "--out-dir", str(root / "pretrain"),
                          "--config", json.dumps(pre), "--runtime", json.dumps(pre_rt), "--seed", "0",
                          "--device", device, "--no-progress"], root / "pretrain.log", timeout)
    log_text = (root / "pretrain.log").read_text(errors="replace")
    ok = res.returncode == 0
    hist = []
    if ok:
        with open(root / "pretrain" / "history.tsv") as f:
            hist = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f, delimiter="\t")]
    summary = _last_json(res.stdout) if ok else {}
    ok = ok and summary.get("device", "").startswith(device)
    rates = ", ".join(f"epoch {int(r['epoch'])} {r['images_per_s']:.1f} img/s" for r in hist)
    say("paper pretrain", "ok" if ok else "FAIL",
        f"{pre['model']} at {render['image_size']} px, batch {pre['batch_size']}, {n} images, "
        f"{summary.get('device', '?')}, amp {pre['amp']}, randaugment+mixup/cutmix on: {rates}; "
        f"{dt:.1f} s incl. start" + ("" if ok else "\n" + log_text[-3000:]))
    out["pretrain"] = {"ok": ok, "model": pre["model"], "batch_size": pre["batch_size"], "history": hist,
                       "seconds": round(dt, 1), "device": summary.get("device")}
    out["ok"] = ok
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    doc = __doc__ or ""
    p = argparse.ArgumentParser(prog="python -m task2sim.bench.gpu_check", description=doc.split("\n")[0],
                                epilog=doc.partition("\n")[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout (default: the current folder)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--cores", type=int, default=min(os.cpu_count() or 1, 8), help="snakemake --cores of the tiny run")
    p.add_argument("--classes", type=int, default=8, help="paper check: rendered classes")
    p.add_argument("--images-per-class", type=int, default=50, help="paper check: images per class")
    p.add_argument("--epochs", type=int, default=2, help="paper check: pre-training epochs")
    p.add_argument("--skip", nargs="*", default=[], choices=["tiny", "paper"], help="checks to leave out")
    p.add_argument("--timeout", type=int, default=600, help="seconds allowed to each workflow or stage run")
    p.add_argument("--work-dir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--json", type=Path, default=None, help="write every figure here too")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repo = args.repo.resolve()
    t0 = time.perf_counter()
    record: dict = {"device": cuda_line(args.device)}
    if record["device"] is None:
        return 0
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        work = Path(args.work_dir or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if "tiny" not in args.skip:
            record["tiny"] = check_tiny(repo, work, args.device, args.cores, args.timeout)
        if "paper" not in args.skip:
            record["paper"] = check_paper(repo, work, args.device, args.classes, args.images_per_class,
                                          args.epochs, args.timeout)
    failed = [k for k in ("tiny", "paper") if k in record and not record[k]["ok"]]
    record["wall_s"] = round(time.perf_counter() - t0, 1)
    say("all", "FAIL" if failed else "ok",
        f"{', '.join(failed) + ' failed' if failed else 'every check passed'}, {record['wall_s']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
