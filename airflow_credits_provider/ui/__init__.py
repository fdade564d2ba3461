"""The Credits pages in Airflow's UI: an Airflow plugin and the FastAPI app behind it.

``plugin`` is what Airflow imports (cheap: every task process loads entry-point plugins); the web app
(``app``), its data (``balances``, ``queries``), charts (``charts``) and access checks (``access``) are
imported only when the api-server first serves a request under ``/credits``.
"""
