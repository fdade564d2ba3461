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

from typing import TYPE_CHECKING

from airflow_credits_provider.budgets import Budget
from airflow_credits_provider.errors import BudgetFileError, InvalidBudgetError
from airflow_credits_provider.reservations.definition_files import Kind, load_entries, note_unique

if TYPE_CHECKING:
    from pathlib import Path

FIELDS = ("name", "account", "cap", "period", "timezone", "description")
BUDGETS = Kind(
    "budget",
    "budgets",
    FIELDS,
    required=("name", "account", "cap"),
    docs="docs/budgets.md",
    error=BudgetFileError,
)


def load_budgets(path: Path) -> list[Budget]:
    """The budgets in the YAML or JSON file ``path``; :class:`BudgetFileError` naming the line otherwise."""
    budgets: list[Budget] = []
    seen: dict[str, int] = {}
    for entry in load_entries(path, BUDGETS):
        try:
            budget = Budget.parse(**entry.fields)
        except InvalidBudgetError as exc:
            line = _line_of(str(exc), entry.lines, entry.line)
            raise BudgetFileError(f"{path} line {line}: {exc}") from None
        note_unique(path, BUDGETS, seen, entry.line, budget.name)
        budgets.append(budget)
    return budgets


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
