"""Command-line entry points, one module per heavy stage: ``python -m task2sim.cli.<stage>``.

Every stage has the same shape, built from the helpers here:

- ``stage_parser(__doc__, "stage")``: the parser, its description and usage from the module doc;
- ``--config JSON``: the stage's config section (keys of its dataclass; the schema fills the rest,
  ``task2sim.config.config_from_dict``), plus ``--runtime JSON`` for keys that never change a
  result (``x-runtime`` in the schema), so the workflow can change them without rerunning jobs;
- ``add_runtime_args``: ``--seed``, ``--device``, ``--threads``, ``--no-progress``;
- ``main = stage_main(run, parse_args, __name__)``: logging on stderr, ``error: <one line>`` and
  exit code 2 on a known failure, the summary ``run`` returns printed as one JSON line on stdout;
  run as ``python -m`` it exits with ``main()``'s code.

Each module's ``main(argv=None) -> int`` is what rules call from ``shell:`` and tests call
directly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable

from ..config import config_from_dict, default_schema
from ..errors import Task2SimError

# Known failures: told in one line. Anything else is a bug and keeps its traceback.
KNOWN_ERRORS = (Task2SimError, ValueError, RuntimeError, KeyError, OSError)


def json_object_arg(text: str, flag: str) -> dict[str, Any]:
    """Parse a CLI argument that must be a JSON object; ValueError with one line naming ``flag``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object")
    return value


def stage_parser(doc: str | None, stage: str) -> argparse.ArgumentParser:
    doc = doc or ""
    return argparse.ArgumentParser(prog=f"python -m task2sim.cli.{stage}", description=doc.split("\n")[0],
                                   epilog=doc.partition("\n")[2] or None,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_config_args(p: argparse.ArgumentParser, section: str, runtime: bool = False) -> None:
    """``--config`` (required) and, for sections with runtime keys, ``--runtime``."""
    p.add_argument("--config", required=True, help=f"the config's {section} section as a JSON object")
    if runtime:
        p.add_argument("--runtime", default="{}",
                       help=f"runtime-only keys of {section} as a JSON object (never change a result)")


def add_runtime_args(p: argparse.ArgumentParser, seed: bool = True, device: bool = True,
                     threads: bool = True) -> None:
    top = default_schema()["properties"]  # the config's top-level seed and device, defaults included
    g = p.add_argument_group("runtime")
    if seed:
        g.add_argument("--seed", type=int, default=top["seed"]["default"], help=top["seed"]["description"])
    if device:
        g.add_argument("--device", choices=top["device"]["enum"], default=top["device"]["default"],
                       help=top["device"]["description"])
    if threads:
        g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def stage_config(args: argparse.Namespace, cls: type, section: str, **extra: Any):
    """The stage's dataclass from ``--config`` (and ``--runtime`` when the stage has it)."""
    data = json_object_arg(args.config, "--config")
    if getattr(args, "runtime", None):
        rt = json_object_arg(args.runtime, "--runtime")
        clash = sorted(set(rt) & set(data))
        if clash:
            raise ValueError(f"--runtime and --config both set {clash[0]!r}")
        data.update(rt)
    return config_from_dict(cls, data, section, **extra)


def set_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)


def _close_progress_bars() -> None:
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", None) or ()):
        bar.close()


def stage_main(run: Callable[[argparse.Namespace], Any],
               parse_args: Callable[[list[str] | None], argparse.Namespace],
               module: str) -> Callable[..., int]:
    """The ``main(argv=None) -> int`` of a stage: parse, set up logging and threads, run, report.
    Called last in the stage's module with its ``__name__``: as ``__main__`` it runs and exits."""

    def main(argv: list[str] | None = None) -> int:
        args = parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                            stream=sys.stderr)
        try:
            set_threads(args)
            out = run(args)
        except KNOWN_ERRORS as e:
            msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            _close_progress_bars()  # an interrupted bar would otherwise glue itself to the error line
            print(f"error: {msg.splitlines()[0] if msg else type(e).__name__}", file=sys.stderr)
            return 2
        if isinstance(out, int):  # a stage that answers with its exit code (trace --check)
            return out
        if out is not None:
            print(json.dumps(out, default=str))
        return 0

    if module == "__main__":
        sys.exit(main())
    return main
