"""Who may see what on the Credits pages: Airflow's auth manager decides, on every request.

Plugin routes are not protected by Airflow: each route here depends on :func:`current_user` (a valid
token, as a Bearer header or the UI's ``_token`` cookie; anonymous requests get 401), and every piece
of data is filtered before it leaves: balances and connection rows by the user's read access to that
connection, reservations, usage and runs by read access to their DAG.

The auth manager is taken from ``airflow.api_fastapi.app.get_auth_manager()``, not from the request's
app state, which a mounted plugin app does not carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


def current_user_dependency() -> Any:
    """Airflow's own user dependency (``GetUserDep``): 401 without a valid token."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def _auth_manager() -> Any:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


def may_read_connection(user: Any, conn_id: str) -> bool:
    """Whether ``user`` may read the connection ``conn_id``."""
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails

    return bool(
        _auth_manager().is_authorized_connection(
            method="GET", details=ConnectionDetails(conn_id=conn_id), user=user
        )
    )


def readable_connections(user: Any, conn_ids: Iterable[str]) -> set[str]:
    """The ids among ``conn_ids`` that ``user`` may read."""
    return {conn_id for conn_id in conn_ids if may_read_connection(user, conn_id)}


def may_read_dag(user: Any, dag_id: str) -> bool:
    """Whether ``user`` may read the DAG ``dag_id`` (its runs, task instances and XCom)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return bool(_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user))


class ReadableDags:
    """Whether ``user`` may read a DAG, asked once per DAG id (a page names a handful).

    Asked per id (``is_authorized_dag``) rather than listed (``get_authorized_dag_ids``, which lists only
    DAGs the metadata database holds): reservations can outlive a DAG's file, and Airflow 3.0's
    ``dag.test()`` never writes its DAG there.
    """

    def __init__(self, user: Any) -> None:
        self.user = user
        self._seen: dict[str, bool] = {}

    def __contains__(self, dag_id: object) -> bool:
        if not isinstance(dag_id, str):
            return False
        if dag_id not in self._seen:
            self._seen[dag_id] = may_read_dag(self.user, dag_id)
        return self._seen[dag_id]


def user_name(user: Any) -> str:
    """The user's name for the page header."""
    getter = getattr(user, "get_name", None)
    return str(getter() if callable(getter) else getattr(user, "username", "") or "")
