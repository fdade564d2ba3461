"""The Credits plugin: Airflow loads it through the ``airflow.plugins`` entry point.

Cheap to import (task processes load entry-point plugins too): it names the pages and mounts an ASGI
stub that builds the real FastAPI app (:func:`airflow_credits_provider.ui.app.create_app`) on the first
request, which only the api-server serves.

- ``fastapi_apps`` (Airflow 3.0+): the app at ``/credits`` (HTML pages and JSON under ``/credits/api``).
- ``external_views`` (Airflow 3.1+): "Credits" in the navigation, and a "Credits" tab on DAG runs and
  task instances. Hrefs are relative (no leading slash), so a ``base_url`` sub-path works.
"""

from __future__ import annotations

import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: Where the app is mounted (Airflow reserves /api/v2, /ui, /execution, /auth, /pluginsv2).
URL_PREFIX = "/credits"


class LazyCreditsApp:
    """An ASGI app that builds the Credits app on its first request and hands every request to it."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one ASGI request (lifespan events included)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from airflow_credits_provider.ui.app import create_app

                    self._app = create_app()
        await self._app(scope, receive, send)


class CreditsPlugin(AirflowPlugin):
    """Credit balances, runway, reservations and spend in Airflow's UI (docs/ui.md)."""

    name = "credits"
    fastapi_apps = [{"app": LazyCreditsApp(), "url_prefix": URL_PREFIX, "name": "Credits"}]
    external_views = [
        {
            "name": "Credits",
            "href": "credits/",
            "url_route": "credits",
            "destination": "nav",
            "icon": "credits/icon.svg",
            "icon_dark_mode": "credits/icon-dark.svg",  # the nav in dark mode
        },
        {
            "name": "Credits",
            "href": "credits/runs/{DAG_ID}/{RUN_ID}",
            "url_route": "credits_run",
            "destination": "dag_run",
        },
        {
            "name": "Credits",
            "href": "credits/runs/{DAG_ID}/{RUN_ID}?task_id={TASK_ID}&map_index={MAP_INDEX}",
            "url_route": "credits_task",
            "destination": "task_instance",
        },
    ]
