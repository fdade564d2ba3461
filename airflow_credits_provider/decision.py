"""The preflight decision, shared by the operator, the sensor and the trigger. Vendor-neutral.

Turns a cost estimate (a number, a rendered template, a callable, or units x a unit price) plus a
margin into the credits a job needs, compares it with a :class:`CreditBalance`, and explains a
shortfall in words a DAG author can act on. Pure functions: no I/O here.

Every amount is exact: inputs are bounded (:func:`~airflow_credits_provider.parsing.amount_problem`)
and arithmetic runs in :func:`~airflow_credits_provider.parsing.exact_arithmetic`, so a shortfall of
``1e-30`` credits on a balance of ``1e30`` is still a shortfall. Messages print numbers compactly and
are bounded in length whatever the input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import (
    AuthenticationError,
    CreditConnectionConfigError,
    InvalidCostEstimateError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    UntrustedCertificateError,
    truncate,
)
from airflow_credits_provider.parsing import (
    amount_problem,
    exact_arithmetic,
    format_amount,
    grouped_amount,
    to_amount,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.partial import UnitPlan

#: What the operator does when the balance is too low; ``"partial"`` runs what the credits cover.
ON_INSUFFICIENT = ("fail", "skip", "partial")

#: Longest failure message; the vendor's own texts inside it are truncated further.
MAX_MESSAGE = 1500


def estimate_cost(
    *,
    task_id: str,
    estimated_cost: Any = None,
    units: Any = None,
    unit_cost: Any = None,
    validation_type: str | None = None,
    balance: CreditBalance | None,
    context: Any = None,
) -> tuple[Decimal, str]:
    """Work out what the job will cost, and say how.

    Exactly one of ``estimated_cost`` (a number, a numeric string, or a callable taking the context)
    or ``units`` (times ``unit_cost``, or the vendor's price for ``validation_type``) is used.

    :return: ``(cost, basis)``, the basis being a short human description
    """
    if estimated_cost is not None:
        if callable(estimated_cost):
            estimated_cost = estimated_cost(context)
        cost = to_amount(estimated_cost, "estimated_cost", task_id)
        return cost, f"estimated cost {_fmt(cost)}"
    count = to_amount(units, "units", task_id)
    price, source = unit_price(
        task_id=task_id, unit_cost=unit_cost, validation_type=validation_type, balance=balance
    )
    with exact_arithmetic():
        cost = count * price
    _check_total(cost, "units x unit_cost", task_id)
    return cost, f"{_fmt(count)} units x {_fmt(price)} credits ({source})"


def unit_price(
    *, task_id: str, unit_cost: Any, validation_type: str | None, balance: CreditBalance | None
) -> tuple[Decimal, str]:
    """Credits per unit: ``unit_cost`` when given, else the vendor's price for ``validation_type``.

    :return: ``(price, source)``, the source being ``"given"`` or the vendor's price in words
    """
    if unit_cost is not None:
        return to_amount(unit_cost, "unit_cost", task_id), "given"
    if balance is None or not validation_type:
        raise InvalidCostEstimateError(
            f"Task {task_id!r}: with units, pass unit_cost or a validation_type the vendor prices."
        )
    return balance.unit_price(validation_type).credits, f"{balance.vendor_name} price for {validation_type!r}"


def unit_plan(
    *,
    task_id: str,
    units: Any,
    unit_cost: Any,
    validation_type: str | None,
    margin: Any,
    margin_percent: Any,
    min_units: Any,
    balance: CreditBalance | None,
) -> UnitPlan:
    """The plan of a partial run from the rendered arguments.

    :raises InvalidCostEstimateError: naming the task and the argument, for an impossible value
    """
    from airflow_credits_provider.partial import UnitPlan, to_units

    count = to_units(units, "units", task_id)
    smallest = to_units(min_units, "min_units", task_id)
    if smallest < 1:
        raise InvalidCostEstimateError(f"Task {task_id!r}: min_units must be at least 1, got {min_units!r}.")
    price, source = unit_price(
        task_id=task_id, unit_cost=unit_cost, validation_type=validation_type, balance=balance
    )
    plan = UnitPlan(
        units=count,
        unit_cost=price,
        margin=to_amount(margin if margin is not None else 0, "margin", task_id),
        margin_percent=to_amount(
            margin_percent if margin_percent is not None else 0, "margin_percent", task_id
        ),
        min_units=smallest,
        source=source,
    )
    _check_total(plan.required(count), "the whole job's cost and margin", task_id)
    return plan


def margin_for(cost: Decimal, margin: Any, margin_percent: Any, task_id: str) -> Decimal:
    """Credits kept in reserve on top of ``cost``: an absolute margin plus a percentage of the cost."""
    absolute = to_amount(margin if margin is not None else 0, "margin", task_id)
    percent = to_amount(margin_percent if margin_percent is not None else 0, "margin_percent", task_id)
    with exact_arithmetic():
        total = absolute + cost * percent / Decimal(100)
    _check_total(total, "the margin", task_id)
    return total


def _check_total(amount: Decimal, what: str, task_id: str) -> None:
    """A product of bounded amounts can leave the bounds: say so instead of carrying it on."""
    problem = amount_problem(amount)
    if problem is not None:
        raise InvalidCostEstimateError(f"Task {task_id!r}: {what} comes to {_fmt(amount)}, {problem}.")


@dataclass(frozen=True)
class PreflightDecision:
    """The outcome of one preflight check, pushed to XCom (never holds a key).

    :param conn_id: the credit connection checked
    :param vendor: the vendor's key
    :param vendor_name: the vendor's display name
    :param cost: the estimated cost of the job
    :param margin: credits kept in reserve on top of the cost
    :param required: ``cost + margin``
    :param available: spendable credits at ``checked_at``
    :param shortfall: ``max(0, required - available)``
    :param passed: whether ``available >= required``
    :param basis: how the cost was estimated
    :param checked_at: when the balance was fetched
    :param balance: the normalised balance (``CreditBalance.to_dict()`` without ``raw``)
    :param message: the decision in words: what is needed and there, and, when short, what to do
    :param reserved_by_others: credits other runs' active reservations hold on the account (with
        ``reserve=True``); ``available - reserved_by_others`` is what this run may use
    :param reservation: the reservation taken when the check passed with ``reserve=True``
    :param budget: with ``budget=...``: the budget's state this period before this run
        (:meth:`BudgetState.to_dict() <airflow_credits_provider.budgets.BudgetState.to_dict>`);
        the check passes only if its ``remaining`` covers ``required`` too
    :param units: with ``on_insufficient="partial"``: the units the whole job has (``None`` otherwise)
    :param affordable_units: the units this run may process (0 when the check did not pass); ``cost``
        and ``required`` are theirs
    :param deferred_units: ``units - affordable_units``, left for a later run
    :param alerts: the titles of the credit alerts this run's reservation made due (sent by its task)
    """

    conn_id: str
    vendor: str
    vendor_name: str
    cost: Decimal
    margin: Decimal
    required: Decimal
    available: Decimal
    shortfall: Decimal
    passed: bool
    basis: str
    checked_at: str
    balance: dict[str, Any]
    message: str = ""
    reserved_by_others: Decimal = Decimal(0)
    reservation: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    units: int | None = None
    affordable_units: int | None = None
    deferred_units: int | None = None
    alerts: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        """The check passed for only part of the job's units."""
        return self.passed and bool(self.deferred_units)

    @property
    def budget_short(self) -> bool:
        """The budget (not the account) is what does not cover the run."""
        return self.budget is not None and Decimal(self.budget["remaining"]) < self.required

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict for XCom: exact decimal strings; the balance without the vendor's payload."""
        return {
            "conn_id": self.conn_id,
            "vendor": self.vendor,
            "vendor_name": self.vendor_name,
            "cost": _exact(self.cost),
            "margin": _exact(self.margin),
            "required": _exact(self.required),
            "available": _exact(self.available),
            "shortfall": _exact(self.shortfall),
            "passed": self.passed,
            "basis": self.basis,
            "checked_at": self.checked_at,
            "balance": self.balance,
            "message": self.message,
            "reserved_by_others": _exact(self.reserved_by_others),
            "reservation": self.reservation,
            "budget": self.budget,
            "units": self.units,
            "affordable_units": self.affordable_units,
            "alerts": list(self.alerts),
            "deferred_units": self.deferred_units,
        }


