"""Balance snapshots landed in bulk, as CreditBalanceToSqlOperator lands them one at a time.

The sandbox's synthetic history (``airflow-credits sandbox --history-days``) and the tests' seeded
histories land through here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decimal import Decimal


def land_snapshots(
    hook: Any, table: str, vendor: str, account: str, history: list[tuple[datetime, Decimal]]
) -> None:
    """Land ``history`` of ``account`` into ``table`` (created if missing) as the operator does."""
    from airflow_credits_provider.sql.landing import LandingTarget
    from airflow_credits_provider.sql.tables import to_naive_utc

    target = LandingTarget.snapshots(hook, table, None)
    target.create()
    loaded = to_naive_utc(datetime.now(timezone.utc))
    target.data.upsert(
        [
            (vendor, account, to_naive_utc(at), available, *[None] * 8, loaded, "{}")
            for at, available in history
        ]
    )


def has_snapshots(hook: Any, table: str, account: str) -> bool:
    """Whether ``table`` already holds snapshots of ``account`` (``False`` when it does not exist)."""
    from airflow_credits_provider.sql.landing import LandingTarget

    target = LandingTarget.snapshots(hook, table, None)
    try:
        found = hook.get_first(
            f"SELECT COUNT(*) FROM {target.data.qualified} WHERE account = {target.data.param()}",
            parameters=(account,),
        )
    except Exception:  # no table yet
        return False
    return bool(found and found[0])
