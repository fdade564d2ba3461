"""Which alerts a reservation, a release or a checker makes due, claimed where the facts are read.

:func:`claim_in_transaction` runs inside a reservation's (or a release's) transaction, under the
account's lock, with the budget's and the account's numbers as that transaction leaves them: a crossing
it causes is claimed before it commits, and sent by the same task just after (the caller delivers). The
scheduled checker (``CreditAlertsOperator``) claims the rest the same way, in transactions of its own.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.alerts import (
    IN_TRANSACTION_KINDS,
    below,
    budget_crossings,
    budget_forecast_crossings,
)
from airflow_credits_provider.errors import truncate
from airflow_credits_provider.parsing import decimal_text

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime
    from decimal import Decimal

    from airflow_credits_provider.alerts import AlertRule, Crossing
    from airflow_credits_provider.budgets import BudgetState
    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.reservations.alert_claims import AlertClaims
    from airflow_credits_provider.reservations.alert_rules import AlertRuleRegistry

log = logging.getLogger(__name__)


def rules_for(rules: AlertRuleRegistry, cur: Any, account: str, budgets: Sequence[str]) -> list[AlertRule]:
    """The rules a reservation or release on ``account`` (drawing on ``budgets``) may make due."""
    return rules.read_for(cur, [account, *budgets], tuple(IN_TRANSACTION_KINDS))


def claim_in_transaction(
    rules: AlertRuleRegistry,
    claims: AlertClaims,
    cur: Any,
    *,
    account: str,
    budgets: Sequence[BudgetState],
    free: Decimal | None,
    balance: CreditBalance | None,
    held: Decimal,
    now: datetime,
    found: Sequence[AlertRule] | None = None,
) -> list[Crossing]:
    """Claim what the transaction's numbers cross: budget thresholds, and the account's free credits.

    Never fails the reservation or release it runs in: the claims are made under a savepoint, and a
    problem (a rule the database cannot store a claim of, a bug) rolls back to it, is logged, and leaves
    the crossing to ``CreditAlertsOperator``, which checks budgets and balances too.

    :param budgets: the states of the budgets the transaction touched, as it leaves them
    :param free: the account's free credits as it leaves them (``None``: unknown, balance rules skip)
    :param balance: the balance they were computed from (for the message: renewal)
    :param held: what active reservations hold after it
    :param found: the rules on the account and the budgets, read before the transaction took its lock
        (:func:`rules_for`); ``None``: read them now
    """
    if found is None:
        found = rules_for(rules, cur, account, [s.budget.name for s in budgets])
    if not found:
        return []
    cur.execute("SAVEPOINT credit_alerts")
    try:
        claimed = _claim(claims, cur, found, account, budgets, free, balance, held, now)
    except Exception as exc:  # the run's reservation matters more than its alert
        cur.execute("ROLLBACK TO SAVEPOINT credit_alerts")
        log.warning(
            "Credit alerts on %r were not checked in this transaction (%s: %s); CreditAlertsOperator "
            "checks them on its next run.",
            account,
            type(exc).__name__,
            truncate(str(exc), 200),
        )
        return []
    cur.execute("RELEASE SAVEPOINT credit_alerts")
    return claimed


def _claim(
    claims: AlertClaims,
    cur: Any,
    found: Sequence[AlertRule],
    account: str,
    budgets: Sequence[BudgetState],
    free: Decimal | None,
    balance: CreditBalance | None,
    held: Decimal,
    now: datetime,
) -> list[Crossing]:
    claimed: list[Crossing] = []
    by_budget = {s.budget.name: s for s in budgets}
    levels = [r.name for r in found if r.kind in ("balance", "depleted") and r.subject == account]
    dips = claims.last_dips(cur, account, levels) if levels and free is not None else {}
    for rule in found:
        if rule.kind == "budget" and rule.subject in by_budget:
            crossings = budget_crossings(rule, by_budget[rule.subject])
            claimed += claims.claim_all(cur, _unclaimed(claims, cur, crossings), rule.kind, now)
        elif rule.kind in ("balance", "depleted") and rule.subject == account and free is not None:
            facts = account_facts(account, free, balance, held)
            claimed += claims.claim_levels(cur, rule, below(rule, free), free, facts, now, dips)
    return claimed


def claim_budget_rules(
    claims: AlertClaims, cur: Any, rule: AlertRule, state: BudgetState, now: datetime
) -> list[Crossing]:
    """A checker's claims for a ``budget`` or ``budget_forecast`` rule."""
    if rule.kind == "budget":
        crossings = budget_crossings(rule, state)
    else:
        crossings = budget_forecast_crossings(rule, state, now)
    return claims.claim_all(cur, _unclaimed(claims, cur, crossings), rule.kind, now)


def account_facts(
    account: str, free: Decimal, balance: CreditBalance | None, held: Decimal
) -> dict[str, Any]:
    """The numbers of an account alert."""
    facts: dict[str, Any] = {"account": account, "free": decimal_text(free), "held": decimal_text(held)}
    if balance is not None:
        facts["available"] = decimal_text(balance.available)
        facts["vendor"] = balance.vendor_name
        if balance.next_reset_at is not None:
            facts["renews_at"] = balance.next_reset_at.isoformat()
    return facts


def _unclaimed(claims: AlertClaims, cur: Any, crossings: Sequence[Crossing]) -> list[Crossing]:
    """``crossings`` whose key has no row yet (one read instead of an insert attempt per threshold)."""
    if not crossings:
        return []
    t = claims.table
    first = crossings[0]
    where = t.where_key(("rule", "subject", "period"))
    cur.execute(
        f"SELECT {t._escape('threshold')} FROM {t.qualified} WHERE {where}",
        (first.rule, first.subject, first.period),
    )
    there = {str(row[0]) for row in cur.fetchall()}
    return [c for c in crossings if c.threshold not in there]
