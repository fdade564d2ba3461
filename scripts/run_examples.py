"""
Run the example DAGs with dag.test() against a running sandbox and write what each decided.

Used by ``make demo`` (scripts/demo.sh), which starts the sandbox and exports its connections first.
Usage: python scripts/run_examples.py SANDBOX_URL SUMMARY_FILE
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def hold_for_another_run(credits: int) -> None:
    """A reservation on the shared account by another DAG's run, as if it were running now."""
    from datetime import timedelta
    from decimal import Decimal

    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.reservations import Holder, ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    ReservationStore(sql_hook_for("credits_reservations")).reserve(
        account="leadmagic_shared",
        credit_conn_id="leadmagic_default",
        holder=Holder("example_shared_account_companies", "demo_run", "reserve_credits"),
        amount_for=lambda _balance: Decimal(credits),
        fetch_balance=get_credit_hook("leadmagic_default").get_balance,
        ttl=timedelta(minutes=5),
    )


def release_the_other_run() -> None:
    """End :func:`hold_for_another_run`'s reservation as its run would (its release fetches the balance)."""
    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.reservations import ReservationStore
    from airflow_credits_provider.sql.connections import sql_hook_for

    ReservationStore(sql_hook_for("credits_reservations")).release(
        dag_id="example_shared_account_companies",
        run_id="demo_run",
        task_ids=["reserve_credits"],
        balance_after=lambda conn_id: get_credit_hook(conn_id).get_balance(),
    )


