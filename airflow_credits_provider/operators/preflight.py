"""CreditPreflightOperator: fail or skip a DAG before it spends credits it does not have.

Also holds :class:`PreflightArgs`, the arguments and the single check that the operator and
:class:`~airflow_credits_provider.sensors.preflight.CreditPreflightSensor` share.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.compat import BaseOperator
from airflow_credits_provider.errors import CreditProviderError, ValidationTypeUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from decimal import Decimal

    from airflow_credits_provider.compat import Context
    from airflow_credits_provider.decision import PreflightDecision
    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.partial import UnitPlan
    from airflow_credits_provider.reservations import ReservationStore

#: XCom key of the decision record (also returned, as ``return_value``, when the check passes).
XCOM_KEY = "credit_preflight"

PREFLIGHT_TEMPLATE_FIELDS = (
    "credit_conn_id",
    "estimated_cost",
    "units",
    "unit_cost",
    "validation_type",
    "margin",
    "margin_percent",
    "reservation_conn_id",
    "account",
    "budget",
    "min_units",
)

#: XCom keys of a partial run's size (``on_insufficient="partial"``).
AFFORDABLE_UNITS_KEY = "affordable_units"
DEFERRED_UNITS_KEY = "deferred_units"

#: Seconds a balance shared under the reservation lock may be reused by the one-shot operator.
DEFAULT_BALANCE_MAX_AGE = 30.0
#: A reservation's lifetime unless released (a run that was killed returns its credits then).
DEFAULT_RESERVATION_TTL = timedelta(hours=6)


class PreflightArgs:
    """Mixin holding the preflight arguments shared by the operator and the sensor.

    The arguments are documented on :class:`CreditPreflightOperator`.
    """

    credit_conn_id: str
    task_id: str
    log: Any
    #: Whether the task waits for credits itself (the sensor): its messages then do not suggest a sensor.
    waits_for_credits: bool = False

    def __init__(
        self,
        *,
        credit_conn_id: str,
        estimated_cost: Any = None,
        units: Any = None,
        unit_cost: Any = None,
        validation_type: str | None = None,
        margin: Any = 0,
        margin_percent: Any = 0,
        warn_below: Any = None,
        critical_below: Any = None,
        on_low_balance: Callable[..., Any] | None = None,
        reserve: bool = False,
        reservation_conn_id: str | None = None,
        account: str | None = None,
        budget: str | None = None,
        reservation_ttl: timedelta | float = DEFAULT_RESERVATION_TTL,
        reservation_table: str | None = None,
        reservation_schema: str | None = None,
        usage_table: str | None = None,
        balance_max_age: float | None = None,
        lock_timeout: float | None = None,
        partial_run: bool = False,
        min_units: Any = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # the operator's or sensor's own base class
        if (estimated_cost is None) == (units is None):
            raise ValueError(f"Task {self.task_id!r}: pass exactly one of estimated_cost or units.")
        if partial_run and estimated_cost is not None:
            raise ValueError(
                f"Task {self.task_id!r}: on_insufficient='partial' sizes the run in units: pass units and "
                "unit_cost (or validation_type) instead of estimated_cost."
            )
        if partial_run:
            from airflow_credits_provider.decision import unit_plan
            from airflow_credits_provider.errors import InvalidCostEstimateError

            try:  # a bad literal units or min_units fails at DAG parse time; templates when rendered
                unit_plan(
                    task_id=self.task_id,
                    units=0 if units is None or _is_template(units) else units,
                    unit_cost=0,
                    validation_type=None,
                    margin=0,
                    margin_percent=0,
                    min_units=1 if _is_template(min_units) else min_units,
                    balance=None,
                )
            except InvalidCostEstimateError as exc:
                raise ValueError(str(exc)) from None
        if units is not None and unit_cost is None and validation_type is None:
            raise ValueError(f"Task {self.task_id!r}: with units, pass unit_cost or validation_type.")
        if budget is not None:
            reserve = True  # a budget is enforced by the reservation's transaction
            if not isinstance(budget, str) or not budget.strip():
                raise ValueError(f"Task {self.task_id!r}: budget must be a budget's name, got {budget!r}.")
        if reserve and not reservation_conn_id:
            raise ValueError(
                f"Task {self.task_id!r}: {'budget=' + repr(budget) if budget else 'reserve=True'} needs "
                "reservation_conn_id, a SQL connection (PostgreSQL, MySQL/MariaDB or SQLite) where "
                "reservations and budgets are kept."
            )
        ttl = (
            reservation_ttl if isinstance(reservation_ttl, timedelta) else timedelta(seconds=reservation_ttl)
        )
        if ttl <= timedelta(0):
            raise ValueError(
                f"Task {self.task_id!r}: reservation_ttl must be positive, got {reservation_ttl!r}."
            )
        self.credit_conn_id = credit_conn_id
        self.estimated_cost = estimated_cost
        self.units = units
        self.unit_cost = unit_cost
        self.validation_type = validation_type
        self.margin = margin
        self.margin_percent = margin_percent
        self.warn_below = warn_below
        self.critical_below = critical_below
        self.on_low_balance = on_low_balance
        self.reserve = reserve
        self.reservation_conn_id = reservation_conn_id
        self.account = account
        self.budget = budget
        self.reservation_ttl = ttl
        self.reservation_table = reservation_table
        self.reservation_schema = reservation_schema
        self.usage_table = usage_table
        self.balance_max_age = balance_max_age
        self.lock_timeout = lock_timeout
        self.partial_run = partial_run
        self.min_units = min_units

    def _needs_vendor_price(self) -> bool:
        return self.units is not None and self.unit_cost is None

    def _estimate_early(self, context: Context) -> tuple[Decimal, Decimal, str] | None:
        """The estimate, made before any vendor call when it needs no vendor price (bad input fails first)."""
        return None if self._needs_vendor_price() else self._estimate(context, None)

    def _decide(
        self,
        context: Context,
        balance: CreditBalance,
        estimate: tuple[Decimal, Decimal, str] | None = None,
    ) -> PreflightDecision:
        """Compare ``balance`` with the estimate (made now unless given), record the decision."""
        self._check_thresholds(context, balance)
        cost, margin, basis = estimate or self._estimate(context, balance)
        return self._record(context, balance, cost, margin, basis)

    def _check_thresholds(self, context: Context, balance: CreditBalance) -> None:
        """Warn (and call ``on_low_balance``) below ``warn_below`` or ``critical_below``."""
        from airflow_credits_provider.decision import check_thresholds

        check_thresholds(
            balance,
            warn_below=self.warn_below,
            critical_below=self.critical_below,
            task_id=self.task_id,
            log=self.log,
            callback=self.on_low_balance,
            context=context,
        )

    def _record(
        self,
        context: Context,
        balance: CreditBalance,
        cost: Decimal,
        margin: Decimal,
        basis: str,
        reserved: dict[str, Any] | None = None,
        plan: UnitPlan | None = None,
        note: str = "",
    ) -> PreflightDecision:
        """Compare ``balance`` with an estimate already made; log it and push it to XCom once.

        :param reserved: with ``reserve=True``, what the reservation attempt found
            (:meth:`ReserveResult.to_dict`): ``held_by_others``, ``others``, the ``reservation`` taken
            (``None``: none, as it did not fit) and the ``budget``'s state
        :param plan: a partial run's plan as made before deferring (default: made now from ``balance``);
            a partial run is sized here (``cost``, ``margin`` and ``basis`` are then not used)
        :param note: a sentence appended to the decision's message (where the balance came from)
        """
        import dataclasses
        from decimal import Decimal

        from airflow_credits_provider.decision import decide, decide_partial

        others: dict[str, Any] = {
            "waiting": self.waits_for_credits,
            "reserved_by_others": Decimal(reserved["held_by_others"]) if reserved else Decimal(0),
            "other_reservations": int(reserved["others"]) if reserved else 0,
            "budget": reserved.get("budget") if reserved else None,
        }
        if self.partial_run:
            plan = plan or self._unit_plan(context, balance)
            decision = decide_partial(self.credit_conn_id, balance, plan, **others)
        else:
            decision = decide(self.credit_conn_id, balance, cost, margin, basis, **others)
        if reserved is not None:
            taken = reserved["reservation"]
            # Cannot happen (the store and the decision run the same exact arithmetic), but a reservation
            # of another amount than the decision's would spend credits nobody sized.
            if decision.passed != (taken is not None) or (
                taken is not None and Decimal(taken["amount"]) != decision.required
            ):
                raise RuntimeError(f"Reservation and decision disagree for task {self.task_id!r}.")
            decision = dataclasses.replace(
                decision, reservation=taken, alerts=tuple(reserved.get("alerts", ()))
            )
        if note:
            decision = dataclasses.replace(decision, message=f"{decision.message} {note}")
        self.log.info("Credit preflight: %s", decision.message)
        ti = context["ti"]
        ti.xcom_push(key=XCOM_KEY, value=decision.to_dict())
        if self.partial_run:
            ti.xcom_push(key=AFFORDABLE_UNITS_KEY, value=decision.affordable_units)
            ti.xcom_push(key=DEFERRED_UNITS_KEY, value=decision.deferred_units)
        return decision

    def _estimate(self, context: Context, balance: CreditBalance | None) -> tuple[Decimal, Decimal, str]:
        """Return ``(cost, margin, basis)`` from the rendered arguments.

        ``balance`` is needed only for a vendor-reported unit price. Impossible estimates and
        validation types the plan cannot run raise :class:`CreditPreflightFailed` (no retries). For a
        partial run it is the smallest run's: what the gate waits for.
        """
        if self.partial_run:
            plan = self._unit_plan(context, balance)
            smallest = plan.smallest_run
            return plan.cost(smallest), plan.margin_for(smallest), plan.basis(smallest)
        from airflow_credits_provider.decision import estimate_cost, margin_for

        with self._cost_errors():
            cost, basis = estimate_cost(
                task_id=self.task_id,
                estimated_cost=self.estimated_cost,
                units=self.units,
                unit_cost=self.unit_cost,
                validation_type=self.validation_type,
                balance=balance,
                context=context,
            )
            return cost, margin_for(cost, self.margin, self.margin_percent, self.task_id), basis

    def _unit_plan(self, context: Context, balance: CreditBalance | None) -> UnitPlan:
        """The partial run's plan from the rendered arguments (``balance`` for a vendor's unit price)."""
        from airflow_credits_provider.decision import unit_plan

        with self._cost_errors():
            return unit_plan(
                task_id=self.task_id,
                units=self.units,
                unit_cost=self.unit_cost,
                validation_type=self.validation_type,
                margin=self.margin,
                margin_percent=self.margin_percent,
                min_units=self.min_units,
                balance=balance,
            )

    @contextmanager
    def _cost_errors(self) -> Iterator[None]:
        """Impossible estimates and unavailable validation types fail the task (no retries)."""
        from airflow_credits_provider.errors import (
            CreditPreflightFailed,
            InvalidCostEstimateError,
            UnknownValidationTypeError,
        )

        try:
            yield
        except (InvalidCostEstimateError, ValidationTypeUnavailableError) as exc:
            raise CreditPreflightFailed(str(exc)) from None
        except UnknownValidationTypeError as exc:
            raise CreditPreflightFailed(f"Task {self.task_id!r}: {exc}") from None

    # -- reservations ---------------------------------------------------------------------------------
    def _reservation_store(self) -> ReservationStore:
        """The reservation tables behind ``reservation_conn_id`` (validated names, created on first use)."""
        from airflow_credits_provider.reservations import ReservationStore
        from airflow_credits_provider.sql.connections import sql_hook_for

        assert self.reservation_conn_id is not None
        return ReservationStore(sql_hook_for(self.reservation_conn_id), **self._store_options())

    def _store_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "table": self.reservation_table,
            "schema": self.reservation_schema,
            "usage_table": self.usage_table,
            "lock_timeout": self.lock_timeout,
        }
        return {k: v for k, v in options.items() if v is not None}

    def _reserve(
        self,
        context: Context,
        estimate: tuple[Decimal, Decimal, str] | None,
        max_age: float,
        *,
        confirm_refusal: bool = False,
    ) -> tuple[PreflightDecision, CreditBalance]:
        """Reserve ``cost + margin`` on the account if its free credits cover it; record the decision.

        One transaction under the account's lock (see :class:`~airflow_credits_provider.reservations.
        ReservationStore`); the threshold checks and the XCom push run after it commits.

        :param confirm_refusal: refuse (or size a partial run) only on a balance fetched now, never on
            one shared by an earlier reservation or release (the operator's one-shot decision; a sensor
            tries again)
        """
        from decimal import Decimal

        from airflow_credits_provider.errors import BudgetError, CreditPreflightFailed
        from airflow_credits_provider.parsing import exact_arithmetic
        from airflow_credits_provider.reservations import Holder

        made: list[tuple[Decimal, Decimal, str]] = []
        plans: list[UnitPlan] = []

        def amount_for(balance: CreditBalance) -> Decimal:
            if self.partial_run:  # the whole job; amount_within sizes it down to the room
                plans[:] = [self._unit_plan(context, balance)]
                made[:] = [(Decimal(0), Decimal(0), "")]  # unused: _record sizes the partial run
                return plans[0].required(plans[0].units)
            made[:] = [estimate or self._estimate(context, balance)]
            cost, margin, _ = made[0]
            with exact_arithmetic():
                return cost + margin

        store = self._reservation_store()
        try:
            result = store.reserve(
                account=self.account or self.credit_conn_id,
                credit_conn_id=self.credit_conn_id,
                holder=Holder.from_context(context),
                amount_for=amount_for,
                fetch_balance=self._fetch_balance,
                ttl=self.reservation_ttl,
                max_age=max_age,
                budget=self.budget,
                amount_within=(lambda room: plans[0].amount_within(room)) if self.partial_run else None,
                confirm_refusal=confirm_refusal,
            )
        except BudgetError as exc:  # an unknown budget, or one on another account: retrying cannot help
            raise CreditPreflightFailed(f"Task {self.task_id!r}: {exc}") from None
        finally:
            store.close()  # a sensor's next poke may be minutes away: hold no idle connection meanwhile
        account = self.account or self.credit_conn_id
        if result.alerts:  # claimed in the reservation's transaction: sent now that it has committed
            from airflow_credits_provider.notifications.delivery import deliver_claimed

            deliver_claimed(store, result.alerts, self.log)
        for expired in result.expired:
            self.log.warning(
                "A reservation on account %r passed its TTL and expired: %s", account, expired[:12]
            )
        self._check_thresholds(context, result.balance)
        cost, margin, basis = made[0]
        plan = plans[0] if plans else None
        note = ""
        if not result.fetched:  # say so: a balance that changed since is not seen (docs/reservations.md)
            import pendulum

            age = (pendulum.now("UTC") - result.balance.fetched_at).total_seconds()
            note = (
                f"(Balance read {age:.0f}s ago by an earlier reservation or release on account {account!r} "
                f"and reused, as balance_max_age is {max_age:g}s; 0 asks the vendor every time.)"
            )
        decision = self._record(context, result.balance, cost, margin, basis, result.to_dict(), plan, note)
        if result.reservation is not None:
            from airflow_credits_provider.parsing import format_amount

            self.log.info(
                "%s %s credits on account %r until %s (reservation %s)",
                "Kept the reservation of" if result.reused else "Reserved",
                format_amount(decision.required),
                account,
                decision.reservation["expires_at"] if decision.reservation else "?",
                result.reservation.reservation_id[:12],
            )
        return decision, result.balance

    def _fetch_balance(self) -> CreditBalance:
        """Fetch the balance; errors that waiting cannot fix fail the task at once."""
        from airflow_credits_provider.decision import is_fatal
        from airflow_credits_provider.errors import CreditPreflightFailed
        from airflow_credits_provider.hooks.resolve import get_credit_hook

        try:
            return get_credit_hook(self.credit_conn_id).get_balance()
        except CreditProviderError as exc:
            if is_fatal(exc):
                raise CreditPreflightFailed(str(exc)) from None
            raise


class CreditPreflightOperator(PreflightArgs, BaseOperator):
    """Check once that a credit connection covers a job's cost plus a margin, then pass, fail or skip.

    The balance is fetched once. When ``available >= cost + margin`` the task succeeds and returns the
    decision record. Otherwise, with ``on_insufficient="fail"`` (default) it raises
    :class:`~airflow_credits_provider.errors.CreditPreflightFailed`, which fails the task without
    retries, with a message giving the connection, vendor, credits needed and available, the shortfall,
    and what locked credits or the next renewal mean; with ``"skip"`` it skips itself and, through the
    default trigger rules, its downstream tasks. The decision is pushed to XCom under
    ``credit_preflight`` either way.

    With ``on_insufficient="partial"`` (the cost given as ``units`` and a unit price), a shortfall runs
    what the credits cover instead: the task passes with the largest number of units whose cost plus
    margin fits the free credits (after other runs' reservations and, with ``budget``, the budget's
    remaining credits), and pushes ``affordable_units`` and ``deferred_units`` to XCom (also in the
    decision record); with ``reserve=True`` exactly that run's cost plus margin is reserved. When the
    credits cover fewer than ``min_units``, it fails or skips (``below_min_units``). See
    docs/partial-runs.md.

    :param credit_conn_id: the credit connection to check (any vendor) (templated)
    :param estimated_cost: credits the job will spend: a number, a numeric string (e.g. rendered from
        XCom), or a callable taking the context (templated)
    :param units: instead of ``estimated_cost``: how many units the job processes (templated)
    :param unit_cost: credits per unit; without it, the vendor's own price for ``validation_type``
        (templated)
    :param validation_type: the vendor service whose price applies, e.g. TrueMail ``"smtp"`` (templated)
    :param margin: credits kept in reserve on top of the cost (templated)
    :param margin_percent: percent of the cost kept in reserve on top of it (templated)
    :param on_insufficient: ``"fail"``, ``"skip"`` or ``"partial"``
    :param min_units: with ``"partial"``: the smallest run worth starting (default 1); a job smaller
        than it runs when it fits whole (templated)
    :param below_min_units: with ``"partial"``: ``"fail"`` (default) or ``"skip"`` when the credits
        cover fewer than ``min_units``
    :param warn_below: log a warning (and call ``on_low_balance``) when available credits are below it
    :param critical_below: as ``warn_below``, at the critical level
    :param on_low_balance: called as ``on_low_balance(level=..., balance=..., context=...)``
    :param reserve: hold ``cost + margin`` against the account until released (see
        docs/reservations.md): the check then compares with the balance minus every other active
        reservation on the account, and passes only by taking a reservation, in one transaction under the
        account's lock. Release it with :class:`~airflow_credits_provider.operators.reservation.
        CreditReleaseOperator` as a teardown.
    :param reservation_conn_id: with ``reserve``: the SQL connection (PostgreSQL, MySQL/MariaDB or SQLite)
        holding the reservation tables, created on first use (templated)
    :param account: the account reservations are held against (default: ``credit_conn_id``; name one
        when several connections share a vendor account) (templated)
    :param budget: the credit budget this run draws on (see docs/budgets.md); implies ``reserve=True``.
        The check then passes only if the budget's remaining credits this period cover ``cost + margin``
        too. An unknown budget, or one on another account, fails the task at once (templated)
    :param reservation_ttl: how long a reservation holds unless released (``timedelta`` or seconds;
        default 6 hours): longer than the spending work can run
    :param reservation_table: the reservations table (default ``credit_reservations``; its lock table is
        ``<table>_accounts``)
    :param reservation_schema: the schema of the reservation and usage tables
    :param usage_table: where released reservations are recorded (default ``credit_usage``)
    :param balance_max_age: seconds a balance fetched by any reserver of the account (with no release
        since) is reused instead of calling the vendor (default 30). Such a balance may grant a
        reservation, never refuse one: a run that does not fit on it is decided on a balance fetched
        then (so a top-up counts at once)
    :param lock_timeout: seconds to wait for another reserver's lock on the account (default 60)
    """

    template_fields = PREFLIGHT_TEMPLATE_FIELDS
    ui_color = "#fdf1d6"

    def __init__(
        self, *, on_insufficient: str = "fail", below_min_units: str = "fail", **kwargs: Any
    ) -> None:
        task = f"Task {kwargs.get('task_id')!r}: "
        if on_insufficient not in ("fail", "skip", "partial"):
            raise ValueError(
                f"{task}on_insufficient must be 'fail', 'skip' or 'partial', got {on_insufficient!r} "
                "(to wait for credits, use CreditPreflightSensor)"
            )
        if below_min_units not in ("fail", "skip"):
            raise ValueError(
                f"{task}below_min_units must be 'fail' or 'skip', got {below_min_units!r} (to wait until "
                "min_units fit, use CreditPreflightSensor(on_insufficient='partial'))"
            )
        if on_insufficient != "partial" and (below_min_units != "fail" or kwargs.get("min_units", 1) != 1):
            raise ValueError(
                f"{task}min_units and below_min_units apply to on_insufficient='partial' only, got "
                f"on_insufficient={on_insufficient!r}"
            )
        super().__init__(partial_run=on_insufficient == "partial", **kwargs)
        self.on_insufficient = on_insufficient
        self.below_min_units = below_min_units

    def execute(self, context: Context) -> dict[str, Any]:
        """Fetch the balance once and decide."""
        from airflow_credits_provider.compat import AirflowSkipException
        from airflow_credits_provider.errors import CreditPreflightFailed

        estimate = self._estimate_early(context)
        if self.reserve:
            max_age = DEFAULT_BALANCE_MAX_AGE if self.balance_max_age is None else self.balance_max_age
            decision, _ = self._reserve(context, estimate, max_age, confirm_refusal=True)
        else:
            decision = self._decide(context, self._fetch_balance(), estimate)
        if decision.passed:
            return decision.to_dict()
        action = self.below_min_units if self.partial_run else self.on_insufficient
        if action == "skip":
            raise AirflowSkipException(decision.message)
        raise CreditPreflightFailed(decision.message)


def _is_template(value: Any) -> bool:
    """A Jinja template string, rendered only when the task runs."""
    return isinstance(value, str) and "{{" in value
