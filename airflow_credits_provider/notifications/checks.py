"""What an alert rule must pass before it is stored: its subject exists, its notifier takes its arguments."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_credits_provider.errors import AlertRuleError, BudgetError, CreditConnectionConfigError

if TYPE_CHECKING:
    from airflow_credits_provider.alerts import AlertRule
    from airflow_credits_provider.reservations import ReservationStore


def check_rule(store: ReservationStore, rule: AlertRule) -> None:
    """Raise :class:`AlertRuleError` when ``rule`` watches nothing known or names a notifier that cannot work.

    A budget must be defined in the reservation database. An account must be known to it (a reservation
    used it) or be a credit connection (``conn_id``, by default the account itself).
    """
    from airflow_credits_provider.notifications.notifiers import check_notifier

    where = f"Alert rule {rule.name!r}: "
    if rule.subject_kind == "budget":
        try:
            store.budgets.get(rule.subject)
        except BudgetError as exc:
            raise AlertRuleError(f"{where}{exc}") from None
    elif not store.known_account(rule.subject) or rule.credit_conn_id:
        _check_credit_connection(rule, where)
    check_notifier(rule)


def _check_credit_connection(rule: AlertRule, where: str) -> None:
    from airflow_credits_provider.hooks.resolve import get_credit_hook

    try:
        get_credit_hook(rule.balance_conn_id)
    except CreditConnectionConfigError as exc:
        account = f"Account {rule.subject!r} is unknown to the reservation database (no run reserved on it)"
        raise AlertRuleError(
            f"{where}{account} and its credit connection {rule.balance_conn_id!r} cannot be used: {exc} "
            "Name a credit connection (subject, or conn_id for an account several connections share)."
        ) from None
