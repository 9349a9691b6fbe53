"""The config schema as the one source of defaults, and validation with one-line errors.

Snakemake's own ``validate`` prints the whole schema on failure; ``check_config`` runs first and
turns the most relevant jsonschema error into a single line such as
``config.yaml: tasks.items.digits8: unknown key 'sourc'``. The workflow then lets snakemake fill
in the schema's defaults.

Every stage builds its dataclass with ``config_from_dict(cls, data, section)``: unknown keys are
rejected in one line, values are checked against the section's schema, and keys the caller left
out take the schema's default. The dataclasses themselves carry no defaults for schema keys, so
a default lives in exactly one place. Keys marked ``x-runtime: true`` in the schema (worker
counts, caches, ports) change how a job runs, never what it computes: the workflow passes them
outside the rerun-triggering parameters.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
import yaml


from .errors import Task2SimError

# The workflow's schema; the package lives in src/task2sim of the same checkout.
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"

T = TypeVar("T")


class ConfigError(Task2SimError, ValueError):
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


@functools.lru_cache(maxsize=1)
def default_schema() -> dict[str, Any]:
    if not SCHEMA_PATH.is_file():
        raise ConfigError(f"{SCHEMA_PATH}: config schema not found (task2sim runs from its checkout)")
    return load_schema(SCHEMA_PATH)


def section_schema(section: str) -> dict[str, Any]:
    """The schema of a config section by dotted path: ``pretrain``, ``evaluate.linear``,
    ``$defs.task``; ``$ref``s are followed."""
    root = default_schema()
    node: dict[str, Any] = root
    for part in section.split("."):
        if part == "$defs":
            node = root["$defs"]
            continue
        node = node["properties"][part] if "properties" in node else node[part]
        while "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            node = {**root["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def section_defaults(section: str) -> dict[str, Any]:
    """Each key's schema default (the section's own object default over its properties')."""
    node = section_schema(section)
    out = {k: copy.deepcopy(v["default"]) for k, v in node.get("properties", {}).items() if "default" in v}
    out.update(copy.deepcopy(node.get("default", {})))
    return out


def runtime_keys(section: str) -> set[str]:
    """Keys of ``section`` that never change a result (``x-runtime: true`` in the schema)."""
    return {k for k, v in section_schema(section).get("properties", {}).items() if v.get("x-runtime")}


def split_runtime(section: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` as (science keys, runtime keys) of ``section``."""
    rt = runtime_keys(section)
    return ({k: v for k, v in values.items() if k not in rt}, {k: v for k, v in values.items() if k in rt})


# Attribute of a config dataclass built by ``config_from_dict``: its fields filled from the schema.
DEFAULTED = "_task2sim_defaulted"


def config_from_dict(cls: type[T], data: dict[str, Any], section: str, where: str | None = None,
                     **extra: Any) -> T:
    """Build dataclass ``cls`` from a config section: unknown keys fail in one line, values are
    validated against the schema, missing keys take the schema's default. ``extra`` sets fields
    that are not config keys (a resolved image size, the method name) and may not be overridden;
    ``where`` names the section in messages (default: ``section``)."""
    where = where or section
    node = section_schema(section)
    props = node.get("properties", {})
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - fields - set(props)) + sorted(set(data) & set(extra))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(fields - set(extra)))})")
    values = {**section_defaults(section), **data}
    sub = {"type": "object", "properties": props, "required": node.get("required", [])}
    errors = list(jsonschema.Draft202012Validator(sub).iter_errors({k: v for k, v in values.items() if k in props}))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        sep = "." if err.absolute_path else ": "
        raise ConfigError(f"{where}{sep}{describe_error(err).removeprefix('<top level>: ')}")
    values = {k: v for k, v in values.items() if k in fields}
    missing = sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name not in values
                     and f.name not in extra and f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{where}: missing key {missing[0]!r}")
    obj = cls(**values, **extra)
    # What the job was not given but took from the schema (provenance records it as such: a rule
    # drops the keys its job does not read, and the record must not present them as settings).
    obj.__dict__[DEFAULTED] = sorted(k for k in values if k not in data)
    return obj
