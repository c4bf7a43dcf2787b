"""Templates: text with ``{column}`` references, split at load and rendered per row."""

from __future__ import annotations

from collections.abc import Callable

Getter = Callable[[dict[str, str]], str]


def split_template(template: str) -> list[tuple[bool, str]]:
    """Split a template into (is_column, text) parts; ``{{`` and ``}}`` are literal braces.

    Column names are taken verbatim between the braces (spaces, dots and colons included),
    which is why this is not ``str.format`` syntax.
    """
    parts: list[tuple[bool, str]] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if template.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = template.find("}", i + 1)
            inner = template[i + 1 : end] if end != -1 else ""
            if end == -1 or "{" in inner:
                raise ValueError(
                    f"unclosed '{{' at position {i + 1} of {template!r}; "
                    "write '{{' for a literal brace"
                )
            if not inner:
                raise ValueError(
                    f"empty '{{}}' at position {i + 1} of {template!r}; put a column name inside"
                )
            if literal:
                parts.append((False, "".join(literal)))
                literal = []
            parts.append((True, inner))
            i = end + 1
        elif ch == "}":
            if not template.startswith("}}", i):
                raise ValueError(
                    f"unmatched '}}' at position {i + 1} of {template!r}; "
                    "write '}}' for a literal brace"
                )
            literal.append("}")
            i += 2
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append((False, "".join(literal)))
    return parts


def template_getter(parts: list[tuple[bool, str]]) -> Getter:
    columns = tuple(dict.fromkeys(text for is_column, text in parts if is_column))
    # Re-express as a positional str.format pattern: rendering is then one C call per row.
    pattern = "".join(
        f"{{{columns.index(text)}}}" if is_column else text.replace("{", "{{").replace("}", "}}")
        for is_column, text in parts
    )

    def get(values: dict[str, str]) -> str:
        cells = [values.get(column, "").strip() for column in columns]
        # All referenced cells empty -> the value is empty, so default/required/omit apply
        # instead of sending the template's bare punctuation.
        if not any(cells):
            return ""
        return pattern.format(*cells).strip()

    return get
