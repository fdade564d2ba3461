"""The FastAPI app behind the Credits pages (mounted by the plugin at ``/credits``), GET routes only.

HTML pages (shown in Airflow's UI frame) and the JSON they render, at the same paths under ``api/``:

- ``/`` and ``/api/accounts``: every credit connection the user may read
- ``/accounts/{conn_id}`` and ``/api/accounts/{conn_id}``: one account (``?days=``, ``?reserve=``)
- ``/runs/{dag_id}/{run_id}`` and ``/api/runs/{dag_id}/{run_id}``: what a run reserved, decided and spent
  (``?task_id=&map_index=`` for one task instance)

Every route requires an authenticated user and filters by Airflow's permissions
(:mod:`~airflow_credits_provider.ui.access`). Links are relative, so a ``base_url`` sub-path works.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from airflow_credits_provider.config import CreditsSettings
from airflow_credits_provider.ui import access, reports
from airflow_credits_provider.ui.balances import BalanceCache

if TYPE_CHECKING:
    import jinja2

User = Annotated[Any, Depends(access.current_user_dependency())]
Days = Annotated[int, Query(ge=1, le=366, description="Days of balance history to chart")]


def create_app() -> FastAPI:
    """Build the Credits app (the plugin calls this on the first request, in the api-server only)."""
    # Every route requires a user (each also declares it, to read it); FastAPI's own docs routes are
    # off, since they would answer anonymously: docs/ui.md documents the JSON endpoints.
    app = FastAPI(
        title="Airflow Credits",
        description="Credit balances, runway, reservations and spend of the credit connections.",
        docs_url=None,
        openapi_url=None,
        redoc_url=None,
        dependencies=[Depends(access.current_user_dependency())],
    )
    cache = BalanceCache(ttl=60, timeout=10)

    @app.middleware("http")
    async def server_timing(request: Any, call_next: Any) -> Any:
        """Say how long the app took (``Server-Timing: app;dur=<ms>``), for browsers' tools and bench/."""
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    def settings() -> CreditsSettings:
        try:
            current = CreditsSettings.from_airflow()
        except ValueError as exc:
            raise HTTPException(500, str(exc)) from None
        cache.ttl, cache.timeout = current.balance_cache_seconds, current.balance_timeout
        return current

    def page(template: str, data: dict[str, Any], **extra: Any) -> HTMLResponse:
        html = _templates().get_template(template).render(page=data, **extra)
        return HTMLResponse(html, headers=_NO_STORE)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def overview_page(user: User) -> HTMLResponse:
        current = settings()
        data = await reports.overview(user, current, cache)
        return page(
            "overview.html",
            data,
            cache_seconds=current.balance_cache_seconds,
            sparkline_days=reports.SPARKLINE_DAYS,
        )

    @app.get("/icon.svg", include_in_schema=False)
    async def icon(user: User) -> Response:
        return Response(_ICON, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/icon-dark.svg", include_in_schema=False)
    async def icon_dark(user: User) -> Response:
        return Response(
            _ICON_DARK, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=3600"}
        )

    @app.get("/api/accounts", summary="Every credit connection the user may read")
    async def overview_json(user: User) -> JSONResponse:
        return JSONResponse(await reports.overview(user, settings(), cache), headers=_NO_STORE)

    @app.get("/accounts/{conn_id}", response_class=HTMLResponse, include_in_schema=False)
    async def account_page(conn_id: str, user: User, days: Days = 30, reserve: str = "0") -> HTMLResponse:
        data = await _account(user, conn_id, settings(), cache, days, reserve)
        return page("account.html", data, chart=_chart(data))

    @app.get("/api/accounts/{conn_id}", summary="One credit account: balance, history, holds, spend")
    async def account_json(conn_id: str, user: User, days: Days = 30, reserve: str = "0") -> JSONResponse:
        data = await _account(user, conn_id, settings(), cache, days, reserve)
        return JSONResponse(data, headers=_NO_STORE)

    @app.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse, include_in_schema=False)
    async def run_page(
        dag_id: str,
        run_id: str,
        user: User,
        task_id: str | None = None,
        map_index: int | None = None,
    ) -> HTMLResponse:
        data = await _run(user, settings(), dag_id, run_id, task_id, map_index)
        return page("run.html", data)

    @app.get("/api/runs/{dag_id}/{run_id:path}", summary="What one DAG run reserved, decided and spent")
    async def run_json(
        dag_id: str, run_id: str, user: User, task_id: str | None = None, map_index: int | None = None
    ) -> JSONResponse:
        data = await _run(user, settings(), dag_id, run_id, task_id, map_index)
        return JSONResponse(data, headers=_NO_STORE)

    return app


