"""``CreditAlertsOperator``: check every credit alert rule on a schedule and send what is due."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.compat import BaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from airflow_credits_provider.alerts import AlertRule, Crossing
    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.config import CreditsSettings
    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.reservations import ReservationStore


_TENTH = Decimal("0.1")


class CreditAlertsOperator(BaseOperator):
    """Check the credit alert rules and send every alert that is due, each exactly once.

    A reservation or a release that crosses a budget or balance threshold claims and sends its alert
    itself, at once. This operator, in a DAG scheduled every few minutes, finds the rest: budget
    forecasts, runways and credits about to expire unused (from the balance snapshots
    ``CreditBalanceToSqlOperator`` lands), and budget and balance crossings caused outside Airflow (a
    vendor's app, another tool). It also sends every alert claimed but not sent yet (a notifier that was
    down): claims live in the reservation database, so a rerun, a restart or a second checker sends
    nothing twice. See docs/alerts.md.

    :param reservation_conn_id: the reservation database's SQL connection (default ``[credits]
        reservations_conn_id``) (templated)
    :param table: the reservations table (default ``[credits] reservations_table``)
    :param schema: its schema (default ``[credits] reservations_schema``)
    :param usage_table: the usage table (default ``[credits] usage_table``)
    :param warehouse_conn_id: where the balance snapshots are landed, for ``runway`` and ``expiring`` rules
        (default ``[credits] warehouse_conn_id``; without one those rules are skipped, with a warning)
        (templated)
    :param snapshots_table: the snapshots table (default ``[credits] snapshots_table``)
    :param window_days: days of snapshot history the burn rate is measured over (default ``[credits]
        runway_window_days``)
    :param rules: check only these rules (default: every rule)
    """

    template_fields: Sequence[str] = ("reservation_conn_id", "warehouse_conn_id")

    def __init__(
        self,
        *,
        reservation_conn_id: str | None = None,
        table: str | None = None,
        schema: str | None = None,
        usage_table: str | None = None,
        warehouse_conn_id: str | None = None,
        snapshots_table: str | None = None,
        window_days: float | None = None,
        rules: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.reservation_conn_id = reservation_conn_id
        self.table = table
        self.schema = schema
        self.usage_table = usage_table
        self.warehouse_conn_id = warehouse_conn_id
        self.snapshots_table = snapshots_table
        self.window_days = window_days
        self.rules = None if rules is None else list(rules)

    def execute(self, context: Context) -> dict[str, Any]:
        """Claim what is due, send every claimed alert not sent yet; return what happened (XCom)."""
        from airflow_credits_provider.config import CreditsSettings
        from airflow_credits_provider.notifications.delivery import deliver

        settings = CreditsSettings.from_airflow()
        store = self._store(settings)
        self._balances: dict[str, CreditBalance] = {}  # one vendor request per connection and run
        rules = [r for r in store.alert_rules.all() if self.rules is None or r.name in self.rules]
        claimed: list[Crossing] = []
        skipped: dict[str, str] = {}
        for rule in rules:
            try:
                claimed += self._check(store, rule, settings)
            except Exception as exc:  # one rule's facts unreadable: the others are still checked
                from airflow_credits_provider.errors import truncate

                skipped[rule.name] = f"{type(exc).__name__}: {truncate(str(exc), 300)}"
                self.log.warning("Alert rule %r not checked: %s", rule.name, skipped[rule.name])
        report = deliver(store)
        self.log.info(
            "Checked %d alert rule(s): %d alert(s) newly due, %d sent, %d failed (retried later).",
            len(rules),
            len(claimed),
            len(report.sent),
            len(report.failed),
        )
        return {
            "checked": [r.name for r in rules],
            "claimed": [c.title for c in claimed],
            "skipped": skipped,
            **report.to_dict(),
        }

    # -- the facts each kind needs -------------------------------------------------------------------
    def _check(self, store: ReservationStore, rule: AlertRule, settings: CreditsSettings) -> list[Crossing]:
        from airflow_credits_provider.alerts import DIP_KINDS, below, expiring_credits, expiring_crossing
        from airflow_credits_provider.reservations.alert_checks import account_facts, claim_budget_rules

        claims, now = store.alert_claims, store.clock()
        if rule.subject_kind == "budget":
            state = store.budget_state(rule.subject)
            return claims.in_transaction(lambda cur: claim_budget_rules(claims, cur, rule, state, now))
        if rule.balance_conn_id not in self._balances:
            self._balances[rule.balance_conn_id] = _balance(rule.balance_conn_id)
        balance = self._balances[rule.balance_conn_id]
        held = _held(store, rule.subject)
        free = balance.available - held
        facts = account_facts(rule.subject, free, balance, held)
        if rule.kind in ("balance", "depleted"):
            past = below(rule, free)
            return claims.in_transaction(lambda cur: claims.claim_levels(cur, rule, past, free, facts, now))
        burn = self._burn_per_day(rule, settings)
        if burn is None:
            return []
        days_to_renewal = _days_until(balance.next_reset_at, now)
        if rule.kind in DIP_KINDS:  # runway: from the live free credits at the measured burn rate
            days = None if burn <= 0 else (free / burn).quantize(_TENTH)
            renews_first = days_to_renewal is not None and days is not None and days_to_renewal <= days
            past = below(rule, None if renews_first else days)
            facts = {**facts, "days_left": None if days is None else str(days), "burn_per_day": str(burn)}
            return claims.in_transaction(lambda cur: claims.claim_levels(cur, rule, past, days, facts, now))
        if days_to_renewal is None:  # expiring: nothing resets on a known date
            return []
        expiring = expiring_credits(balance.available, burn, days_to_renewal, balance.bonus)
        plan = balance.monthly if balance.monthly is not None else balance.total
        facts = {**facts, "expiring": str(expiring), "burn_per_day": str(burn), "plan": str(plan)}
        crossings = [
            expiring_crossing(rule, threshold, expiring, facts)
            for threshold, is_past in below(rule, expiring, plan).items()
            if is_past
        ]
        return claims.in_transaction(lambda cur: claims.claim_all(cur, crossings, rule.kind, now))

    def _burn_per_day(self, rule: AlertRule, settings: CreditsSettings) -> Decimal | None:
        """The account's burn per day over the window, from its landed snapshots (``None``: unknown)."""
        from datetime import timedelta

        from airflow_credits_provider.errors import NotEnoughHistoryError
        from airflow_credits_provider.operators.runway import read_snapshots
        from airflow_credits_provider.runway import forecast

        conn_id = self.warehouse_conn_id or settings.warehouse_conn_id
        if not conn_id:
            self.log.warning(
                "Alert rule %r (%s) needs landed balance snapshots: set warehouse_conn_id or [credits] "
                "warehouse_conn_id.",
                rule.name,
                rule.kind,
            )
            return None
        window = timedelta(days=self.window_days or settings.runway_window_days)
        try:
            snapshots = read_snapshots(
                conn_id,
                rule.subject,
                table=self.snapshots_table or settings.snapshots_table,
                schema=settings.warehouse_schema or None,
                window=window,
            )
            return forecast(snapshots, window=window).burn_per_day
        except NotEnoughHistoryError as exc:
            self.log.info("Alert rule %r: no burn rate for %r yet (%s).", rule.name, rule.subject, exc)
            return None

    def _store(self, settings: CreditsSettings) -> ReservationStore:
        from airflow_credits_provider.errors import CreditConnectionConfigError
        from airflow_credits_provider.reservations import ReservationStore
        from airflow_credits_provider.sql.connections import sql_hook_for

        conn_id = self.reservation_conn_id or settings.reservations_conn_id
        if not conn_id:
            raise CreditConnectionConfigError(
                f"Task {self.task_id!r}: no reservation database, where alert rules live: pass "
                "reservation_conn_id or set [credits] reservations_conn_id."
            )
        return ReservationStore(
            sql_hook_for(conn_id),
            table=self.table or settings.reservations_table,
            schema=self.schema or settings.reservations_schema or None,
            usage_table=self.usage_table or settings.usage_table,
        )


def _balance(conn_id: str) -> CreditBalance:
    from airflow_credits_provider.hooks.resolve import get_credit_hook

    with get_credit_hook(conn_id) as hook:
        return hook.get_balance()


def _held(store: ReservationStore, account: str) -> Decimal:
    from airflow_credits_provider.parsing import exact_arithmetic

    with exact_arithmetic():
        return sum((r.amount for r in store.active(account)), Decimal(0))


def _days_until(moment: datetime | None, now: datetime) -> Decimal | None:
    """Days from ``now`` (naive UTC) to ``moment`` (aware), ``None`` when unknown or past."""
    from datetime import timezone

    if moment is None:
        return None
    seconds = (moment.astimezone(timezone.utc).replace(tzinfo=None) - now).total_seconds()
    return None if seconds <= 0 else (Decimal(seconds) / 86400).quantize(_TENTH)