def decide(
    conn_id: str,
    balance: CreditBalance,
    cost: Decimal,
    margin: Decimal,
    basis: str,
    *,
    waiting: bool = False,
    reserved_by_others: Decimal = Decimal(0),
    other_reservations: int = 0,
    budget: dict[str, Any] | None = None,
) -> PreflightDecision:
    """Compare the balance with ``cost + margin``, exactly; exactly enough passes (``>=``).

    :param waiting: the decision is a sensor's, whose messages do not suggest waiting with a sensor
    :param reserved_by_others: credits held by other runs' reservations, not usable by this one
    :param other_reservations: how many reservations hold them (for the message)
    :param budget: the named budget's state this period (``BudgetState.to_dict()``): it must cover
        ``cost + margin`` too
    """
    with exact_arithmetic():
        required = cost + margin
        free = balance.available - reserved_by_others
        shortfall = max(Decimal(0), required - free)
    decision = PreflightDecision(
        conn_id=conn_id,
        vendor=balance.vendor,
        vendor_name=balance.vendor_name,
        cost=cost,
        margin=margin,
        required=required,
        available=balance.available,
        shortfall=shortfall,
        passed=free >= required and (budget is None or Decimal(budget["remaining"]) >= required),
        basis=basis,
        checked_at=balance.fetched_at.isoformat(),
        balance=balance.to_dict(),
        reserved_by_others=reserved_by_others,
        budget=budget,
    )
    held = ""
    if other_reservations or reserved_by_others:
        # "reservations", not "runs": a mapped task's other shards are reservations of the same run
        holds = "reservation" if other_reservations == 1 else "reservations"
        held = (
            f" ({_fmt(reserved_by_others)} of it held by {other_reservations} other {holds}, "
            f"{_fmt(free)} free)"
        )
    budget_text = _budget_text(budget, required)
    if decision.passed:
        margin_text = f" + margin {_fmt(margin)}" if margin else ""
        message = (
            f"Enough {balance.vendor_name} credits on connection {conn_id!r}: need {_fmt(required)} "
            f"({basis}{margin_text}), available {_fmt(balance.available)}{held}."
        )
        if budget_text:
            message += f" Within the budget: {budget_text}."
    elif free >= required:  # only the budget is short
        message = budget_shortfall_message(decision, budget_text, free, waiting=waiting)
    else:
        message = shortfall_message(decision, balance, waiting=waiting, held=held)
        if budget_text:
            message = truncate(f"{message} Also, {budget_text}.", MAX_MESSAGE)
    return dataclasses.replace(decision, message=message)


