"""What the preflight operator and sensor share: their arguments, one check, and how it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_credits_provider.errors import CreditProviderError, ValidationTypeUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable
    from decimal import Decimal

    from airflow.sdk import Context

    from airflow_credits_provider.models import CreditBalance
    from airflow_credits_provider.preflight import PreflightDecision

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
)


class CreditPreflightFailed(AirflowFailException):
    """The balance does not cover the job (or never can): fails the task at once, without retries."""


class PreflightArgs:
    """Mixin holding the preflight arguments shared by the operator and the sensor.

    The arguments are documented on
    :class:`~airflow_credits_provider.operators.preflight.CreditPreflightOperator`.
    """

    credit_conn_id: str
    task_id: str
    log: Any

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # the operator's or sensor's own base class
        if (estimated_cost is None) == (units is None):
            raise ValueError(f"Task {self.task_id!r}: pass exactly one of estimated_cost or units.")
        if units is not None and unit_cost is None and validation_type is None:
            raise ValueError(f"Task {self.task_id!r}: with units, pass unit_cost or validation_type.")
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

    def _decide(self, context: Context, balance: CreditBalance) -> PreflightDecision:
        """Estimate the cost from the rendered arguments and compare it with ``balance``."""
        from airflow_credits_provider.preflight import check_thresholds, decide

        check_thresholds(
            balance,
            warn_below=self.warn_below,
            critical_below=self.critical_below,
            task_id=self.task_id,
            log=self.log,
            callback=self.on_low_balance,
            context=context,
        )
        cost, margin, basis = self._estimate(context, balance)
        decision = decide(self.credit_conn_id, balance, cost, margin, basis)
        self.log.info(
            "Credit preflight on %s: need %s (%s, margin %s), available %s -> %s",
            self.credit_conn_id,
            decision.required,
            basis,
            margin,
            decision.available,
            "enough" if decision.passed else f"short by {decision.shortfall}",
        )
        context["ti"].xcom_push(key=XCOM_KEY, value=decision.to_dict())
        return decision

    def _estimate(self, context: Context, balance: CreditBalance | None) -> tuple[Decimal, Decimal, str]:
        """Return ``(cost, margin, basis)`` from the rendered arguments.

        ``balance`` is needed only for a vendor-reported unit price. Impossible estimates and
        validation types the plan cannot run raise :class:`CreditPreflightFailed` (no retries).
        """
        from airflow_credits_provider.preflight import InvalidCostEstimateError, estimate_cost, margin_for

        try:
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
        except (InvalidCostEstimateError, ValidationTypeUnavailableError) as exc:
            raise CreditPreflightFailed(str(exc)) from None
        except CreditProviderError as exc:  # an unknown validation type
            raise CreditPreflightFailed(f"Task {self.task_id!r}: {exc}") from None

    def _fetch_balance(self) -> CreditBalance:
        """Fetch the balance; errors that waiting cannot fix fail the task at once."""
        from airflow_credits_provider.hooks.resolve import get_credit_hook
        from airflow_credits_provider.preflight import is_fatal

        try:
            return get_credit_hook(self.credit_conn_id).get_balance()
        except CreditProviderError as exc:
            if is_fatal(exc):
                raise CreditPreflightFailed(str(exc)) from None
            raise
