"""The airflow-credits command line, run as a user runs it (a real process)."""

from __future__ import annotations

import json
import shutil
import smtplib
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.conftest import CANARY, subprocess_env

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer

CLI = shutil.which("airflow-credits", path=str(Path(sys.executable).parent)) or "airflow-credits"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=subprocess_env(), timeout=120)


def test_balance_text_and_json(connections: SandboxServer) -> None:
    text = _run("balance", "localleads_default")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == "localleads_default (localleads): 82 credits available"
    assert "next reset:" in text.stdout
    as_json = _run("balance", "truemail_default", "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["available"] == "45230"
    assert data["unit_prices"]["smtp"]["credits"] == "10"
    assert "raw" not in data
    with_raw = json.loads(_run("balance", "truemail_default", "--json", "--raw").stdout)
    assert with_raw["raw"]["plan"] == "premium"


def test_balance_errors_exit_non_zero_with_the_reason(connections: SandboxServer) -> None:
    connections.state.set_key("leadmagic", "rotated")
    result = _run("balance", "leadmagic_default")
    assert result.returncode == 1
    assert "error: LeadMagic rejected the API key" in result.stderr
    missing = _run("balance", "no_such_connection")
    assert missing.returncode == 2
    assert missing.stdout == ""
    assert "Traceback" not in missing.stderr
    assert missing.stderr.splitlines()[-1] == (
        "error: Connection 'no_such_connection' is not defined (looked in the environment, the secrets "
        "backends and the metadata database). Create it in the UI, with `airflow connections add`, or as "
        "the environment variable AIRFLOW_CONN_NO_SUCH_CONNECTION."
    )


def test_an_unreadable_connection_variable_is_named_with_airflows_reason_and_no_key() -> None:
    env = subprocess_env(AIRFLOW_CONN_BROKEN=f"leadmagic://:{CANARY}@api.example.test:notaport")
    result = subprocess.run([CLI, "balance", "broken"], capture_output=True, text=True, env=env, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == (
        "error: Connection 'broken': the environment variable AIRFLOW_CONN_BROKEN is set, but Airflow "
        "cannot read it as a connection (ValueError: Port could not be cast to integer value as "
        "'notaport'). Its value must be a connection URI or a JSON object such as "
        '{"conn_type": ..., "password": ...}.'
    )
    assert CANARY not in result.stderr


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        (f"leadmagic://:{CANARY}@host/?api_secret=extra-{CANARY}", f"extra-{CANARY}"),
        (f"leadmagic://:{CANARY.replace('-', '%2D')}@host", CANARY),
        (json.dumps({"conn_type": "leadmagic", "password": CANARY}), CANARY),
        (json.dumps({"conn_type": "leadmagic", "extra": {"token": f"t-{CANARY}"}}), f"t-{CANARY}"),
        (json.dumps({"conn_type": "leadmagic", "extra": json.dumps({"token": CANARY})}), CANARY),
        (json.dumps({"conn_type": "leadmagic", "extra": {"auth": {"keys": [1, CANARY]}}}), CANARY),
        ("{not json " + CANARY, "{not json " + CANARY),
    ],
)
def test_airflows_reason_is_given_without_the_value_its_password_or_extras(value: str, quoted: str) -> None:
    """Whatever part of the variable Airflow's message quotes (the whole value, the key, an extra)."""
    from airflow_credits_provider.hooks.connections import _without_secrets

    masked = _without_secrets(f"ValueError: cannot parse {value!r}, found {quoted!r} (port 'x')", value)
    assert CANARY not in masked
    assert masked == "ValueError: cannot parse '***', found '***' (port 'x')"