def decide_partial(
    conn_id: str,
    balance: CreditBalance,
    plan: UnitPlan,
    *,
    waiting: bool = False,
    reserved_by_others: Decimal = Decimal(0),
    other_reservations: int = 0,
    budget: dict[str, Any] | None = None,
) -> PreflightDecision:
    """Size a per-unit job to the room there is: all of it, the most units that fit, or nothing.

    The room is the balance minus other runs' reservations and, with a budget, at most the budget's
    remaining credits. The run passes with the most units whose cost plus margin fits it, when that
    is the whole job or at least ``plan.min_units``; the decision's ``cost`` and ``required`` are then
    that run's. Below the smallest run it does not pass, and is judged (and its shortfall given) as the
    smallest run.
    """
    with exact_arithmetic():
        room = balance.available - reserved_by_others
        if budget is not None:
            room = min(room, Decimal(budget["remaining"]))
    k = plan.run_size(room)
    judged = k if k else plan.smallest_run
    decision = decide(
        conn_id,
        balance,
        plan.cost(judged),
        plan.margin_for(judged),
        plan.basis(judged),
        waiting=waiting,
        reserved_by_others=reserved_by_others,
        other_reservations=other_reservations,
        budget=budget,
    )
    if k and not decision.passed:  # cannot happen: the same exact arithmetic
        raise RuntimeError(f"Partial sizing and decision disagree on connection {conn_id!r}.")
    ran = k if decision.passed else 0
    decision = dataclasses.replace(
        decision, units=plan.units, affordable_units=ran, deferred_units=plan.units - ran
    )
    units = f"{grouped_amount(Decimal(plan.units))} units"
    if decision.partial:
        message = (
            f"Partial run: the credits cover {grouped_amount(Decimal(ran))} of {units}; "
            f"{grouped_amount(Decimal(plan.units - ran))} deferred to a later run. {decision.message}"
        )
    elif not decision.passed and plan.units:
        covered = f"The credits cover {grouped_amount(Decimal(plan.affordable(room)))} of {units}"
        minimum = grouped_amount(Decimal(plan.min_units))
        if plan.units < plan.min_units:
            why = f"a job smaller than min_units ({minimum}) runs only whole"
        else:
            why = f"fewer than min_units ({minimum}), the smallest run worth starting"
        message = f"{covered}, {why}. {decision.message}"
    else:
        return decision
    return dataclasses.replace(decision, message=truncate(message, MAX_MESSAGE))


def _budget_text(budget: dict[str, Any] | None, required: Decimal) -> str:
    if budget is None:
        return ""
    from airflow_credits_provider.budgets import BudgetState

    return BudgetState.from_dict(budget).message(required)