#: The navigation icon, two coins. Airflow shows it as an <img> (no currentColor), on the nav's light
#: background and, when the page is open, on its mid-blue highlight: dark strokes on a white halo read
#: on both. The dark-mode variant (``icon_dark_mode``) is light strokes on a dark halo.
_COINS = (
    '<circle cx="9" cy="9" r="6"/><path d="M18.1 10.4a6 6 0 1 1-7.7 7.6"/><path d="M8 6.5h1.5v5"/>'
    '<path d="M16.6 14h.9v4"/>'
)


def _icon(stroke: str, halo: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke-linecap="round" '
        f'stroke-linejoin="round"><g stroke="{halo}" stroke-width="4.5">{_COINS}</g>'
        f'<g stroke="{stroke}" stroke-width="2">{_COINS}</g></svg>'
    )


_ICON = _icon("#1a202c", "#ffffff")
_ICON_DARK = _icon("#f7fafc", "#1a202c")

#: Pages hold balances: never kept by a shared cache, always fetched fresh by the browser.
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


async def _account(
    user: Any, conn_id: str, settings: CreditsSettings, cache: BalanceCache, days: int, reserve: str
) -> dict[str, Any]:
    try:
        amount = Decimal(reserve)
        if not amount.is_finite() or amount < 0:
            raise InvalidOperation
    except InvalidOperation:
        raise HTTPException(400, f"reserve must be a number of credits >= 0, got {reserve!r}.") from None
    try:
        return await reports.account(user, conn_id, settings, cache, days=days, reserve=amount)
    except reports.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except reports.Forbidden as exc:
        raise HTTPException(403, str(exc)) from None


async def _run(
    user: Any, settings: CreditsSettings, dag_id: str, run_id: str, task_id: str | None, map_index: int | None
) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    try:
        return await run_in_threadpool(reports.run, user, settings, dag_id, run_id, task_id, map_index)
    except reports.Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except reports.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


def _chart(data: dict[str, Any]) -> Markup:
    """The account's history chart with its runway and renewal, as inline SVG."""
    from datetime import date

    from airflow_credits_provider.ui.charts import Projection, history_chart
    from airflow_credits_provider.ui.queries import DailyBalance

    history = data.get("history")
    if not history or not history["days"]:
        return Markup("")
    days = [
        DailyBalance(
            date.fromisoformat(d["day"]),
            Decimal(d["last"]),
            Decimal(d["low"]),
            Decimal(d["high"]),
            d["snapshots"],
            Decimal(d["spent"]),
            Decimal(d["refilled"]),
            d["refills"],
        )
        for d in history["days"]
    ]
    runway = history.get("runway")
    projection = None
    if runway and runway["runs_out_at"]:
        projection = Projection(
            datetime.fromisoformat(runway["at"]),
            Decimal(runway["balance"]),
            datetime.fromisoformat(runway["runs_out_at"]),
            Decimal(runway["reserve"]),
        )
    balance = data.get("balance") or {}
    renewal = datetime.fromisoformat(balance["next_reset_at"]) if balance.get("next_reset_at") else None
    gap = history.get("gap")
    live = None
    if gap and gap["behind"]:
        live = (datetime.fromisoformat(gap["live_at"]), Decimal(gap["live_available"]))
    return Markup(history_chart(days, projection=projection, renewal=renewal, live=live))  # noqa: S704 (built with escape())


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    import jinja2

    from airflow_credits_provider.parsing import format_amount

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("airflow_credits_provider.ui", "templates"),
        autoescape=True,
    )

    def amount(value: Any, places: int | None = None) -> str:
        """Credits for reading: thousands grouped, ``places`` decimals when given (huge ones as is)."""
        if value is None or value == "":
            return "–"
        number = Decimal(str(value))
        text = format_amount(number)
        if "e" in text:
            return text
        if places is not None:
            number = number.quantize(Decimal(1).scaleb(-places))
        return f"{number if places is not None else number.normalize():,f}"

    def when(value: Any) -> str:
        if not value:
            return ""
        moment = datetime.fromisoformat(str(value))
        if moment.utcoffset() is None:
            return f"{moment:%Y-%m-%d %H:%M}"
        return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"

    def spark(values: list[str]) -> Markup:
        from airflow_credits_provider.ui.charts import sparkline

        return Markup(sparkline([Decimal(v) for v in values]))  # noqa: S704 (numbers and escape() only)

    env.filters.update(
        amount=amount,
        date=when,
        sparkline=spark,
        urlquote=lambda value: quote(str(value), safe=""),
        round_seconds=lambda s: f"{s:g} s",
    )
    return env
