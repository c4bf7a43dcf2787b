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

    _depth = 0  # of the node being composed

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # PyYAML composes nested nodes recursively: 100,000 '[' would end in a RecursionError
        # (a traceback, exit 70) rather than a message. Stop at a depth no mapping reaches.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooBig(_TOO_DEEP, self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# A mapping file is written by hand: a few hundred lines, about ten levels deep. These bounds
# are far above any real one; they keep a broken or hostile file from exhausting the stack,
# the memory or the time of a run before it has sent anything.
MAX_FILE_BYTES = 2 * 1024 * 1024  # PyYAML reads ~0.3 MB/s: 2 MiB is already several seconds
MAX_DEPTH = 50
# Keys, values and list items once aliases are expanded. An alias (*name) repeats what its
# anchor (&name) holds, and pydantic and the compiler walk every repetition: nine aliases of
# nine aliases of ... grow exponentially ("billion laughs"), and an 18 KB file of attributes
# whose fields all alias one set of fields that aliases one 300-key map took a minute.
MAX_NODES = 1_000_000

_TOO_DEEP = (
    f"nested too deeply: more than {MAX_DEPTH} levels of mappings and lists (aliases "
    "included); a mapping file needs about 10"
)
_TOO_MANY = (
    f"too large: more than {MAX_NODES:,} keys, values and list items, counting an alias "
    "(*name) each time it is used; write fewer aliases or split the file"
)
_CYCLE = "an alias (*name) is used inside the mapping or list its anchor (&name) names"


class _TooBig(Exception):
    """A YAML file beyond the bounds above, at ``mark``."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.mark = mark


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion (aliases followed) is too deep, too large or
    infinite. Iterative, and each distinct node is visited once, so it is linear in the
    file's size whatever the expansion is."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    open_nodes: set[int] = set()  # the ancestors of the node being visited
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if children_done:
            children = _children(node)
            sizes[ident] = 1 + sum(sizes[id(child)] for child in children)
            depths[ident] = 1 + max((depths[id(child)] for child in children), default=0)
            open_nodes.discard(ident)
            if depths[ident] > MAX_DEPTH:
                raise _TooBig(_TOO_DEEP, node.start_mark)
            if sizes[ident] > MAX_NODES:
                raise _TooBig(_TOO_MANY, node.start_mark)
        elif ident in open_nodes:
            raise _TooBig(_CYCLE, node.start_mark)
        elif ident not in sizes:
            open_nodes.add(ident)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _read_yaml(path: Path, label: str) -> Any:
    try:
        with path.open("rb") as file:
            # Read at most one byte past the bound: the path may be a pipe or /dev/zero.
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise MappingError(
            f"{label}: mapping file not found; check the path (mappings/example.yaml is a "
            "template to copy)"
        ) from None
    except IsADirectoryError:
        raise MappingError(f"{label}: is a directory; give the mapping YAML file") from None
    except OSError as exc:
        raise MappingError(f"{label}: cannot read the mapping file: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise MappingError(
            f"{label}: larger than {MAX_FILE_BYTES // 2**20} MiB; a mapping file is a few "
            "kilobytes of YAML: check that this is the mapping and not the input file"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MappingError(
            f"{label}: not UTF-8 text (byte {exc.start}); save the mapping file as UTF-8"
        ) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except _TooBig as exc:
        mark = exc.mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise MappingError(f"{label}: {where}{exc.problem}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "cannot parse"
        raise MappingError(f"{label}: {where}YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{label}: YAML syntax error: {exc}") from None
    finally:
        loader.dispose()


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
