"""CreditPreflightOperator: fail or skip a DAG before it spends credits it does not have."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_credits_provider.preflight_task import (
    PREFLIGHT_TEMPLATE_FIELDS,
    CreditPreflightFailed,
    PreflightArgs,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["CreditPreflightFailed", "CreditPreflightOperator"]


class CreditPreflightOperator(PreflightArgs, BaseOperator):
    """Check once that a credit connection covers a job's cost plus a margin, then pass, fail or skip.

    The balance is fetched once. When ``available >= cost + margin`` the task succeeds and returns the
    decision record. Otherwise, with ``on_insufficient="fail"`` (default) it raises
    :class:`CreditPreflightFailed`, which fails the task without retries, with a message giving the
    connection, vendor, credits needed and available, the shortfall, and what locked credits or the
    next renewal mean; with ``"skip"`` it skips itself and, through the default trigger rules, its
    downstream tasks. The decision is pushed to XCom under ``credit_preflight`` either way.

    :param credit_conn_id: the credit connection to check (any vendor) (templated)
    :param estimated_cost: credits the job will spend: a number, a numeric string (e.g. rendered from
        XCom), or a callable taking the context (templated)
    :param units: instead of ``estimated_cost``: how many units the job processes (templated)
    :param unit_cost: credits per unit; without it, the vendor's own price for ``validation_type``
        (templated)
    :param validation_type: the vendor service whose price applies, e.g. TrueMail ``"smtp"`` (templated)
    :param margin: credits kept in reserve on top of the cost (templated)
    :param margin_percent: percent of the cost kept in reserve on top of it (templated)
    :param on_insufficient: ``"fail"`` or ``"skip"``
    :param warn_below: log a warning (and call ``on_low_balance``) when available credits are below it
    :param critical_below: as ``warn_below``, at the critical level
    :param on_low_balance: called as ``on_low_balance(level=..., balance=..., context=...)``
    """

    template_fields = PREFLIGHT_TEMPLATE_FIELDS
    ui_color = "#fdf1d6"

    def __init__(self, *, on_insufficient: str = "fail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if on_insufficient not in ("fail", "skip"):
            raise ValueError(f"on_insufficient must be 'fail' or 'skip', got {on_insufficient!r}")
        self.on_insufficient = on_insufficient

    def execute(self, context: Context) -> dict[str, Any]:
        """Fetch the balance once and decide."""
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_credits_provider.preflight import shortfall_message

        balance = self._fetch_balance()
        decision = self._decide(context, balance)
        if decision.passed:
            return decision.to_dict()
        message = shortfall_message(decision, balance)
        if self.on_insufficient == "skip":
            raise AirflowSkipException(message)
        raise CreditPreflightFailed(message)
