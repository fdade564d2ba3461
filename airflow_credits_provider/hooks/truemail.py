"""TrueMail hook: balance and per-validation-type prices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_credits_provider.hooks.base import CreditApiHook
from airflow_credits_provider.vendors.truemail import TrueMailVendor

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_credits_provider.models import CreditBalance, UnitPrice


class TrueMailHook(CreditApiHook):
    """Talk to TrueMail's API with the key from an Airflow connection of type ``truemail``.

    Besides :meth:`get_balance`, it reports what each validation type costs and whether the plan may
    run it (:meth:`get_validation_types`, :meth:`get_unit_price`).

    :param credit_conn_id: the Airflow connection id (default ``truemail_default``)
    """

    vendor_class = TrueMailVendor

    def get_validation_types(self) -> Mapping[str, UnitPrice]:
        """Return every validation type with its per-email credits and availability."""
        return self.get_balance().unit_prices

    def get_unit_price(self, validation_type: str, balance: CreditBalance | None = None) -> UnitPrice:
        """Return the price of one validation of ``validation_type``, if the plan can run it.

        :param validation_type: e.g. ``"mx"`` or ``"smtp"``
        :param balance: a balance already fetched, to avoid a second call
        :raises ValidationTypeUnavailableError: the plan cannot run it (with TrueMail's upgrade text)
        :raises UnknownValidationTypeError: TrueMail reports no such type
        """
        return (balance or self.get_balance()).unit_price(validation_type)
