"""Budgets kept in a YAML or JSON file (in git), read for ``airflow-credits budgets import``.

The file holds a list of budgets, at the top level or under ``budgets:``::

    budgets:
      - name: growth
        account: leadmagic_shared
        cap: 50000
        period: month            # day | week | month (default month)
        timezone: Europe/Berlin  # IANA name (default UTC)
        description: Growth team's enrichment

Every entry is checked before anything is written, and a problem names the file's line. Amounts are
read from the file's text (``0.1`` stays exactly ``0.1``). JSON files are read the same way (JSON is
YAML), after a JSON syntax check that names the line of a syntax error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.budgets import Budget
from airflow_credits_provider.errors import BudgetFileError, InvalidBudgetError

if TYPE_CHECKING:
    from pathlib import Path

FIELDS = ("name", "account", "cap", "period", "timezone", "description")
_REQUIRED = ("name", "account", "cap")


def load_budgets(path: Path) -> list[Budget]:
    """The budgets in the YAML or JSON file ``path``; :class:`BudgetFileError` naming the line otherwise."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BudgetFileError(f"{path}: cannot read the file ({exc}).") from None
    if path.suffix.lower() == ".json":
        import json

        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise BudgetFileError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}).") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise BudgetFileError(f"{path}{line}: not valid YAML ({problem}).") from None
    entries = _entries(path, root)
    budgets: list[Budget] = []
    seen: dict[str, int] = {}
    for node in entries:
        line = node.start_mark.line + 1
        budget = _budget(path, line, node)
        if budget.name in seen:
            raise BudgetFileError(
                f"{path} line {line}: budget {budget.name!r} is defined twice (first on line "
                f"{seen[budget.name]})."
            )
        seen[budget.name] = line
        budgets.append(budget)
    return budgets


def _entries(path: Path, root: Any) -> list[Any]:
    import yaml

    if root is None:
        raise BudgetFileError(f"{path}: the file is empty; it should list budgets (see docs/budgets.md).")
    if isinstance(root, yaml.MappingNode):
        keys = {k.value: v for k, v in root.value}
        if set(keys) != {"budgets"}:
            raise BudgetFileError(
                f"{path} line {root.start_mark.line + 1}: expected a list of budgets, or one key "
                f"'budgets:' holding that list; found keys {sorted(keys)}."
            )
        root = keys["budgets"]
    if not isinstance(root, yaml.SequenceNode):
        raise BudgetFileError(f"{path} line {root.start_mark.line + 1}: expected a list of budgets.")
    return list(root.value)


def _budget(path: Path, line: int, node: Any) -> Budget:
    import yaml

    if not isinstance(node, yaml.MappingNode):
        raise BudgetFileError(
            f"{path} line {line}: each budget is a mapping with {', '.join(FIELDS)}; found a "
            f"{'list' if isinstance(node, yaml.SequenceNode) else 'single value'}."
        )
    fields: dict[str, Any] = {}
    lines: dict[str, int] = {}
    for key, value in node.value:
        at = key.start_mark.line + 1
        if not isinstance(key, yaml.ScalarNode) or key.value not in FIELDS:
            shown = getattr(key, "value", "?")
            raise BudgetFileError(f"{path} line {at}: unknown field {shown!r} (fields: {', '.join(FIELDS)}).")
        if not isinstance(value, yaml.ScalarNode):
            raise BudgetFileError(f"{path} line {at}: {key.value} must be a single value.")
        if value.tag.endswith(":null"):
            continue
        fields[key.value] = value.value  # the text as written: exact amounts, names kept as text
        lines[key.value] = at
    missing = [f for f in _REQUIRED if f not in fields]
    if missing:
        raise BudgetFileError(f"{path} line {line}: the budget lacks {', '.join(missing)}.")
    try:
        return Budget.parse(**fields)
    except InvalidBudgetError as exc:
        raise BudgetFileError(f"{path} line {_line_of(str(exc), lines, line)}: {exc}") from None


#: How a field's problem is worded (see :meth:`Budget.parse`), to name the line of that field.
_WORDING = {
    "cap": ("cap ",),
    "period": ("period",),
    "timezone": ("time zone", "timezone"),
    "account": ("account ",),
}


def _line_of(message: str, lines: dict[str, int], default: int) -> int:
    problem = message.split(": ", 1)[-1]
    for name, words in _WORDING.items():
        if name in lines and problem.startswith(words + tuple(f"unknown {w}" for w in words)):
            return lines[name]
    return default
