"""Command-line entry points, one module per heavy stage: ``python -m task2sim.cli.<stage>``.

Each has ``main(argv=None) -> int`` so tests call it directly; rules call it from ``shell:``.
"""

import json
from typing import Any


def json_object_arg(text: str, flag: str) -> dict[str, Any]:
    """Parse a CLI argument that must be a JSON object; ValueError with one line naming ``flag``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{flag} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object")
    return value
