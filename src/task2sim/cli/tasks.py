"""Prepare one downstream task: data.h5 + preview.png + provenance record.

Usage::

    python -m task2sim.cli.tasks --task digits8 --config '{"source": "digits8"}' --seed 0 \
        --out results/tasks/digits8/data.h5 --preview results/tasks/digits8/preview.png

``--config`` is the task's resolved settings (its ``tasks.items`` entry over the tasks-level
caps). Bad input (missing folder, empty class, unreadable image, unknown source, ...) prints one
line ``error: ...`` on stderr and exits with code 2; no partial output is left behind.
"""

from __future__ import annotations

import argparse
import time

from . import add_config_args, add_runtime_args, json_object_arg, stage_main, stage_parser
from ..provenance import Provenance
from ..tasks import prepare_task, task_settings, write_preview, write_task_h5


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = stage_parser(__doc__, "tasks")
    p.add_argument("--task", required=True, help="task id (names the task inside data.h5)")
    p.add_argument("--out", required=True, help="data.h5 to write")
    p.add_argument("--preview", required=True, help="preview.png to write (labelled contact sheet)")
    add_config_args(p, "tasks.items.<task>")
    add_runtime_args(p, device=False, threads=False)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    settings = task_settings(json_object_arg(args.config, "--config"))
    t0 = time.perf_counter()
    task, inputs = prepare_task(args.task, settings, args.seed)
    t_load = time.perf_counter() - t0
    rec = Provenance.start("tasks", settings, seeds={"seed": args.seed}, inputs=inputs, task=args.task)
    # The preview before data.h5: a failing preview must not leave a finished-looking task.
    write_preview(task, args.preview, seed=args.seed)
    write_task_h5(args.out, task.train_images, task.train_labels, task.test_images,
                  task.test_labels, task.class_names, task.attrs)
    summary = {**task.summary(), "class_names": task.class_names, "source": task.attrs["source"],
               "split": task.attrs["split"], "seconds_load": round(t_load, 3),
               "seconds_total": round(time.perf_counter() - t0, 3)}
    rec.finish([args.out, args.preview], extra=summary)
    return summary


main = stage_main(run, parse_args, __name__)
