"""Matching the mapping's column names to an input file's header.

Names match exactly unless ``source.match_headers: loose``, which also matches a name that
differs only in case, spaces and underscores (``first_name`` and ``First Name``), when exactly
one header does. Either way, a name that matches no header is named with the headers that
would match it loosely ("did you mean 'First Name'?"), so a wrong spelling is told apart
from a missing column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..exceptions import MappingError
from .schema import AttributeSpec, BaseSpec, MappingFile, Spec
from .templates import split_template

_IGNORED = re.compile(r"[\s_]+")


def loose_key(name: str) -> str:
    """What ``loose`` compares: the name without case, spaces and underscores."""
    return _IGNORED.sub("", name).casefold()


def resolve_columns(
    used: Mapping[str, str],
    available: Sequence[str],
    *,
    loose: bool,
    label: str,
    input_name: str,
) -> dict[str, str]:
    """The header each of the mapping's columns ``used`` (column -> the first key reading it)
    stands for, where it is not the same name: ``{"first_name": "First Name"}``.

    Raises MappingError naming, in one line, every column that matches no header (with the
    headers that differ only in case, spaces and underscores, as "did you mean") and, with
    ``loose``, every column that matches several loosely.
    """
    have = set(available)
    near: dict[str, list[str]] = {}
    for header in available:
        near.setdefault(loose_key(header), []).append(header)
    renames: dict[str, str] = {}
    missing: list[str] = []
    ambiguous: list[str] = []
    suggested = False
    for column, key in used.items():
        if column in have:
            continue
        candidates = near.get(loose_key(column), [])
        if loose and len(candidates) == 1:
            renames[column] = candidates[0]
        elif loose and candidates:
            ambiguous.append(
                f"'{column}' ({key}) matches {_listed(candidates, 'and')} (match_headers: "
                "loose); name one of them exactly"
            )
        else:
            hint = f"; did you mean {_listed(candidates, 'or')}?" if candidates else ""
            missing.append(f"'{column}' ({key}{hint})")
            suggested = suggested or bool(candidates)
    problems = []
    if missing:
        listed = ", ".join(available[:50])
        if len(available) > 50:
            listed += f", ... ({len(available) - 50} more)"
        noun = "column" if len(missing) == 1 else "columns"
        fix = "fix the mapping or the file's header row"
        if suggested and not loose:
            fix += (
                " (or set source.match_headers: loose to match names that differ only in "
                "case, spaces and underscores)"
            )
        problems.append(
            f"{input_name} lacks {len(missing)} {noun} the mapping uses: {', '.join(missing)}; "
            f"the file has: {listed or '(no columns)'}; {fix}"
        )
    if ambiguous:
        problems.append(f"{input_name}: " + "; ".join(ambiguous))
    if problems:
        raise MappingError(f"{label}: " + "; ".join(problems))
    return renames


def _listed(names: Sequence[str], last: str) -> str:
    quoted = [f"'{name}'" for name in names[:5]]
    if len(names) > 5:
        quoted.append(f"{len(names) - 5} more")
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"


def rename_columns(model: MappingFile, renames: Mapping[str, str]) -> MappingFile:
    """``model`` reading the headers ``renames`` gives instead of the names it was written
    with (columns, template placeholders and filter columns): compiled, its error messages
    then name the file's own headers."""
    if not renames:
        return model

    def spec(value: BaseSpec) -> BaseSpec:
        update: dict[str, object] = {}
        if value.column is not None and value.column in renames:
            update["column"] = renames[value.column]
        if value.template is not None:
            parts = split_template(value.template)
            if any(is_column and text in renames for is_column, text in parts):
                update["template"] = "".join(
                    f"{{{renames.get(text, text)}}}"
                    if is_column
                    else text.replace("{", "{{").replace("}", "}}")
                    for is_column, text in parts
                )
        if isinstance(value, AttributeSpec) and value.fields is not None:
            update["fields"] = {name: spec(sub) for name, sub in value.fields.items()}
        return value.model_copy(update=update) if update else value

    def specs(values: dict[str, AttributeSpec]) -> dict[str, BaseSpec]:
        return {name: spec(value) for name, value in values.items()}

    activity = model.activity
    conditions = [
        condition.model_copy(update={"column": renames[condition.column]})
        if condition.column in renames
        else condition
        for condition in model.filters.skip_if
    ]
    note: Spec | None = activity.note
    return model.model_copy(
        update={
            "filters": model.filters.model_copy(update={"skip_if": conditions}),
            "lead": model.lead.model_copy(update={"attributes": specs(model.lead.attributes)}),
            "activity": activity.model_copy(
                update={
                    "note": spec(note) if note is not None else None,
                    "datetime": spec(activity.datetime) if activity.datetime else None,
                    "fields": specs(activity.fields),
                }
            ),
        }
    )
