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

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    url, summary_path = sys.argv[1], Path(sys.argv[2])
    from airflow.utils import db

    from tests.example_dags_support import load_dag, states, xcom

    db.resetdb()
    control = f"{url}/_sandbox"
    lines: list[str] = []

    def set_state(vendor: str, **fields: object) -> None:
        httpx.post(f"{control}/state/{vendor}", json=fields, timeout=10).raise_for_status()

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
            d = decision
            lines.append(
                f"   decision: need {d['required']} ({d['basis']}, margin {d['margin']}), "
                f"available {d['available']}, short by {d['shortfall']}, passed={d['passed']}"
            )

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
    timer = threading.Timer(3.0, set_state, args=("leadmagic",), kwargs={"credits": 500})
    timer.start()
    run(
        "LeadMagic: deferrable sensor waits, credits topped up after 3 s",
        "example_leadmagic_enrichment",
        "example_leadmagic_enrichment_wait",
        {"leads": 3},
    )
    timer.join()
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
    from airflow_credits_provider.transfers.base import sql_hook_for

    httpx.post(f"{control}/ledger", json={"size": 2500}, timeout=10).raise_for_status()
    run(
        "Credit history: first load into the embedded SQLite warehouse",
        "example_credit_history",
        "example_credit_history",
        {},
        task="land_localleads_transactions",
    )
    httpx.post(f"{control}/ledger", json={"grow": 40}, timeout=10).raise_for_status()
    run(
        "Credit history: next day, incremental (40 new transactions)",
        "example_credit_history",
        "example_credit_history",
        {},
        task="land_localleads_transactions",
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
    for day, day_spent in warehouse.get_records(
        "SELECT substr(created_at, 1, 10), -SUM(CAST(amount AS REAL)) FROM credit_transactions "
        "WHERE amount < 0 GROUP BY 1 ORDER BY 1 DESC LIMIT 3"
    ):
        lines.append(f"   spend on {day}: {day_spent:,.0f} credits")
    summary_path.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
