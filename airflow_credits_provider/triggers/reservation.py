"""The trigger behind deferrable sensors with ``reserve=True``: wait until a reservation fits, and take it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_credits_provider.triggers.balance import CreditBalanceTrigger, _parse

if TYPE_CHECKING:
    from decimal import Decimal

    from airflow.triggers.base import TriggerEvent

    from airflow_credits_provider.budgets import BudgetState
    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.reservations import ReservationStore, ReserveResult
    from airflow_credits_provider.triggers.poller import SharedBalancePoller


class CreditReservationTrigger(CreditBalanceTrigger):
    """Try to reserve ``required`` credits every ``poll_interval`` until it fits or the deadline passes.

    Each try is one transaction under the account's lock in the reservation database (run in a worker
    thread): a reservation another run released, or a balance that rose, lets the next try succeed. The
    balance is shared through the reservation table (a balance fetched by any reserver of the account
    less than ``max_age`` seconds ago, with no release since, is reused), so waiting tasks in every
    triggerer and worker make about one vendor request per ``max_age`` together.

    The reservation is taken here, for the deferred task instance (``holder``); the success event carries
    it back, and the resumed task records the decision without reserving again.

    :param reservation: what the try needs, all primitives: ``reservation_conn_id``, ``account``,
        ``holder`` (``dag_id``, ``run_id``, ``task_id``, ``map_index``), ``ttl`` (seconds), ``max_age``
        (seconds) and ``store`` (the store's table options)
    """

    def __init__(self, *, reservation: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reservation = reservation
        self._store: ReservationStore | None = None
        self._quiet_until: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and primitive kwargs (no key: connections are resolved by id)."""
        path, kwargs = super().serialize()
        return path, {**kwargs, "reservation": self.reservation}

    async def _check(self, poller: SharedBalancePoller, required: Decimal) -> TriggerEvent | None:
        from airflow.triggers.base import TriggerEvent
        from asgiref.sync import sync_to_async

        result = await sync_to_async(self._try_reserve)(required)
        if result.reservation is not None:
            return TriggerEvent(
                {
                    "status": "success",
                    "balance": result.balance.to_dict(),
                    "estimate": self.estimate,
                    "reserved": result.to_dict(),
                }
            )
        if result.budget is not None and result.free >= required:
            return self._budget_short(result.budget, required)
        from airflow_credits_provider.parsing import format_amount

        self.log.info(
            "%s: %s credits available, %s held by %s other reservation(s), %s required; trying again in %ss",
            self.reservation["account"],
            format_amount(result.balance.available),
            format_amount(result.held_by_others),
            result.others,
            self.required,
            self.poll_interval,
        )
        return None

    def _budget_short(self, state: BudgetState, required: Decimal) -> TriggerEvent | None:
        """Only the budget is short: wait for its renewal when only that can help, or end the wait."""
        import pendulum
        from airflow.triggers.base import TriggerEvent

        from airflow_credits_provider.budgets import renewal_text

        self._quiet_until = None
        text = f"{self.reservation['account']}: {state.message(required)}"
        if not state.only_renewal_helps(required):
            self.log.info(
                "%s; other runs of the budget hold credits, trying again in %ss", text, self.poll_interval
            )
            return None
        renews = pendulum.instance(state.period_end).in_timezone("UTC")
        deadline = _parse(self.deadline)
        if required > state.budget.cap or (deadline is not None and renews > deadline):
            why = "more than its whole cap" if required > state.budget.cap else "it renews after the deadline"
            return TriggerEvent({"status": "error", "message": f"Waiting cannot succeed ({why}): {text}."})
        self.log.info("%s; waiting for the renewal at %s", text, renewal_text(state.period_end))
        self._quiet_until = renews
        return None

    def next_wait(self) -> float:
        """Until the budget renews when only that can help, else the poll interval."""
        if self._quiet_until is None:
            return float(self.poll_interval)
        left = (self._quiet_until - self.clock.now()).total_seconds()
        return max(float(self.poll_interval), float(left))

    def _try_reserve(self, required: Decimal) -> ReserveResult:
        """One reservation attempt (blocking: database and, when the shared balance is stale, the vendor)."""
        from datetime import timedelta

        from airflow_credits_provider.partial import UnitPlan
        from airflow_credits_provider.reservations import Holder, ReservationStore
        from airflow_credits_provider.sql.connections import sql_hook_for

        spec = self.reservation
        if self._store is None:
            self._store = ReservationStore(sql_hook_for(spec["reservation_conn_id"]), **spec.get("store", {}))
        planned = (self.estimate or {}).get("plan")
        plan = UnitPlan.from_dict(planned) if planned else None
        try:
            result = self._store.reserve(
                account=spec["account"],
                credit_conn_id=self.credit_conn_id,
                holder=Holder(**spec["holder"]),
                # A partial run asks for the whole job, then for what fits (``required``: its smallest run).
                amount_for=lambda _balance: plan.required(plan.units) if plan else required,
                amount_within=plan.amount_within if plan else None,
                fetch_balance=self._fetch_balance,
                ttl=timedelta(seconds=float(spec["ttl"])),
                max_age=float(spec["max_age"]),
                budget=spec.get("budget"),
            )
        finally:
            # Hundreds of triggers may wait at once, each polling every few minutes: none keeps an idle
            # connection to the reservation database between its attempts.
            self._store.close()
        if result.alerts:  # claimed in the reservation's transaction: sent now that it has committed
            from airflow_credits_provider.notifications.delivery import deliver_claimed

            deliver_claimed(self._store, result.alerts, self.log)
        return result

    def _fetch_balance(self) -> CreditBalance:
        from airflow_credits_provider.hooks.resolve import get_credit_hook

        return get_credit_hook(self.credit_conn_id).get_balance()
