"""Definitions kept in a YAML or JSON file (in git): budgets and alert rules, read entry by entry.

The file holds a list of entries, at the top level or under one key (``budgets:``, ``rules:``). Each
entry is a mapping of known fields; a problem names the file's line. Single values are read as the
file's text (``0.1`` stays exactly ``0.1``); lists and mappings (an alert's thresholds, its notifier's
arguments) as YAML builds them. JSON files are read the same way (JSON is YAML), after a JSON syntax
check that names the line of a syntax error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class Kind:
    """What a file defines: its entries' noun, the key holding them, their fields and the docs page.

    :param error: the exception that names the file's line
    :param scalar_only: the fields that must be single values (the others may be lists or mappings)
    """

    noun: str
    key: str
    fields: tuple[str, ...]
    required: tuple[str, ...]
    docs: str
    error: type[Exception]
    scalar_only: bool = True


@dataclass(frozen=True)
class Entry:
    """One entry: its line, its fields (``None`` values left out) and the line of each field."""

    line: int
    fields: dict[str, Any]
    lines: dict[str, int]


def load_entries(path: Path, kind: Kind) -> list[Entry]:
    """The entries of the YAML or JSON file ``path``; ``kind.error`` naming the line otherwise."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise kind.error(f"{path}: cannot read the file ({exc}).") from None
    if path.suffix.lower() == ".json":
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise kind.error(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise kind.error(f"{path}{line}: not valid YAML ({problem}).") from None
    return [_entry(path, node, kind) for node in _nodes(path, root, kind)]


def note_unique(path: Path, kind: Kind, seen: dict[str, int], line: int, name: str) -> None:
    """Record ``name`` defined on ``line``; fail naming both lines when ``seen`` has it already."""
    if name in seen:
        raise kind.error(
            f"{path} line {line}: {kind.noun} {name!r} is defined twice (first on line {seen[name]})."
        )
    seen[name] = line


def _nodes(path: Path, root: Any, kind: Kind) -> list[Any]:
    import yaml

    plural = f"{kind.noun}s"
    if root is None:
        raise kind.error(f"{path}: the file is empty; it should list {plural} (see {kind.docs}).")
    if isinstance(root, yaml.MappingNode):
        keys = {k.value: v for k, v in root.value}
        if set(keys) != {kind.key}:
            raise kind.error(
                f"{path} line {root.start_mark.line + 1}: expected a list of {plural}, or one key "
                f"'{kind.key}:' holding that list; found keys {sorted(keys)}."
            )
        root = keys[kind.key]
    if not isinstance(root, yaml.SequenceNode):
        raise kind.error(f"{path} line {root.start_mark.line + 1}: expected a list of {plural}.")
    return list(root.value)


def _entry(path: Path, node: Any, kind: Kind) -> Entry:
    import yaml

    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise kind.error(
            f"{path} line {line}: each {kind.noun} is a mapping with {', '.join(kind.fields)}; found a "
            f"{'list' if isinstance(node, yaml.SequenceNode) else 'single value'}."
        )
    fields: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key, value in node.value:
        at = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode) or key.value not in kind.fields:
            shown = getattr(key, "value", "?")
            raise kind.error(f"{path} line {at}: unknown field {shown!r} (fields: {', '.join(kind.fields)}).")
        if isinstance(value, yaml.ScalarNode):
            if value.tag.endswith(":null"):
                continue
            # The text as written (exact amounts, names kept as text); true/false as booleans where an
            # entry may hold more than text.
            typed = value.tag.endswith(":bool") and not kind.scalar_only
            fields[key.value] = _construct(value) if typed else value.value
        elif kind.scalar_only:
            raise kind.error(f"{path} line {at}: {key.value} must be a single value.")
        else:
            fields[key.value] = _construct(value)
        lines[key.value] = at
    missing = [f for f in kind.required if f not in fields]
    if missing:
        raise kind.error(f"{path} line {line}: the {kind.noun} lacks {', '.join(missing)}.")
    return Entry(line, fields, lines)


def _construct(node: Any) -> Any:
    import yaml

    return yaml.SafeLoader("").construct_object(node, deep=True)
