"""Config validation with one-line errors that name the offending key.

Snakemake's own ``validate`` prints the whole schema on failure; ``check_config`` runs first and
turns the most relevant jsonschema error into a single line such as
``config.yaml: tasks.items.digits8: unknown key 'sourc'``. The workflow then lets snakemake fill
in the schema's defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """The configuration does not match schemas/config.schema.yaml."""


def load_schema(path: str | os.PathLike) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def describe_error(err: jsonschema.ValidationError) -> str:
    where = _where(err.absolute_path)
    if err.validator == "additionalProperties":
        allowed = set(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        return f"{where}: unknown key {', '.join(repr(k) for k in extra)}" + (
            f" (allowed: {', '.join(sorted(allowed))})" if allowed else "")
    return f"{where}: {err.message}"


def check_config(config: dict[str, Any], schema: dict[str, Any]) -> None:
    """Raise ConfigError with one line naming the key if ``config`` violates ``schema``."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(config))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(describe_error(best))
