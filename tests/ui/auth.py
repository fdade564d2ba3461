"""An auth manager for the UI tests: Airflow's simple auth manager, with DAGs that only admins may read.

Airflow's simple auth manager grants by role only (every viewer reads every DAG); to prove the Credits
pages filter by DAG permission, this subclass lets only admins read DAGs whose id starts with
``private_``. Everything else (login, tokens, roles, connections) is the simple auth manager's own.
Configured in the tests' api-server with ``[core] auth_manager = tests.ui.auth.PrivateDagsAuthManager``.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager


class PrivateDagsAuthManager(SimpleAuthManager):  # type: ignore[misc]
    """The simple auth manager; DAGs named ``private_*`` are readable by admins only."""

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        dag_id = getattr(details, "id", None) or ""
        if dag_id.startswith("private_") and str(getattr(user, "role", "")).upper() != "ADMIN":
            return False
        return bool(
            super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
        )
