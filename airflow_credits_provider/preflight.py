"""The preflight decision, shared by the operator, the sensor and the trigger.

Turns a cost estimate (a number, a rendered template, a callable, or units x a unit price) plus a
margin into the credits a job needs, compares it with a :class:`CreditBalance`, and explains a
shortfall in words a DAG author can act on. Pure functions: no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from airflow_credits_provider.errors import (
    AuthenticationError,
    CreditConnectionConfigError,
    CreditProviderError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from airflow_credits_provider.vendors import display_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_credits_provider.models import CreditBalance

#: What happens when the balance is too low.
ON_INSUFFICIENT = ("fail", "skip")


class InvalidCostEstimateError(CreditProviderError, ValueError):
    """A cost, unit count, unit cost or margin is negative, NaN, infinite, non-numeric or missing."""


def to_amount(value: Any, what: str, task_id: str | None = None) -> Decimal:
    """Parse a non-negative, finite amount given as a number or numeric string.

    :param what: the argument's name, for the message (``"estimated_cost"``)
    :raises InvalidCostEstimateError: naming the task, the argument and the value
    """
    where = f"Task {task_id!r}: " if task_id else ""
    if value is None or isinstance(value, bool):
        raise InvalidCostEstimateError(f"{where}{what} must be a number of credits, got {value!r}.")
    # repr() for floats: Decimal(0.1) would carry the float's binary error.
    text = repr(value) if isinstance(value, float) else value
    try:
        amount = Decimal(text.strip() if isinstance(text, str) else text)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidCostEstimateError(
            f"{where}{what} must be a number of credits, got {str(value)[:80]!r}."
        ) from None
    if not amount.is_finite():
        raise InvalidCostEstimateError(f"{where}{what} must be a finite number, got {value!r}.")
    if amount < 0:
        raise InvalidCostEstimateError(f"{where}{what} must not be negative, got {value!r}.")
    return amount


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
    if unit_cost is not None:
        price = to_amount(unit_cost, "unit_cost", task_id)
        source = "given"
    else:
        from airflow_credits_provider.vendors.truemail import unit_price

        if balance is None or not validation_type:
            raise InvalidCostEstimateError(
                f"Task {task_id!r}: with units, pass unit_cost or a validation_type the vendor prices."
            )
        price = unit_price(balance, validation_type).credits
        source = f"{balance.vendor} price for {validation_type!r}"
    cost = count * price
    return cost, f"{_fmt(count)} units x {_fmt(price)} credits ({source})"


def margin_for(cost: Decimal, margin: Any, margin_percent: Any, task_id: str) -> Decimal:
    """Credits kept in reserve on top of ``cost``: an absolute margin plus a percentage of the cost."""
    absolute = to_amount(margin if margin is not None else 0, "margin", task_id)
    percent = to_amount(margin_percent if margin_percent is not None else 0, "margin_percent", task_id)
    return absolute + cost * percent / Decimal(100)


@dataclass(frozen=True)
class PreflightDecision:
    """The outcome of one preflight check, pushed to XCom (never holds a key).

    :param conn_id: the credit connection checked
    :param vendor: the vendor's key
    :param cost: the estimated cost of the job
    :param margin: credits kept in reserve on top of the cost
    :param required: ``cost + margin``
    :param available: spendable credits at ``checked_at``
    :param shortfall: ``max(0, required - available)``
    :param passed: whether ``available >= required``
    :param basis: how the cost was estimated
    :param checked_at: when the balance was fetched
    :param balance: the normalised balance (``CreditBalance.to_dict()`` without ``raw``)
    """

    conn_id: str
    vendor: str
    cost: Decimal
    margin: Decimal
    required: Decimal
    available: Decimal
    shortfall: Decimal
    passed: bool
    basis: str
    checked_at: str
    balance: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (decimals as strings) for XCom."""
        return {
            "conn_id": self.conn_id,
            "vendor": self.vendor,
            "cost": _fmt(self.cost),
            "margin": _fmt(self.margin),
            "required": _fmt(self.required),
            "available": _fmt(self.available),
            "shortfall": _fmt(self.shortfall),
            "passed": self.passed,
            "basis": self.basis,
            "checked_at": self.checked_at,
            "balance": self.balance,
        }


def decide(
    conn_id: str, balance: CreditBalance, cost: Decimal, margin: Decimal, basis: str
) -> PreflightDecision:
    """Compare the balance with ``cost + margin``; exactly enough passes (``>=``)."""
    required = cost + margin
    snapshot = balance.to_dict()
    snapshot.pop("raw", None)
    return PreflightDecision(
        conn_id=conn_id,
        vendor=balance.vendor,
        cost=cost,
        margin=margin,
        required=required,
        available=balance.available,
        shortfall=max(Decimal(0), required - balance.available),
        passed=balance.available >= required,
        basis=basis,
        checked_at=balance.fetched_at.isoformat(),
        balance=snapshot,
    )


def shortfall_message(decision: PreflightDecision, balance: CreditBalance) -> str:
    """Explain a failed check: what is needed, what is there, how short, and what locks and resets mean."""
    parts = [
        f"Not enough {display_name(balance.vendor)} credits on connection {decision.conn_id!r}: "
        f"need {_fmt(decision.required)} ({decision.basis}"
        + (f" + margin {_fmt(decision.margin)}" if decision.margin else "")
        + f"), available {_fmt(decision.available)}, short by {_fmt(decision.shortfall)}."
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
    parts.append("Top up the account, lower the job's size, or wait with CreditPreflightSensor.")
    return " ".join(parts)


def balance_after_reset(balance: CreditBalance) -> Decimal | None:
    """Spendable credits right after the next renewal, when the vendor's figures allow knowing it.

    LocalLeads: monthly credits come back and bonus credits carry forward (used goes to zero).
    Other vendors do not report the renewal amount: ``None``.
    """
    if balance.monthly is not None and balance.bonus is not None:
        return balance.monthly + balance.bonus
    return None


def is_fatal(exc: BaseException) -> bool:
    """Whether waiting cannot help: a bad key, a denied plan, a wrong URL or a broken connection."""
    return isinstance(
        exc,
        (
            AuthenticationError,
            PermissionDeniedError,
            NotFoundError,
            InvalidRequestError,
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
        display_name(balance.vendor),
        "critically low" if level == "critical" else "low",
        _fmt(balance.available),
        level,
        threshold,
    )
    if callback is not None:
        callback(level=level, balance=balance, context=context)
    return level


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"
