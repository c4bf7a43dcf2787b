"""Mapping files built to exhaust the stack, the memory or the time of a load: each is refused
in one line naming the file, before anything is parsed further."""

from __future__ import annotations

import pytest

from importer.exceptions import MappingError
from importer.mapping import load_mapping
from importer.mapping.load import MAX_FILE_BYTES

from .conftest import build

VALID = """\
version: 1
source: {timezone: Asia/Kolkata}
activity: {event: 105}
lead:
  search_by: EmailAddress
  attributes:
    EmailAddress: email
"""


def nested_blocks(levels: int) -> str:
    return "version: 1\nx:\n" + "".join(" " * i + "a:\n" for i in range(1, levels))


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nx: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "version: 1\nx: " + "{a: " * 100_000 + "1" + "}" * 100_000 + "\n",
        nested_blocks(2_000),
    ],
    ids=["flow lists", "flow mappings", "block mappings"],
)
def test_deep_nesting_is_a_mapping_error_not_a_recursion_error(write, text):
    # Before: RecursionError from PyYAML's recursive composer, reported as exit 70.
    path = write(text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line ")
    assert "nested too deeply: more than 50 levels" in message
    assert "\n" not in message


def test_nesting_through_aliases_counts_too(write):
    # Each merge key (<<) pulls in the previous mapping: 3,000 of them nest 3,000 deep once
    # expanded, which took 20 seconds of PyYAML's merge flattening before.
    chain = "".join(f"  a{i}: &a{i} {{<<: *a{i - 1}, k{i}: v}}\n" for i in range(1, 3_000))
    path = write("version: 1\nxx:\n  a0: &a0 {k: v}\n" + chain)
    with pytest.raises(MappingError, match="nested too deeply"):
        load_mapping(path)


def test_an_alias_bomb_is_refused_before_pydantic_walks_it(write):
    # 120 attributes alias one custom field set of 120 fields, each aliasing one 120-key map:
    # a 10 KB file that pydantic and the compiler expand to 1.7 million map entries (at
    # 300 each, an 18 KB file took a minute and gigabytes). Counted on the node graph, where
    # each alias is one node, it costs nothing.
    keys = ", ".join(f"k{j}: v" for j in range(120))
    fields = "".join(
        f"        f{i}: {{column: c, map: {'&m {' + keys + '}' if i == 0 else '*m'}}}\n"
        for i in range(120)
    )
    text = (
        VALID
        + "    a0: &x\n      fields:\n"
        + fields
        + "".join(f"    a{i}: *x\n" for i in range(1, 120))
    )
    path = write(text)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line ")
    assert "too large: more than 1,000,000 keys, values and list items" in message
    assert "\n" not in message


def test_billion_laughs(write):
    # safe_load builds this with shared references, in no time; the schema happened to refuse
    # it at its first item before. It is refused by its expanded size now, wherever it sits.
    laughs = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    laughs += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)]
    filters = "filters:\n  skip_if:\n  - {column: c, in: *l8}\n"
    path = write("xx:\n" + "".join(laughs) + VALID + filters)
    with pytest.raises(MappingError, match="too large"):
        load_mapping(path)


def test_an_alias_inside_its_own_anchor_is_refused(write):
    # A self-referencing structure has no finite expansion; it is named as such rather than
    # left to whichever model meets it.
    path = write(VALID.replace("event: 105", "event: &e [*e]"))
    with pytest.raises(MappingError, match="an alias .* is used inside the mapping or list"):
        load_mapping(path)


def test_aliases_within_bounds_still_work(load):
    # Anchors and aliases are ordinary YAML and useful: one yes/no map for several fields.
    text = VALID.replace(
        "    EmailAddress: email\n",
        "    EmailAddress: email\n"
        "    mx_Opt_In: {column: opt, map: &yes_no {Y: 'Yes', N: 'No'}}\n"
        "    mx_Opt_Sms: {column: sms, map: *yes_no}\n",
    )
    details = build(load(text), email="a@x.io", opt="Y", sms="N").body["LeadDetails"]
    assert details[1:3] == [
        {"Attribute": "mx_Opt_In", "Value": "Yes"},
        {"Attribute": "mx_Opt_Sms", "Value": "No"},
    ]


def test_a_file_over_the_size_limit_is_refused_unread(write):
    # Before, it was parsed whatever its size (PyYAML reads about 0.3 MB a second).
    path = write(VALID + "# padding\n" * (MAX_FILE_BYTES // 10))
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(caught.value) == (
        f"{path}: larger than 2 MiB; a mapping file is a few kilobytes of YAML: check that "
        "this is the mapping and not the input file"
    )