def main() -> int:
    url, summary_path = sys.argv[1], Path(sys.argv[2])
    from airflow.utils import db

    from airflow_credits_provider.sql.connections import sql_hook_for
    from tests.example_dags_support import load_dag, states, xcom

    db.resetdb()
    control = f"{url}/_sandbox"
    lines: list[str] = []

    def set_state(vendor: str, *, quiet: bool = False, **fields: object) -> None:
        httpx.post(f"{control}/state/{vendor}", json=fields, timeout=10).raise_for_status()
        if not quiet:
            changes = ", ".join(f"{name}={value}" for name, value in fields.items())
            lines.append(f"-- sandbox: {vendor} account set to {changes}")

    def run(
        title: str, module: str, dag_id: str, conf: dict[str, object], task: str = "credit_preflight"
    ) -> None:
        dag_run = load_dag(module, dag_id).test(run_conf=conf)
        decision = xcom(dag_run, task, "credit_preflight") or {}
        lines.append(f"== {title}")
        lines.append(f"   {dag_id} {json.dumps(conf)} -> run {dag_run.state}; tasks: {states(dag_run)}")
        if not decision and (rows := xcom(dag_run, task)) is not None:
            lines.append(f"   {task}: landed {rows} rows")
        if decision:
            lines.append(f"   {'passed' if decision['passed'] else 'stopped'}: {decision['message']}")

    set_state("leadmagic", credits=100)
    run(
        "LeadMagic: enough credits, enrichment runs",
        "example_leadmagic_enrichment",
        "example_leadmagic_enrichment",
        {"leads": 5},
    )
    set_state("leadmagic", credits=12, credits_frozen=5, freeze_message="Invoice overdue")
    run(
        "LeadMagic: too few credits, the DAG fails before spending",
        "example_leadmagic_enrichment",
        "example_leadmagic_enrichment",
        {"leads": 20},
    )
    run(
        "LeadMagic: too few credits, skip variant",
        "example_leadmagic_enrichment",
        "example_leadmagic_enrichment_skip",
        {"leads": 20},
    )
    set_state("leadmagic", credits=1, credits_frozen=0)
    lines.append("-- sandbox: in 3 s, leadmagic credits will be topped up to 500")
    timer = threading.Timer(3.0, set_state, args=("leadmagic",), kwargs={"credits": 500, "quiet": True})
    timer.start()
    run(
        "LeadMagic: deferrable sensor waits, credits topped up after 3 s",
        "example_leadmagic_enrichment",
        "example_leadmagic_enrichment_wait",
        {"leads": 3},
    )
    timer.join()
    # Two DAGs sharing one LeadMagic account: reservations in the embedded SQLite file.
    set_state("leadmagic", credits=100, credits_frozen=0)
    run(
        "Shared account: a run reserves 44 credits, spends 40, releases and records its usage",
        "example_shared_account_reservations",
        "example_shared_account_contacts",
        {"leads": 40},
        task="reserve_credits",
    )
    lines.append("-- another run (example_shared_account_companies) reserves 50 of the 60 credits left")
    hold_for_another_run(50)
    run(
        "Shared account: the next run needs 44 but only 10 are free: it fails before spending",
        "example_shared_account_reservations",
        "example_shared_account_contacts",
        {"leads": 40},
        task="reserve_credits",
    )
    columns = ("dag_id", "outcome", "reserved", "balance_before", "balance_after", "spent")
    for row in sql_hook_for("credits_reservations").get_records(
        f"SELECT {', '.join(columns)} FROM credit_usage"
    ):
        cells = (f"{name}={cell}" for name, cell in zip(columns, row, strict=True))
        lines.append("   credit_usage: " + ", ".join(cells))
    # Partial runs: enrich what the credits allow, carry the rest in a table of pending work.
    set_state("leadmagic", credits=23)
    run(
        "Partial run: 50 leads pending, 23 credits cover 20 (+10 %): 20 enriched, 30 carried to the next run",
        "example_partial_enrichment",
        "example_partial_enrichment",
        {"new_leads": 50},
        task="reserve_credits",
    )
    lines.append("-- sandbox: in 3 s, leadmagic renews to 1000 credits")
    timer = threading.Timer(3.0, set_state, args=("leadmagic",), kwargs={"credits": 1000, "quiet": True})
    timer.start()
    run(
        "Partial run, waiting variant: 40 pending, 3 credits cover 2 (< min_units 5): waits, then takes all",
        "example_partial_enrichment",
        "example_partial_enrichment_wait",
        {"new_leads": 10},
        task="reserve_credits",
    )
    timer.join()
    pending = dict(
        sql_hook_for("credits_warehouse").get_records(
            "SELECT status, COUNT(*) FROM pending_leads GROUP BY status"
        )
    )
    lines.append(f"   pending_leads: {pending}")
    # Budgets: two teams on the same account (example_dags/team_budgets.yaml, imported by demo.sh).
    set_state("leadmagic", credits=1000)
    lines.append("-- the other run (example_shared_account_companies) ends and releases its 50 credits")
    release_the_other_run()
    run(
        "Budgets: growth (50 a month) reserves 44, spends 40, releases; the budget is charged 40",
        "example_team_budgets",
        "example_budget_growth",
        {"leads": 40},
        task="reserve_credits",
    )
    run(
        "Budgets: the next growth run needs 11, its budget has 10 left: skipped, the account has plenty",
        "example_team_budgets",
        "example_budget_growth",
        {"leads": 10},
        task="reserve_credits",
    )
    run(
        "Budgets: sales (30 a week) on the same account is not affected",
        "example_team_budgets",
        "example_budget_sales",
        {"leads": 5},
        task="reserve_credits",
    )
    set_state("zerobounce", credits=10)
    lines.append("-- sandbox: in 3 s, zerobounce credits will be topped up to 5000")
    timer = threading.Timer(3.0, set_state, args=("zerobounce",), kwargs={"credits": 5000, "quiet": True})
    timer.start()
    run(
        "Any credit API (ZeroBounce preset of the generic connection): deferrable wait for a top-up",
        "example_generic_credit_gate",
        "example_generic_credit_gate",
        {"emails": 2000},
    )
    timer.join()
    import pendulum

    renewal = pendulum.now("UTC").add(seconds=5).replace(microsecond=0)
    set_state(
        "localleads",
        used=120,
        reset_day=renewal.day,
        last_reset_at=renewal.subtract(months=1).to_iso8601_string(),
    )
    run(
        "LocalLeads: 5 credits now, 125 at the renewal in 5 s: the sensor sleeps until it, no polling",
        "example_localleads_reset_wait",
        "example_localleads_reset_wait",
        {"searches": 100},
        task="wait_for_credits",
    )
    set_state("localleads", used=43, quiet=True)
    run(
        "TrueMail: 1,000 emails x SMTP price (10) + margin 100",
        "example_truemail_validation",
        "example_truemail_validation",
        {"emails": 1000},
    )
    run(
        "TrueMail: 5,000 emails is more than the balance",
        "example_truemail_validation",
        "example_truemail_validation",
        {"emails": 5000},
    )
    # Credit history: land LocalLeads transactions and snapshots of every vendor into SQLite, twice.
    httpx.post(f"{control}/ledger", json={"size": 2500}, timeout=10).raise_for_status()
    run(
        "Credit history: first load into the embedded SQLite warehouse",
        "example_credit_history",
        "example_credit_history",
        {},
        task="land_localleads_transactions",
    )
    httpx.post(f"{control}/ledger", json={"grow": 40}, timeout=10).raise_for_status()
    lines.append("-- sandbox: 40 new LocalLeads transactions")
    run(
        "Credit history: next day, incremental (40 new transactions)",
        "example_credit_history",
        "example_credit_history",
        {},
        task="land_localleads_transactions",
    )
    landed = int(lines[-1].rsplit("landed ", 1)[1].split()[0])
    lines[-1] = (
        f"   land_localleads_transactions: landed {landed} rows: 40 new, {landed - 40} re-read in the "
        "1-hour overlap before the cursor (late arrivals are caught; re-reads are upserted, not duplicated)"
    )
    warehouse = sql_hook_for("credits_warehouse")
    count, spent = warehouse.get_first(
        "SELECT COUNT(*), -SUM(CAST(amount AS REAL)) FROM credit_transactions WHERE amount < 0"
    )
    total = warehouse.get_first("SELECT COUNT(*) FROM credit_transactions")[0]
    lines.append(f"   credit_transactions: {total} rows ({count} deductions, {spent:,.0f} credits spent)")
    for vendor, snapshots, available in warehouse.get_records(
        "SELECT vendor, COUNT(*), MAX(available) FROM credit_balance_snapshots GROUP BY 1 ORDER BY 1"
    ):
        lines.append(f"   credit_balance_snapshots: {vendor}: {snapshots} snapshots, available {available}")
    lines.append(
        "   (the sandbox's LocalLeads ledger is synthetic: one transaction every 10 minutes from "
        "2026-01-01 UTC, whatever today's date)"
    )
    for day, day_spent in warehouse.get_records(
        "SELECT substr(created_at, 1, 10), -SUM(CAST(amount AS REAL)) FROM credit_transactions "
        "WHERE amount < 0 GROUP BY 1 ORDER BY 1 DESC LIMIT 3"
    ):
        lines.append(f"   spend on {day}: {day_spent:,.0f} credits")
    lines.extend(runway(warehouse, load_dag, xcom, states))
    lines.extend(alerts(control, load_dag, xcom))
    summary_path.write_text("\n".join(lines) + "\n")
    return 0


