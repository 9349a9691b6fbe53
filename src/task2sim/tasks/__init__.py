"""Downstream image-classification tasks: offline sources, a common split/cap/resize, the
``data.h5`` layout (docs/FORMATS.md) and a labelled preview.

Usage::

    from task2sim.tasks import TaskSettings, prepare_task, write_task_h5, load_task_h5
    task, inputs = prepare_task("digits8", task_settings({"source": "digits8"}), seed=0)
    write_task_h5("data.h5", task.train_images, task.train_labels, task.test_images,
                  task.test_labels, task.class_names, task.attrs)
    again = load_task_h5("data.h5")
"""

from .data import FORMAT_VERSION, TaskData, TaskDataError, load_task_h5, write_task_h5
from .prepare import TaskSettings, balanced_quota, prepare_task, task_settings
from .preview import write_preview
from .sources import SOURCES, get_loader

__all__ = [
    "FORMAT_VERSION", "SOURCES", "TaskData", "TaskDataError", "TaskSettings", "balanced_quota",
    "get_loader", "load_task_h5", "prepare_task", "task_settings", "write_preview", "write_task_h5",
]
