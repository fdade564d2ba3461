"""CreditPreflightSensor: wait until a credit connection covers a job (poke, reschedule, deferrable)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.compat import BaseSensorOperator, conf
from airflow_credits_provider.operators.preflight import PREFLIGHT_TEMPLATE_FIELDS, PreflightArgs

if TYPE_CHECKING:
    from decimal import Decimal

    from pendulum import DateTime

    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.decision import PreflightDecision
    from airflow_credits_provider.models import CreditBalance


class CreditPreflightSensor(PreflightArgs, BaseSensorOperator):
    """Wait until a credit connection has ``cost + margin`` credits available.

    One class for every mode: ``mode="poke"`` or ``"reschedule"``, or ``deferrable=True`` (default:
    ``[operators] default_deferrable``), which checks once and, if short, defers to
    :class:`~airflow_credits_provider.triggers.balance.CreditBalanceTrigger` with an absolute deadline
    (now + ``timeout``). ``timeout`` and ``soft_fail`` behave as in Airflow's own sensors in every mode.

    Errors that waiting cannot fix (a bad key, a denied plan, a wrong URL, an impossible estimate) fail
    the task at once with the vendor's message; rate limits, 5xx answers and network errors are waited
    out. The decision record is pushed to XCom under ``credit_preflight`` at each check, and returned
    when the check passes.

    With ``wait_for_reset=True``, when the vendor reports when credits renew (LocalLeads ``resetDay`` /
    ``lastResetAt``, TrueMail ``period.end``) and the renewal will cover the job (or the vendor does
    not say how much it renews), the sensor makes no calls until the renewal instead of polling all
    month; when the renewal comes after the sensor's deadline it fails (or, with ``soft_fail``, skips)
    at once, saying so.

    With ``on_insufficient="partial"`` (the cost given as ``units`` and a unit price), the sensor passes
    as soon as the free credits cover the whole job or at least ``min_units`` of it, sized as
    :class:`~airflow_credits_provider.operators.preflight.CreditPreflightOperator` sizes a partial run
    (``affordable_units`` and ``deferred_units`` in XCom; with ``reserve=True`` exactly that run's cost is
    reserved); below ``min_units`` it keeps waiting. See docs/partial-runs.md.

    :param credit_conn_id: the credit connection to watch (any vendor) (templated)
    :param estimated_cost: credits the job will spend: a number, a numeric string, or a callable taking
        the context (templated)
    :param units: instead of ``estimated_cost``: how many units the job processes (templated)
    :param unit_cost: credits per unit; without it, the vendor's price for ``validation_type`` (templated)
    :param validation_type: the vendor service whose price applies, e.g. TrueMail ``"smtp"`` (templated)
    :param margin: credits kept in reserve on top of the cost (templated)
    :param margin_percent: percent of the cost kept in reserve on top of it (templated)
    :param on_insufficient: ``"wait"`` (default) for the whole job, or ``"partial"``: pass with what the
        credits cover once that is at least ``min_units``
    :param min_units: with ``"partial"``: the smallest run worth starting (default 1) (templated)
    :param wait_for_reset: wait for the vendor's next credit renewal instead of polling, when it covers
    :param deferrable: defer to the triggerer while waiting (default: ``[operators] default_deferrable``)
    :param warn_below: log a warning (and call ``on_low_balance``) when available credits are below it
    :param critical_below: as ``warn_below``, at the critical level
    :param on_low_balance: called as ``on_low_balance(level=..., balance=..., context=...)``
    :param reserve: pass only by reserving ``cost + margin`` on the account, against the balance minus
        every other active reservation (see :class:`~airflow_credits_provider.operators.preflight.
        CreditPreflightOperator` for this and the other reservation arguments). While waiting, each poke
        (or the trigger, when deferrable) tries the reservation again, so credits another run releases are
        taken as soon as they fit. ``balance_max_age`` defaults to ``poke_interval``: waiters on one
        account share one vendor request per interval, across workers and triggerers.
    """

    template_fields = PREFLIGHT_TEMPLATE_FIELDS
    ui_color = "#fdf1d6"
    waits_for_credits = True

    def __init__(
        self,
        *,
        on_insufficient: str = "wait",
        wait_for_reset: bool = False,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if on_insufficient not in ("wait", "partial"):
            raise ValueError(
                f"Task {kwargs.get('task_id')!r}: on_insufficient must be 'wait' or 'partial', got "
                f"{on_insufficient!r} (a sensor waits; to fail or skip at once, use CreditPreflightOperator, "
                "or soft_fail=True to skip at the timeout)"
            )
        if on_insufficient != "partial" and kwargs.get("min_units", 1) != 1:
            raise ValueError(
                f"Task {kwargs.get('task_id')!r}: min_units applies to on_insufficient='partial' only"
            )
        super().__init__(partial_run=on_insufficient == "partial", **kwargs)
        self.on_insufficient = on_insufficient
        self.wait_for_reset = wait_for_reset
        if deferrable is None:  # read here, not as a default argument, to keep DAG-file imports cheap
            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = deferrable
        self._quiet_until: DateTime | None = None
        self._poke_deadline: DateTime | None = None

    # -- poke and reschedule ------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        """Poke/reschedule through Airflow's sensor loop; deferrable: check once, then defer."""
        if not self.deferrable:
            self._poke_deadline = self._deadline(context)
            return super().execute(context)
        from airflow_credits_provider.compat import AirflowFailException, AirflowSkipException

        try:
            return self._check_then_defer(context)
        except AirflowFailException as exc:  # as Airflow's sensor loop treats a failing poke
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(
                    f"Skipping ({'soft_fail' if self.soft_fail else 'never_fail'}): {exc}"
                ) from exc
            raise

    def poke(self, context: Context) -> Any:
        """Check the balance once; ``False`` to keep waiting."""
        import pendulum

        from airflow_credits_provider.compat import PokeReturnValue
        from airflow_credits_provider.errors import CreditPreflightFailed, CreditProviderError

        if self._quiet_until is not None and pendulum.now("UTC") < self._quiet_until:
            return False  # poke mode, waiting for a known renewal: no calls until then
        try:
            if self.reserve:
                decision, balance = self._reserve(context, None, self._balance_max_age())
            else:
                balance = self._fetch_balance()
        except CreditPreflightFailed:  # waiting cannot help (a bad key, a denied plan)
            raise
        except CreditProviderError as exc:  # retryable errors, already retried by the hook: keep waiting
            self.log.warning("Balance check failed, will check again: %s", exc)
            return False
        if not self.reserve:
            decision = self._decide(context, balance)
        if decision.passed:
            return PokeReturnValue(is_done=True, xcom_value=decision.to_dict())
        if self._plan_waits(decision, balance, self._poke_deadline) is None:
            self.log.info("Waiting: the next check is in %ss", self.poke_interval)
        return False

    def _balance_max_age(self) -> float:
        """How old a balance shared under the reservation lock may be: one poke interval by default."""
        return float(self.poke_interval) if self.balance_max_age is None else self.balance_max_age

    def _deadline(self, context: Context) -> DateTime:
        import pendulum

        from airflow_credits_provider.compat import first_reschedule_date

        start = pendulum.now("UTC")
        if self.reschedule:
            first = first_reschedule_date(context)
            if first is not None:
                start = first
        return start + timedelta(seconds=self.timeout)

    def _plan_waits(
        self, decision: PreflightDecision, balance: CreditBalance, deadline: DateTime | None
    ) -> DateTime | None:
        """When to check next: the later of the budget's and the vendor's renewal, when they can help.

        The budget's renewal counts when only it can make room; the vendor's with ``wait_for_reset``.
        Either coming after the deadline fails the task at once (``soft_fail``: skips it).
        """
        budget = self._plan_budget_wait(decision, deadline)
        reset = self._plan_reset_wait(decision, balance, deadline)
        times = [t for t in (budget, reset) if t is not None]
        if not times:
            return None
        until = max(times)
        if self.deferrable:
            return until
        if self.reschedule:
            from airflow_credits_provider.compat import AirflowRescheduleException

            raise AirflowRescheduleException(until)
        self._quiet_until = until
        return until

    def _plan_budget_wait(self, decision: PreflightDecision, deadline: DateTime | None) -> DateTime | None:
        """The budget's renewal when only it can make room (its spend this period alone leaves too little)."""
        if not decision.budget_short or decision.budget is None:
            return None
        import pendulum

        from airflow_credits_provider.budgets import BudgetState, renewal_text

        state = BudgetState.from_dict(decision.budget)
        if not state.only_renewal_helps(decision.required):
            return None  # the budget's other runs hold credits they may not spend: keep trying
        name = state.budget.name
        if decision.required > state.budget.cap:
            self._cannot_wait(
                f"This run needs {decision.required} credits, more than the whole cap of budget {name!r} "
                f"per {state.budget.period}: no renewal can cover it. {decision.message}"
            )
        renews = pendulum.instance(state.period_end).in_timezone("UTC")
        if deadline is not None and renews > deadline:
            self._cannot_wait(
                f"Budget {name!r} renews at {renewal_text(state.period_end)}, after this sensor's deadline "
                f"{deadline.isoformat()}: waiting cannot succeed. {decision.message}"
            )
        self.log.info("Waiting for budget %r to renew at %s", name, renewal_text(state.period_end))
        return renews

    def _cannot_wait(self, message: str) -> None:
        from airflow_credits_provider.compat import AirflowSkipException
        from airflow_credits_provider.errors import CreditPreflightFailed

        if self.soft_fail:
            raise AirflowSkipException(message)
        raise CreditPreflightFailed(message)

    def _plan_reset_wait(
        self, decision: PreflightDecision, balance: CreditBalance, deadline: DateTime | None
    ) -> DateTime | None:
        """With ``wait_for_reset``, the vendor's renewal when it can help; fail when it is too late."""
        if not self.wait_for_reset or balance.next_reset_at is None:
            return None
        from airflow_credits_provider.decision import balance_after_reset

        if decision.budget_short and decision.available - decision.reserved_by_others >= decision.required:
            return None  # the account has the credits: only the budget is short
        reset = balance.next_reset_at
        after = balance_after_reset(balance)
        if after is not None and after < decision.required:
            return None  # the renewal will not cover it: only a top-up can, so keep polling
        if deadline is not None and reset > deadline:
            self._cannot_wait(
                f"Credits renew at {reset.isoformat()}, after this sensor's deadline "
                f"{deadline.isoformat()}: waiting cannot succeed. {decision.message}"
            )
        self.log.info("Waiting for the credit renewal at %s instead of polling", reset.isoformat())
        return reset

    # -- deferrable ---------------------------------------------------------------------------------
    def _check_then_defer(self, context: Context) -> Any:
        import pendulum

        from airflow_credits_provider.parsing import exact_arithmetic
        from airflow_credits_provider.triggers.balance import CreditBalanceTrigger

        deadline = pendulum.now("UTC") + timedelta(seconds=self.timeout)
        decision, balance, estimate = self._first_check(context)
        if decision is not None and decision.passed:
            return decision.to_dict()
        not_before = None
        if decision is not None and balance is not None:
            not_before = self._plan_waits(decision, balance, deadline)
            cost, margin, basis = decision.cost, decision.margin, decision.basis
        else:
            assert estimate is not None  # without a balance, the estimate was made before the call
            cost, margin, basis = estimate
        with exact_arithmetic():
            required = cost + margin
        trigger_kwargs: dict[str, Any] = {
            "credit_conn_id": self.credit_conn_id,
            "required": str(required),
            "poll_interval": self.poke_interval,
            "deadline": deadline.isoformat(),
            "not_before": not_before.isoformat() if not_before else None,
            # Returned with the success event: resuming must not call a cost callable again.
            "estimate": {"cost": str(cost), "margin": str(margin), "basis": basis},
        }
        if self.partial_run:  # the trigger sizes a reservation with it; resuming sizes the run with it
            trigger_kwargs["estimate"]["plan"] = self._unit_plan(context, balance).to_dict()
        if self.reserve:
            from airflow_credits_provider.reservations import Holder
            from airflow_credits_provider.triggers.reservation import CreditReservationTrigger

            holder = Holder.from_context(context)
            trigger: CreditBalanceTrigger = CreditReservationTrigger(
                reservation={
                    "reservation_conn_id": self.reservation_conn_id,
                    "account": self.account or self.credit_conn_id,
                    "holder": {
                        "dag_id": holder.dag_id,
                        "run_id": holder.run_id,
                        "task_id": holder.task_id,
                        "map_index": holder.map_index,
                    },
                    "ttl": self.reservation_ttl.total_seconds(),
                    "max_age": self._balance_max_age(),
                    "store": self._store_options(),
                    "budget": self.budget,
                },
                **trigger_kwargs,
            )
        else:
            trigger = CreditBalanceTrigger(**trigger_kwargs)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def _first_check(
        self, context: Context
    ) -> tuple[PreflightDecision | None, CreditBalance | None, tuple[Decimal, Decimal, str] | None]:
        """The first check: ``(decision, balance, estimate)``; no decision when the vendor call failed."""
        from airflow_credits_provider.errors import CreditPreflightFailed, CreditProviderError

        estimate = self._estimate_early(context)
        try:
            if self.reserve:
                decision, balance = self._reserve(context, estimate, self._balance_max_age())
                return decision, balance, estimate
            balance = self._fetch_balance()
        except CreditPreflightFailed:
            raise
        except CreditProviderError as exc:
            if estimate is None:
                raise  # the cost needs the vendor's price: let the task's retries handle it
            self.log.warning("First balance check failed, deferring to keep waiting: %s", exc)
            return None, None, estimate
        return self._decide(context, balance, estimate), balance, estimate

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: pass, time out, or fail with the vendor's message.

        The cost estimated before deferring comes back in the trigger's event and is reused (a cost
        callable is not called again); the decision is recorded once.
        """
        from decimal import Decimal

        from airflow_credits_provider.compat import AirflowSensorTimeout
        from airflow_credits_provider.errors import CreditPreflightFailed
        from airflow_credits_provider.models import CreditBalance
        from airflow_credits_provider.partial import UnitPlan

        status = event.get("status")
        if status == "success":
            balance = CreditBalance.from_dict(event["balance"])
            estimate = event["estimate"]
            cost, margin = Decimal(estimate["cost"]), Decimal(estimate["margin"])
            plan = UnitPlan.from_dict(estimate["plan"]) if estimate.get("plan") else None
            # With reserve=True the trigger took the reservation: record it, do not reserve again.
            decision = self._record(
                context, balance, cost, margin, estimate["basis"], event.get("reserved"), plan
            )
            if decision.passed:
                return decision.to_dict()
            raise CreditPreflightFailed("The balance dropped again after the trigger saw enough credits.")
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", "Timed out waiting for credits."))
        raise CreditPreflightFailed(event.get("message", "The credit balance trigger failed."))
