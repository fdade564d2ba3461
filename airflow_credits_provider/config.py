"""The ``[credits]`` section of Airflow's configuration, as the pages, the CLI and the checker read it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class CreditsSettings:
    """What the Credits pages read from ``[credits]``: each field an option, its default the option's."""

    warehouse_conn_id: str = ""
    warehouse_schema: str = ""
    snapshots_table: str = "credit_balance_snapshots"
    transactions_table: str = "credit_transactions"
    reservations_conn_id: str = ""
    reservations_schema: str = ""
    reservations_table: str = "credit_reservations"
    usage_table: str = "credit_usage"
    balance_cache_seconds: float = 60.0
    balance_timeout: float = 10.0
    runway_window_days: float = 14.0

    @classmethod
    def from_airflow(cls) -> CreditsSettings:
        """Read ``[credits]`` (environment ``AIRFLOW__CREDITS__*`` included), defaults where unset.

        :raises ValueError: a numeric option is not a positive number (the message names it)
        """
        from airflow.configuration import conf

        values: dict[str, object] = {}
        for name, (default, _) in OPTIONS.items():
            raw = (conf.get("credits", name, fallback=default) or "").strip()
            values[name] = _positive(name, raw or default) if name in _NUMBERS else raw
        return cls(**values)  # type: ignore[arg-type]


_DESCRIPTIONS = {
    "warehouse_conn_id": "SQL connection (any common-sql database) that CreditBalanceToSqlOperator and "
    "CreditTransactionsToSqlOperator land into. Without it the Credits page shows live balances only.",
    "warehouse_schema": "Schema of the landed tables (empty: the connection's default).",
    "snapshots_table": "Table of landed balance snapshots.",
    "transactions_table": "Table of landed credit transactions.",
    "reservations_conn_id": "SQL connection of the credit reservation tables (the reservation_conn_id of "
    "your preflights). Without it the Credits page shows no holds and no spend per DAG.",
    "reservations_schema": "Schema of the reservation tables (empty: the connection's default).",
    "reservations_table": "Table of credit reservations.",
    "usage_table": "Table of released reservations and what they spent.",
    "balance_cache_seconds": "How long the Credits page reuses a connection's live balance before asking "
    "the vendor again (per api-server worker; 0: on every load).",
    "balance_timeout": "Seconds the Credits page waits for one vendor's balance (retries included) before "
    "showing the row as failed.",
    "runway_window_days": "Days of snapshot history the page's runway forecast uses.",
}
_NUMBERS = {f.name for f in dataclasses.fields(CreditsSettings) if f.type == "float"}

#: Option name -> (default as text, description): the provider info's ``config`` section is built from it.
OPTIONS: dict[str, tuple[str, str]] = {
    f.name: (f"{f.default:g}" if f.name in _NUMBERS else str(f.default), _DESCRIPTIONS[f.name])
    for f in dataclasses.fields(CreditsSettings)
}


def _positive(name: str, raw: str) -> float:
    try:
        number = float(raw)
    except ValueError:
        number = float("nan")
    if not 0 <= number < float("inf") or (number == 0 and name != "balance_cache_seconds"):
        raise ValueError(f"[credits] {name} must be a positive number of seconds or days, got {raw!r}.")
    return number
