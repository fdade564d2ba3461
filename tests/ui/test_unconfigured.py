"""Without a ``[credits]`` section the page still shows live balances, and says what to set.

Airflow's own API app, built in this process (``airflow.api_fastapi.app.create_app``) with its simple
auth manager and the Credits plugin loaded through its entry point, served by FastAPI's test client.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_credits_provider.sandbox import SandboxServer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def test_without_credits_settings_the_page_shows_live_balances_and_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, connections: SandboxServer
) -> None:
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"op": "op-pw"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "op:op")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    # Unit-test mode's JWT secret is short, and PyJWT warns (an error under this suite's filters).
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "credits-ui-tests-" + "0123456789abcdef" * 4)
    # Airflow 3.0.6 passes an unset issuer to today's PyJWT, which refuses it: name one.
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_ISSUER", "credits-ui-tests")
    for option in ("WAREHOUSE_CONN_ID", "RESERVATIONS_CONN_ID"):
        monkeypatch.delenv(f"AIRFLOW__CREDITS__{option}", raising=False)
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    with TestClient(create_app("core")) as client:
        token = client.post("/auth/token", json={"username": "op", "password": "op-pw"}).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        body = client.get("/credits/api/accounts", headers=headers).json()
        page = client.get("/credits/", headers=headers).text
    rows = {row["conn_id"]: row for row in body["connections"]}
    assert {"leadmagic_default", "localleads_default", "truemail_default"} <= set(rows)
    assert rows["leadmagic_default"]["source"] == "environment"
    assert Decimal(rows["leadmagic_default"]["balance"]["available"]) == connections.state.leadmagic.credits
    assert rows["leadmagic_default"]["runway"] is None
    assert "held" not in rows["leadmagic_default"]  # no reservation tables configured
    assert [n.split(":")[-1].strip() for n in body["notes"]] == [
        "set [credits] warehouse_conn_id (AIRFLOW__CREDITS__WAREHOUSE_CONN_ID).",
        "set [credits] reservations_conn_id (AIRFLOW__CREDITS__RESERVATIONS_CONN_ID).",
    ]
    assert body["notices"] == []
    assert "set [credits] warehouse_conn_id" in page
    assert "Spent this month" not in page  # the columns that need the warehouse are left out
