"""Partial runs: how many units of a job the free credits cover. Pure arithmetic, no I/O.

A job of ``units`` units at ``unit_cost`` credits each needs, for ``k`` of them,
``k x unit_cost`` credits plus the margin (an absolute ``margin`` plus ``margin_percent`` of that cost).
:meth:`UnitPlan.affordable` finds the largest ``k`` whose need fits the *room* (the account's free
credits after other runs' reservations and, with a budget, the budget's remaining credits, whichever
is less). Every comparison is exact (:func:`~airflow_credits_provider.parsing.exact_arithmetic`): a
balance of exactly ``k`` units' need covers ``k`` units, one credit-millionth less covers ``k - 1``.

A run smaller than ``min_units`` is not worth starting; a job that fits whole always runs, however
small (``units < min_units`` included).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Context, Decimal, localcontext
from typing import Any

from airflow_credits_provider.errors import InvalidCostEstimateError
from airflow_credits_provider.parsing import decimal_text, exact_arithmetic, format_amount, to_amount

_HUNDRED = Decimal(100)


def to_units(value: Any, what: str, task_id: str | None = None) -> int:
    """A whole, non-negative number of units (``50000``, ``"50000"``, ``50000.0``).

    :raises InvalidCostEstimateError: naming the task, the argument and the value
    """
    amount = to_amount(value, what, task_id)
    if amount != amount.to_integral_value():
        where = f"Task {task_id!r}: " if task_id else ""
        raise InvalidCostEstimateError(
            f"{where}{what} must be a whole number of units for a partial run, got {format_amount(amount)}."
        )
    return int(amount)


@dataclass(frozen=True)
class UnitPlan:
    """A job priced per unit, sized to the credits there are.

    :param units: the units the whole job has
    :param unit_cost: credits per unit
    :param margin: credits kept in reserve on top of any run's cost
    :param margin_percent: percent of a run's cost kept in reserve on top of it
    :param min_units: the smallest partial run worth starting (at least 1)
    :param source: where the unit price came from (``"given"``, ``"TrueMail price for 'smtp'"``)
    """

    units: int
    unit_cost: Decimal
    margin: Decimal = Decimal(0)
    margin_percent: Decimal = Decimal(0)
    min_units: int = 1
    source: str = "given"

    def cost(self, k: int) -> Decimal:
        """Credits ``k`` units cost."""
        with exact_arithmetic():
            return self.unit_cost * k

    def margin_for(self, k: int) -> Decimal:
        """The margin kept on top of ``k`` units' cost."""
        with exact_arithmetic():
            return self.margin + self.cost(k) * self.margin_percent / _HUNDRED

    def required(self, k: int) -> Decimal:
        """``cost(k) + margin_for(k)``: what a run of ``k`` units needs free."""
        with exact_arithmetic():
            return self.cost(k) + self.margin_for(k)

    @property
    def smallest_run(self) -> int:
        """Units in the smallest run the gate starts: ``min_units``, or the whole job when smaller."""
        return min(self.min_units, self.units)

    def affordable(self, room: Decimal) -> int:
        """The most units, up to :attr:`units`, whose :meth:`required` is at most ``room`` (0: none)."""
        if self.required(0) > room:
            return 0
        with exact_arithmetic():
            per_unit = self.unit_cost + self.unit_cost * self.margin_percent / _HUNDRED
        if per_unit == 0:
            return self.units
        # A first guess in a rounding context (the caller's may trap inexact results), then exact steps.
        with localcontext(Context(prec=40)):
            guess = ((room - self.margin) / per_unit).to_integral_value(ROUND_FLOOR)
        k = int(max(Decimal(0), min(guess, Decimal(self.units))))
        while k < self.units and self.required(k + 1) <= room:
            k += 1
        while k > 0 and self.required(k) > room:
            k -= 1
        return k

    def run_size(self, room: Decimal) -> int:
        """Units to run within ``room``: the whole job, the most affordable, or 0 below the smallest run."""
        k = self.affordable(room)
        return k if k >= self.smallest_run else 0

    def amount_within(self, room: Decimal) -> Decimal:
        """Credits to reserve within ``room``: the largest run's need.

        When not even the smallest run fits, the smallest run's need (more than ``room``: nothing is
        reserved).
        """
        k = self.run_size(room)
        return self.required(k if k else self.smallest_run)

    def basis(self, k: int) -> str:
        """``12,000 units x 0.5 credits (given)``: how a run of ``k`` units was priced."""
        return f"{format_amount(Decimal(k))} units x {format_amount(self.unit_cost)} credits ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly (trigger kwargs and events); exact decimal strings."""
        return {
            "units": self.units,
            "unit_cost": decimal_text(self.unit_cost),
            "margin": decimal_text(self.margin),
            "margin_percent": decimal_text(self.margin_percent),
            "min_units": self.min_units,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitPlan:
        """The inverse of :meth:`to_dict`."""
        return cls(
            units=int(data["units"]),
            unit_cost=Decimal(data["unit_cost"]),
            margin=Decimal(data["margin"]),
            margin_percent=Decimal(data["margin_percent"]),
            min_units=int(data["min_units"]),
            source=str(data.get("source", "given")),
        )
