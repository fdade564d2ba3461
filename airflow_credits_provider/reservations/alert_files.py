"""Alert rules kept in a YAML or JSON file (in git), read for ``airflow-credits alerts import``.

The file holds a list of rules, at the top level or under ``rules:``::

    rules:
      - name: growth-budget
        kind: budget                 # budget | budget_forecast | balance | depleted | runway | expiring
        subject: growth              # the budget's name, or the account
        thresholds: [50, 80, 100]    # percents of the cap, credits, days, or "20%" of the plan
        notifier: smtp               # smtp | slack_webhook | package.module.AnyBaseNotifier
        notifier_args:
          to: [growth-team@example.com]
          smtp_conn_id: smtp_default
        description: Growth team's enrichment budget

Every entry is checked before anything is written, and a problem names the file's line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_credits_provider.alerts import AlertRule
from airflow_credits_provider.errors import AlertRuleError, AlertRuleFileError
from airflow_credits_provider.reservations.definition_files import Kind, load_entries, note_unique

if TYPE_CHECKING:
    from pathlib import Path

FIELDS = (
    "name",
    "kind",
    "subject",
    "thresholds",
    "notifier",
    "notifier_args",
    "credit_conn_id",
    "recovered",
    "description",
)
RULES = Kind(
    "alert rule",
    "rules",
    FIELDS,
    ("name", "kind", "subject", "notifier"),
    docs="docs/alerts.md",
    error=AlertRuleFileError,
    scalar_only=False,
)


def load_rules(path: Path) -> list[tuple[int, AlertRule]]:
    """The rules in the YAML or JSON file ``path``, each with its line; :class:`AlertRuleFileError` else."""
    rules: list[tuple[int, AlertRule]] = []
    seen: dict[str, int] = {}
    for entry in load_entries(path, RULES):
        try:
            rule = AlertRule.parse(**entry.fields)
        except AlertRuleError as exc:
            line = entry.lines.get(_field_of(str(exc)), entry.line)
            raise AlertRuleFileError(f"{path} line {line}: {exc}") from None
        note_unique(path, RULES, seen, entry.line, rule.name)
        rules.append((entry.line, rule))
    return rules


#: How a field's problem starts (see :meth:`AlertRule.parse`), to name the line of that field.
_WORDING = (
    ("notifier_args", ("notifier_args",)),
    ("notifier", ("notifier",)),
    ("thresholds", ("threshold", "a threshold", "at most", "a ", "an ")),
    ("kind", ("kind",)),
    ("subject", ("budget ", "account ")),
    ("credit_conn_id", ("credit_conn_id",)),
    ("recovered", ("recovered",)),
)


def _field_of(message: str) -> str:
    problem = message.split(": ", 1)[-1]
    for name, words in _WORDING:
        if problem.startswith(words):
            return name
    return "name"