def budget_shortfall_message(
    decision: PreflightDecision, budget_text: str, free: Decimal, *, waiting: bool = False
) -> str:
    """Explain a run refused by its budget while the account itself has the credits."""
    assert decision.budget is not None
    name = decision.budget["name"]
    # "exhausted" only when nothing is left: a budget with some credits left is too small for this run
    left = Decimal(str(decision.budget.get("remaining", 0)))
    verdict = "Credit budget exhausted" if left <= 0 else "Credit budget too small for this run"
    parts = [
        f"{verdict}: {budget_text}.",
        f"The account itself has {grouped_amount(free)} credits free (connection {decision.conn_id!r}).",
    ]
    raise_cap = f"Raise the budget's cap (`airflow-credits budgets set {name} --cap ...`)"
    if waiting:
        parts.append(f"{raise_cap} or lower the job's size.")
    else:
        parts.append(
            f"{raise_cap}, lower the job's size, or wait for its renewal with CreditPreflightSensor."
        )
    return truncate(" ".join(parts), MAX_MESSAGE)


def shortfall_message(
    decision: PreflightDecision, balance: CreditBalance, *, waiting: bool = False, held: str = ""
) -> str:
    """Explain a failed check: what is needed, what is there, how short, and what locks and resets mean.

    :param waiting: the message is for a sensor, which waits by itself (so it does not suggest one)
    :param held: what other runs' reservations hold, in words (with ``reserve=True``)
    """
    parts = [
        f"Not enough {balance.vendor_name} credits on connection {decision.conn_id!r}: "
        f"need {_fmt(decision.required)} ({decision.basis}"
        + (f" + margin {_fmt(decision.margin)}" if decision.margin else "")
        + f"), available {_fmt(decision.available)}{held}, short by {_fmt(decision.shortfall)}."
    ]
    if balance.locked:
        reason = f" ({balance.locked_reason})" if balance.locked_reason else ""
        parts.append(
            f"{_fmt(balance.locked)} more credits are locked{reason} and not spendable until released."
        )
    if balance.next_reset_at is not None:
        after = balance_after_reset(balance)
        renewal = ""
        if after is not None:
            covers = "enough" if after >= decision.required else "still not enough"
            renewal = f" to {_fmt(after)} credits, {covers} for this job"
        parts.append(f"Credits renew at {balance.next_reset_at.isoformat()}{renewal}.")
    if held:
        parts.append("Reserved credits come back when their runs release them or their reservations expire.")
    if waiting:
        parts.append("Top up the account or lower the job's size.")
    else:
        parts.append("Top up the account, lower the job's size, or wait with CreditPreflightSensor.")
    return truncate(" ".join(parts), MAX_MESSAGE)


def balance_after_reset(balance: CreditBalance) -> Decimal | None:
    """Spendable credits right after the next renewal, when the vendor's figures allow knowing it.

    LocalLeads: monthly credits come back and bonus credits carry forward (used goes to zero).
    Other vendors do not report the renewal amount: ``None``.
    """
    if balance.monthly is not None and balance.bonus is not None:
        with exact_arithmetic():
            return balance.monthly + balance.bonus
    return None


def is_fatal(exc: BaseException) -> bool:
    """Whether waiting cannot help: a bad key or plan, a wrong URL or certificate, a broken connection."""
    return isinstance(
        exc,
        (
            AuthenticationError,
            PermissionDeniedError,
            NotFoundError,
            InvalidRequestError,
            UntrustedCertificateError,
            CreditConnectionConfigError,
        ),
    )


def check_thresholds(
    balance: CreditBalance,
    *,
    warn_below: Any,
    critical_below: Any,
    task_id: str,
    log: Any,
    callback: Callable[..., Any] | None = None,
    context: Any = None,
) -> str | None:
    """Log a warning when the balance is below ``warn_below`` / ``critical_below`` and call ``callback``.

    :return: ``"critical"``, ``"warning"`` or ``None``
    """
    level = None
    if critical_below is not None and balance.available < to_amount(
        critical_below, "critical_below", task_id
    ):
        level = "critical"
        threshold = critical_below
    elif warn_below is not None and balance.available < to_amount(warn_below, "warn_below", task_id):
        level = "warning"
        threshold = warn_below
    if level is None:
        return None
    log.warning(
        "%s credits are %s: %s available, below the %s threshold of %s",
        balance.vendor_name,
        "critically low" if level == "critical" else "low",
        _fmt(balance.available),
        level,
        threshold,
    )
    if callback is not None:
        callback(level=level, balance=balance, context=context)
    return level


def _fmt(value: Decimal) -> str:
    """For messages: compact (scientific notation when long)."""
    return format_amount(value)


def _exact(value: Decimal) -> str:
    """For XCom: every digit, no exponent (amounts are bounded, so this is at most about 80 characters)."""
    with exact_arithmetic():
        return f"{value.normalize():f}"
