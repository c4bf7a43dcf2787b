"""Reading a mapping file: YAML, then the schema, then the rules that span keys, then compiling."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..exceptions import MappingError
from .compile import CompileError, Mapping
from .dates import TIME_ZONE_HINT
from .messages import validation_message
from .schema import BaseSpec, DatetimeSpec, MappingFile, Spec


class _Loader(yaml.SafeLoader):
    """safe_load, but a key given twice is an error instead of silently dropping the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key_node.value!r}; each key may appear once",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MappingError(
            f"{label}: mapping file not found; check the path (mappings/example.yaml is a "
            "template to copy)"
        ) from None
    except IsADirectoryError:
        raise MappingError(f"{label}: is a directory; give the mapping YAML file") from None
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"{label}: not UTF-8 text (byte {exc.start}); save the mapping file as UTF-8"
        ) from None
    except OSError as exc:
        raise MappingError(f"{label}: cannot read the mapping file: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "cannot parse"
        raise MappingError(f"{label}: {where}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{label}: YAML syntax error: {exc}") from None


def _specs(model: MappingFile) -> Iterator[tuple[str, BaseSpec]]:
    """Every value spec in the file with its dotted key, field set members included."""
    groups = (
        ("lead.attributes", model.lead.attributes),
        ("activity.fields", model.activity.fields),
    )
    for prefix, specs in groups:
        for name, spec in specs.items():
            if spec.fields is None:
                yield f"{prefix}.{name}", spec
            for sub, sub_spec in (spec.fields or {}).items():
                yield f"{prefix}.{name}.fields.{sub}", sub_spec
    if model.activity.note is not None:
        yield "activity.note", model.activity.note
    if model.activity.datetime is not None:
        yield "activity.datetime", model.activity.datetime


def _cross_checks(model: MappingFile) -> list[str]:
    """Rules that span keys, which the per-key pydantic models cannot see."""
    problems = []
    attributes = model.lead.attributes
    search_by = model.lead.search_by
    if "SearchBy" in attributes:
        problems.append(
            "lead.attributes.SearchBy: is added from lead.search_by; remove it from attributes"
        )
    if search_by not in attributes:
        names = ", ".join(attributes)
        problem = f"lead.search_by: '{search_by}' is not one of the mapped attributes ({names})"
        if search_by == "ProspectId":
            problem += "; map the lead id column as lead.attributes.ProspectId"
        problems.append(problem)
    elif attributes[search_by].fields is not None:
        problems.append(
            f"lead.search_by: '{search_by}' is a custom field set; "
            "search by a plain attribute such as EmailAddress"
        )
    if model.source.timezone is None:
        for key, spec in _specs(model):
            if isinstance(spec, DatetimeSpec) and spec.timezone is None:
                where = f"{key}.timezone"
            elif isinstance(spec, Spec) and spec.datetime and spec.datetime.timezone is None:
                where = f"{key}.datetime.timezone"
            else:
                continue
            problems.append(
                f"{key}: no time zone for the date-times; give {where} or source.timezone "
                f"({TIME_ZONE_HINT})"
            )
    return problems


def load_mapping(path: str | os.PathLike[str]) -> Mapping:
    """Read, validate and compile a mapping file. Raises MappingError with a one-line message."""
    file = Path(path)
    label = os.fspath(path)
    data = _read_yaml(file, label)
    if data is None:
        raise MappingError(f"{label}: the mapping file is empty; start from mappings/example.yaml")
    if not isinstance(data, dict):
        raise MappingError(
            f"{label}: the top level must be a mapping with version, source, filters, lead, "
            f"activity and options keys, not a {type(data).__name__}; start from "
            "mappings/example.yaml"
        )
    try:
        model = MappingFile.model_validate(data)
    except ValidationError as exc:
        raise MappingError(validation_message(label, exc)) from None
    problems = _cross_checks(model)
    if problems:
        raise MappingError(f"{label}: " + "; ".join(problems))
    try:
        return Mapping(file, label, model)
    except CompileError as exc:
        raise MappingError(f"{label}: {exc}") from None