def test_balance_rejects_a_non_credit_connection() -> None:
    env = subprocess_env(AIRFLOW_CONN_MYDB="sqlite:///tmp/x.db")
    result = subprocess.run([CLI, "balance", "mydb"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "not a credit API connection type" in result.stderr


def test_sandbox_command_serves_and_prints_connections(tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    data_dir = tmp_path / "data"
    command = [CLI, "sandbox", "--port", "0", "--env-file", str(env_file), "--ledger-size", "7"]
    with subprocess.Popen(
        [*command, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=subprocess_env(),
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("Credits sandbox serving on http://127.0.0.1:")
            url = first.split()[4]
            lines = [proc.stdout.readline() for _ in range(21)]
            adds = [line for line in lines if line.startswith("airflow connections add ")]
            exports = [line for line in lines if line.startswith("export AIRFLOW_CONN_")]
            assert [a.split()[3] for a in adds] == [
                "leadmagic_default", "localleads_default", "truemail_default", "credit_api_default",
                "credits_warehouse", "credits_reservations", "credits_smtp",
            ]  # fmt: skip
            assert len(exports) == 7
            assert env_file.read_text().splitlines() == [e.rstrip("\n") for e in exports]
            assert exports[5].rstrip("\n") == (
                "export AIRFLOW_CONN_CREDITS_RESERVATIONS="
                f"""'{{"conn_type": "sqlite", "host": "{data_dir}/reservations.db"}}'"""
            )
            # The SMTP inbox the example alert rules send to: a real server, listed by the control API.
            smtp = json.loads(exports[6].split("=", 1)[1].strip("'\n"))
            assert f"SMTP inbox on 127.0.0.1:{smtp['port']} (connection credits_smtp" in "".join(lines)
            with smtplib.SMTP("127.0.0.1", smtp["port"], timeout=5) as client:
                client.sendmail("a@example.com", ["b@example.com"], "Subject: hello\r\n\r\nbody\r\n")
            inbox = httpx.get(f"{url}/_sandbox/inbox", timeout=5).json()
            assert inbox == [
                {"from": "a@example.com", "to": ["b@example.com"], "subject": "hello", "text": "body\n"}
            ]
            assert httpx.delete(f"{url}/_sandbox/inbox", timeout=5).json() == {"inbox": 0}
            assert httpx.get(f"{url}/_sandbox/inbox", timeout=5).json() == []
            assert data_dir.is_dir()  # SQLite creates the files, not their directory
            state = httpx.get(f"{url}/_sandbox/state", timeout=5).json()
            assert state["ledger_size"] == 7
            conn = json.loads(exports[1].split("=", 1)[1].strip("'\n"))
            balance = httpx.get(
                f"{conn['host']}/api/v1/credits/balance",
                headers={"Authorization": f"Bearer {conn['password']}"},
                timeout=5,
            )
            assert balance.json()["data"]["availableCredits"] == 82
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_balance_of_a_generic_connection(connections: SandboxServer) -> None:
    conn = connections.connection("neverbounce")
    env = subprocess_env(AIRFLOW_CONN_NB=json.dumps(conn))
    result = subprocess.run(
        [CLI, "balance", "nb", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["vendor"], data["available"], data["used"]) == ("neverbounce", "5000", "1200")


def test_runway_prints_the_forecast_and_a_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timezone
    from decimal import Decimal

    from tests.warehouse_support import seed_snapshots, sqlite_connection, steady_history

    sqlite_connection(monkeypatch, "credits_warehouse", tmp_path / "warehouse.db")
    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    # 5 days spending 2 an hour (48 a day) down to 244, with a monthly reset of 500 in the middle.
    history = steady_history(
        ending_at=now, before=Decimal(242), per_hour=Decimal(2), hours=5 * 24, refill_at=60, refill=500
    )
    seed_snapshots(
        "credits_warehouse", "credit_balance_snapshots", "localleads", "localleads_default", history
    )
    text = _run("runway", "localleads_default", "--sql-conn-id", "credits_warehouse")
    assert text.returncode == 0, text.stderr
    # The SQL hook's statement log stays out of the output, whatever the logging configuration.
    assert "Running statement" not in text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("localleads_default: 244 credits, burning 47.60 a day: 5.1 days to empty")
    assert "  balance:        244 (at 2026-11-20 11:00 UTC)" in lines
    assert "  runs out:       2026-11-25 14:02 UTC"  # 244 / 47.6 days later in lines
    assert "  history used:   120 snapshots, 5.0 days, 1 refill(s) left out" in lines
    chart = [line for line in lines if line.startswith("2026-11-") and "---" not in line]
    assert [line.split()[0] for line in chart] == [f"2026-11-{d}" for d in range(15, 21)]
    assert chart[-1].endswith(" 244")
    assert lines[-1] == "2026-11-25 --- runs dry"  # no renewal in these snapshots
    as_json = json.loads(
        _run(
            "runway", "localleads_default", "--sql-conn-id", "credits_warehouse", "--json", "--reserve", "100"
        ).stdout
    )
    assert (as_json["account"], as_json["forecast"], as_json["reserve"], as_json["refills"]) == (
        "localleads_default",
        True,
        "100",
        1,
    )
    assert Decimal(as_json["days_left"]) == pytest.approx(
        (Decimal(244) - 100) / Decimal(as_json["burn_per_day"])
    )


def test_runway_without_history_or_table_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.warehouse_support import sqlite_connection

    sqlite_connection(monkeypatch, "credits_warehouse", tmp_path / "warehouse.db")
    no_file = _run("runway", "leadmagic_default", "--sql-conn-id", "credits_warehouse")
    assert (no_file.returncode, no_file.stdout) == (2, "")
    assert f"names the SQLite file {tmp_path / 'warehouse.db'}, which does not exist" in no_file.stderr
    assert not (tmp_path / "warehouse.db").exists()
    sqlite3.connect(tmp_path / "warehouse.db").close()  # an empty database: no table yet
    missing = _run("runway", "leadmagic_default", "--sql-conn-id", "credits_warehouse")
    assert missing.returncode == 2
    assert "Cannot read balance snapshots from credit_balance_snapshots" in missing.stderr
    assert "Traceback" not in missing.stderr
    # Without --sql-conn-id: [credits] warehouse_conn_id, as the budgets and alerts commands read theirs.
    monkeypatch.setenv("AIRFLOW__CREDITS__WAREHOUSE_CONN_ID", "credits_warehouse")
    monkeypatch.setenv("AIRFLOW__CREDITS__SNAPSHOTS_TABLE", "landed_snapshots")
    configured = _run("runway", "leadmagic_default")
    assert configured.returncode == 2
    assert "Cannot read balance snapshots from landed_snapshots" in configured.stderr
    monkeypatch.delenv("AIRFLOW__CREDITS__WAREHOUSE_CONN_ID")
    monkeypatch.delenv("AIRFLOW__CREDITS__SNAPSHOTS_TABLE")
    unset = _run("runway", "leadmagic_default")
    assert (unset.returncode, unset.stdout) == (2, "")
    assert (
        "No warehouse to read the balance snapshots from: pass --sql-conn-id, or set [credits]"
        in unset.stderr
    )
    bad = _run("runway", "x", "--sql-conn-id", "credits_warehouse", "--reserve", "lots")
    assert (bad.returncode, bad.stdout) == (2, "")
    assert "--reserve must be a number of credits" in bad.stderr
    for window in ("0", "-1", "nan", "soon"):
        no_window = _run("runway", "x", "--sql-conn-id", "credits_warehouse", "--window-days", window)
        assert (no_window.returncode, no_window.stdout) == (2, "")
        assert "argument --window-days:" in no_window.stderr

    from datetime import datetime, timedelta, timezone
    from decimal import Decimal

    from tests.warehouse_support import seed_snapshots

    now = datetime.now(timezone.utc)
    seconds_apart = [(now - timedelta(seconds=5), Decimal(100)), (now, Decimal(90))]
    seed_snapshots(
        "credits_warehouse", "credit_balance_snapshots", "leadmagic", "leadmagic_default", seconds_apart
    )
    typo = _run("runway", "leadmagic-default", "--sql-conn-id", "credits_warehouse")
    assert (typo.returncode, typo.stdout) == (2, "")
    assert "No balance snapshots of account 'leadmagic-default'" in typo.stderr
    assert "(it holds accounts 'leadmagic_default')" in typo.stderr
    too_short = _run("runway", "leadmagic_default", "--sql-conn-id", "credits_warehouse", "--json")
    assert too_short.returncode == 2
    assert json.loads(too_short.stdout) == {"account": "leadmagic_default", "forecast": False, "snapshots": 2}
    assert "span only 5 seconds; a forecast needs at least 1 hour of history" in too_short.stderr
    assert too_short.stderr.rstrip().endswith("or lower --min-history-hours (now 1 hour).")
    allowed = _run(
        "runway",
        "leadmagic_default",
        "--sql-conn-id",
        "credits_warehouse",
        "--json",
        "--min-history-hours",
        "0",
    )
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["burn_per_day"] == str(10 * 86400 // 5)


def test_runway_shows_the_renewal_the_vendor_reports(
    connections: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History, then a live TrueMail snapshot (its period end is the renewal): the CLI says which is first."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from airflow_credits_provider.hooks.resolve import get_credit_hook
    from airflow_credits_provider.transfers.credit_balance_to_sql import CreditBalanceToSqlOperator
    from tests.warehouse_support import seed_snapshots, sqlite_connection, steady_history

    sqlite_connection(monkeypatch, "credits_warehouse", tmp_path / "warehouse.db")
    live = get_credit_hook("truemail_default").get_balance()
    assert live.next_reset_at is not None
    to_renewal = Decimal(str((live.next_reset_at - live.fetched_at).total_seconds() / 86400))
    per_hour = live.available / (to_renewal * 12)  # dry in half the days to the renewal
    history = steady_history(
        ending_at=datetime.now(timezone.utc), before=live.available, per_hour=per_hour, hours=48
    )
    seed_snapshots("credits_warehouse", "credit_balance_snapshots", "truemail", "truemail_default", history)
    CreditBalanceToSqlOperator(
        task_id="snap", credit_conn_id="truemail_default", sql_conn_id="credits_warehouse"
    ).execute({})
    text = _run("runway", "truemail_default", "--sql-conn-id", "credits_warehouse")
    assert text.returncode == 0, text.stderr
    renews = f"{live.next_reset_at:%Y-%m-%d}"
    [line] = [line for line in text.stdout.splitlines() if line.startswith("  renews:")]
    assert line.startswith(f"  renews:         Renews {renews} 00:00 UTC (in ")
    assert line.endswith("days before it.")
    assert text.stdout.splitlines()[-1] == f"{renews} --- renews"  # after the dry date in the chart
    as_json = json.loads(
        _run("runway", "truemail_default", "--sql-conn-id", "credits_warehouse", "--json").stdout
    )
    assert (as_json["renews_at"], as_json["dry_before_renewal"]) == (live.next_reset_at.isoformat(), True)
