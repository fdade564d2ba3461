"""Every import that depends on the Airflow version, in one place (Airflow 3.0 to 3.3).

Airflow moved its authoring API into ``airflow.sdk`` over 3.0-3.2 (``BaseHook``, ``conf`` and the
exceptions arrived there in 3.1 and 3.2). Most names come from Airflow's own public fallback,
``airflow.providers.common.compat.sdk`` (the common-compat provider, a dependency of common-sql),
which tries the ``airflow.sdk`` path first and falls back to the older one. What it does not cover is
written here, each with the Airflow version that makes the fallback unnecessary, so that it can be
deleted when that version becomes the minimum. No other module of this package looks at Airflow's
version or imports a version-dependent path.

This is the one Airflow-facing module at the package root: it is imported only by the role packages
(hooks, operators, sensors, triggers, transfers) and the CLI, never by the Airflow-free core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    AirflowSkipException,
    Asset,
    BaseHook,
    BaseOperator,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

try:  # recent common-compat (1.23 has it, 1.15 not; needs Python 3.11+): drop the fallback then
    from airflow.providers.common.compat.sdk import mask_secret
except ImportError:  # older common-compat: Airflow 3.1+ has it in airflow.sdk.log, 3.0 one level down
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]

try:  # Airflow 3.2+; delete the fallback when 3.2 is the minimum
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 3.0, 3.1
    from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef]

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context as Context
    from pendulum import DateTime

__all__ = [
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "PokeReturnValue",
    "amask_secret",
    "first_reschedule_date",
    "conf",
    "get_async_connection",
    "mask_secret",
]


async def get_async_connection(conn_id: str) -> Any:
    """Read a connection without blocking the event loop: common-compat's fallback.

    ``BaseHook.aget_connection`` arrived in 3.1 and could deadlock on the supervisor before 3.3.2;
    there the synchronous look-up runs in a worker thread.
    """
    from airflow.providers.common.compat.connection import get_async_connection as compat_get

    return await compat_get(conn_id)


def first_reschedule_date(context: Any) -> DateTime | None:
    """When a rescheduled sensor first started (``None`` on its first try), as a UTC ``DateTime``."""
    import pendulum

    first = context["ti"].get_first_reschedule_date(context)
    if first is None:
        return None
    if isinstance(first, str):  # Airflow 3.0 returns the ISO text; delete when 3.1 is the minimum
        parsed = pendulum.parse(first)
        assert isinstance(parsed, pendulum.DateTime)
        return parsed.in_timezone("UTC")
    moment: DateTime = pendulum.instance(first).in_timezone("UTC")
    return moment


async def amask_secret(secret: str) -> None:
    """Register ``secret`` with Airflow's masker without blocking the event loop (for triggers)."""
    try:  # Airflow 3.3+; delete the fallback when 3.3 is the minimum
        from airflow.sdk.log import amask_secret as airflow_amask_secret
    except ImportError:  # Airflow 3.0-3.2: the synchronous call, in a worker thread
        from asgiref.sync import sync_to_async

        await sync_to_async(mask_secret)(secret)
        return
    await airflow_amask_secret(secret)