def alerts(control: str, load_dag: Any, xcom: Any) -> list[str]:
    """The scheduled alert check, then what the sandbox's SMTP inbox received over the whole demo."""
    run = load_dag("example_credit_alerts", "example_credit_alerts").test()
    checked = xcom(run, "check_credit_alerts") or {}
    lines = [
        "== Alerts: the scheduled check (example_credit_alerts, rules from example_dags/team_alerts.yaml)",
        f"   checked {len(checked.get('checked', []))} rules; newly due: {checked.get('claimed') or 'none'}",
        "-- the sandbox's SMTP inbox received (each alert once; the budget ones were sent by the growth "
        "run's reserving task itself, the moment it crossed):",
    ]
    received = httpx.get(f"{control}/inbox", timeout=10).json()
    lines += [f"   to {', '.join(m['to'])}: {m['subject']}" for m in received] or ["   nothing"]
    return lines


def runway(warehouse: Any, load_dag: Any, xcom: Any, states: Any) -> list[str]:
    """Seed two weeks of hourly snapshots ending at each vendor's balance, then run the runway example."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from tests.warehouse_support import seed_snapshots, steady_history

    now = datetime.now(timezone.utc)
    lines = [
        "-- warehouse: two weeks of synthetic hourly snapshots before the ones just landed (LocalLeads with "
        "its monthly reset 5 days ago, TrueMail with a top-up 9 days ago)"
    ]
    # Days of runway each vendor's synthetic spending leaves, and when its balance rose.
    story = {"leadmagic": (45, -1), "localleads": (3, 9 * 24), "truemail": (60, 5 * 24)}
    for vendor, account, available in warehouse.get_records(
        "SELECT vendor, account, available FROM credit_balance_snapshots s WHERE fetched_at = "
        "(SELECT MIN(fetched_at) FROM credit_balance_snapshots WHERE account = s.account)"
    ):
        days, refill_at = story[vendor]
        per_hour = (Decimal(str(available)) / (days * 24)).quantize(Decimal("0.01"))
        history = steady_history(
            ending_at=now.replace(minute=0, second=0, microsecond=0),
            before=Decimal(str(available)),
            per_hour=per_hour,
            hours=14 * 24,
            refill_at=refill_at,
            # The rise leaves the balance a day's spending before it: the history stays positive.
            refill=Decimal(str(available)) + per_hour * (14 * 24 - refill_at + 1 - 24),
        )
        seed_snapshots("credits_warehouse", "credit_balance_snapshots", vendor, account, history)
    run = load_dag("example_credit_runway", "example_credit_runway").test()
    lines.append(
        f"== Runway: snapshot every vendor, forecast from the last 14 days (min 7 days) -> run {run.state}"
    )
    for vendor in story:
        result = xcom(run, f"runway_{vendor}")
        flag = "SHORT, alert sent" if result["short"] else "ok"
        if result["dry_before_renewal"]:
            flag += f" (runs dry {Decimal(result['days_dry_before_renewal']):.1f} days before its renewal)"
        elif result["dry_before_renewal"] is False:
            flag += f" (renews {result['renews_at'][:10]}, before it runs dry)"
        balance, burn = Decimal(result["balance"]), Decimal(result["burn_per_day"])
        lines.append(
            f"   {vendor}: {balance:,f} credits, {burn:,.1f} a day "
            f"-> {Decimal(result['days_left']):.1f} days, runs out {result['runs_out_at'][:16]} UTC "
            f"({result['snapshots']} snapshots, {result['refills']} refill(s) left out): {flag}"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
