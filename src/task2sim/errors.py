"""The root of task2sim's known failures: bad input or an unavailable resource, told in one line.

A stage CLI turns any of these (and ValueError, which the dataclasses raise for bad values) into
``error: <one line>`` and exit code 2 (``task2sim.cli.stage_main``); anything else is a bug and
keeps its traceback.
"""


class Task2SimError(Exception):
    """A known failure with a one-line message that names the culprit (path, key, value)."""
