"""Prepare one downstream task: data.h5 + preview.png + meta.json.

Usage::

    python -m task2sim.cli.tasks --task digits8 --settings '{"source": "digits8"}' --seed 0 \\
        --out results/tasks/digits8/data.h5 --preview results/tasks/digits8/preview.png \\
        --meta results/tasks/digits8/meta.json

Bad input (missing folder, empty class, unreadable image, unknown source, ...) prints one line
``error: ...`` on stderr and exits with code 2; no partial output is left behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import json_object_arg
from ..provenance import Provenance
from ..tasks import TaskDataError, TaskSettings, prepare_task, write_preview, write_task_h5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m task2sim.cli.tasks", description=__doc__.split("\n")[0])
    g = p.add_argument_group("task")
    g.add_argument("--task", required=True, help="task id (names the task inside data.h5)")
    g.add_argument("--settings", required=True,
                   help="JSON object of the task's settings: source, path, max_train, max_test, "
                        "test_fraction, image_size, seen")
    g.add_argument("--seed", type=int, default=0, help="seed of the split, subsample and any crops")
    o = p.add_argument_group("outputs")
    o.add_argument("--out", required=True, help="data.h5 to write")
    o.add_argument("--preview", help="preview.png to write (labelled contact sheet)")
    o.add_argument("--meta", help="meta.json to write (provenance)")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    try:
        raw = json_object_arg(args.settings, "--settings")
    except ValueError as e:
        raise TaskDataError(str(e)) from None
    settings = TaskSettings.from_dict(raw)
    t0 = time.perf_counter()
    task, inputs = prepare_task(args.task, settings, args.seed)
    t_load = time.perf_counter() - t0
    rec = Provenance.start("tasks", params={"task": args.task, **raw}, seeds={"seed": args.seed},
                           inputs=inputs)
    outputs = []
    if args.preview:  # before data.h5: a failing preview must not leave a finished-looking task
        write_preview(task, args.preview, seed=args.seed)
        outputs.append(args.preview)
    write_task_h5(args.out, task.train_images, task.train_labels, task.test_images,
                  task.test_labels, task.class_names, task.attrs)
    outputs.insert(0, args.out)
    summary = {**task.summary(), "class_names": task.class_names, "source": task.attrs["source"],
               "split": task.attrs["split"], "seconds_load": round(t_load, 3),
               "seconds_total": round(time.perf_counter() - t0, 3)}
    if args.meta:
        rec.finish(args.meta, outputs=outputs, extra=summary)
    print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except TaskDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
