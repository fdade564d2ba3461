"""The sandbox itself: documented shapes, control API, ledger behaviour, fault plumbing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from airflow_credits_provider.sandbox import DEFAULT_KEYS, Ledger, SandboxState

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox import SandboxServer


def test_documented_bodies_and_headers(sandbox: SandboxServer) -> None:
    lm = httpx.get(
        f"{sandbox.base_url('leadmagic')}/v1/credits", headers={"x-api-key": DEFAULT_KEYS["leadmagic"]}
    )
    assert lm.json()["credits_liquid"] == 15432.5
    assert lm.headers["X-Credits-Remaining"] == "15432.5"
    assert lm.headers["RateLimit-Limit"] == "300"
    missing = httpx.get(f"{sandbox.base_url('leadmagic')}/v1/credits")
    assert missing.status_code == 401
    assert missing.json()["errors"][0]["code"] == "missing_authentication"
    tm = httpx.get(
        f"{sandbox.base_url('truemail')}/v1/usage",
        headers={"Authorization": f"Bearer {DEFAULT_KEYS['truemail']}"},
    )
    assert tm.json()["validation_types"]["smtp"] == {"credits": 10, "available": True}
    ll = httpx.get(
        f"{sandbox.base_url('localleads')}/api/v1/credits/transactions",
        params={"limit": 101},
        headers={"Authorization": f"Bearer {DEFAULT_KEYS['localleads']}"},
    )
    assert ll.status_code == 400
    assert ll.json() == {"success": False, "error": "limit must be between 1 and 100 and offset >= 0"}


def test_control_api(sandbox: SandboxServer) -> None:
    control = f"{sandbox.url}/_sandbox"
    assert httpx.get(f"{control}/health").json() == {"status": "ok"}
    httpx.post(f"{control}/state/leadmagic", json={"credits": 42}).raise_for_status()
    assert sandbox.state.leadmagic.credits == 42
    assert httpx.post(f"{control}/state/leadmagic", json={"nope": 1}).status_code == 400
    fault = httpx.post(f"{control}/faults", json={"kind": "status", "vendor": "truemail", "status": 503})
    assert fault.status_code == 201
    assert sandbox.state.faults[0].status == 503
    assert httpx.post(f"{control}/faults", json={"kind": "meteor"}).status_code == 400
    httpx.delete(f"{control}/faults").raise_for_status()
    assert sandbox.state.faults == []
    assert httpx.post(f"{control}/ledger", json={"size": 10, "grow": 5}).json() == {"ledger_size": 15}
    httpx.get(f"{sandbox.base_url('truemail')}/v1/usage")
    [recorded] = httpx.get(f"{control}/requests").json()
    assert {k: recorded[k] for k in ("vendor", "method", "path", "query")} == {
        "vendor": "truemail",
        "method": "GET",
        "path": "/v1/usage",
        "query": {},
    }
    assert recorded["in_flight"] == 1  # it was the only request being answered
    assert isinstance(recorded["at"], float)
    assert recorded["fault"] is None
    httpx.post(f"{control}/faults", json={"kind": "status", "vendor": "truemail", "status": 503})
    assert httpx.get(f"{sandbox.base_url('truemail')}/v1/usage").status_code == 503
    assert [r["fault"] for r in httpx.get(f"{control}/requests").json()] == [None, "status"]
    assert httpx.post(f"{control}/latency", json={"seconds": 0.05, "jitter": 0.01}).json() == {
        "seconds": 0.05,
        "jitter": 0.01,
    }
    assert 0.05 <= sandbox.state.answer_delay() <= 0.06
    assert httpx.post(f"{control}/latency", json={"seconds": -1}).status_code == 400
    httpx.post(f"{control}/latency", json={"seconds": 0}).raise_for_status()
    httpx.delete(f"{control}/requests").raise_for_status()
    assert sandbox.state.requests == []
    httpx.post(f"{control}/state/hunter", json={"credits": 77}).raise_for_status()
    assert httpx.get(f"{control}/state").json()["hunter"]["credits"] == "77"
    assert httpx.post(f"{control}/state/hunter", json={"plan": "x"}).status_code == 400
    httpx.post(f"{control}/state/truemail", json={"key": "tm_live_new"}).raise_for_status()
    assert sandbox.state.key_is_valid("truemail", "tm_live_new")
    assert "tm_live_new" not in httpx.get(f"{control}/state").text  # keys are never echoed


def test_unknown_vendor_prefix(sandbox: SandboxServer) -> None:
    response = httpx.get(f"{sandbox.url}/acme/v1/credits")
    assert response.status_code == 404
    assert "no sandbox vendor 'acme'" in response.json()["error"]


def test_ledger_is_deterministic_newest_first_and_grows_on_top() -> None:
    ledger = Ledger(1_000_000)
    first = ledger.page(0, 3)
    assert [r["id"] for r in first] == ["txn_000999999", "txn_000999998", "txn_000999997"]
    assert ledger.page(0, 3) == first
    ledger.grow(2)
    assert [r["id"] for r in ledger.page(0, 4)] == [
        "txn_001000001",
        "txn_001000000",
        "txn_000999999",
        "txn_000999998",
    ]
    assert ledger.page(1_000_000, 10) == [ledger.record(1), ledger.record(0)]
    assert ledger.record(0)["type"] == "MONTHLY_RESET"
    assert ledger.record(0)["amount"] == 100
    assert ledger.record(5)["amount"] < 0


def test_grow_ledger_fault_shifts_offsets_like_the_real_api(sandbox: SandboxServer) -> None:
    sandbox.state.ledger.size = 10
    sandbox.state.inject("grow_ledger", "localleads", count=3, path="/api/v1/credits/transactions")
    headers = {"Authorization": f"Bearer {DEFAULT_KEYS['localleads']}"}
    url = f"{sandbox.base_url('localleads')}/api/v1/credits/transactions"
    page1 = httpx.get(url, params={"limit": 5, "offset": 0}, headers=headers).json()
    page2 = httpx.get(url, params={"limit": 5, "offset": 5}, headers=headers).json()
    assert page1["meta"]["total"] == 10
    assert page2["meta"]["total"] == 13
    # Three new rows pushed the old ones down: page 2 repeats the last three rows of page 1.
    assert [r["id"] for r in page2["data"][:3]] == [r["id"] for r in page1["data"][2:]]


@pytest.mark.parametrize("times", [1, 3])
def test_faults_are_consumed(times: int) -> None:
    state = SandboxState()
    state.inject("status", "truemail", times=times)
    assert state.take_fault("leadmagic", "/v1/credits") is None
    taken = [state.take_fault("truemail", "/v1/usage") for _ in range(times + 1)]
    assert [f is not None for f in taken] == [True] * times + [False]


def test_the_inbox_keeps_what_arrives_with_html_made_readable() -> None:
    import smtplib
    from email.mime.text import MIMEText

    from airflow_credits_provider.sandbox.inbox import SandboxInbox

    state = SandboxState()
    inbox = SandboxInbox(state).start()
    try:
        message = MIMEText("<p>Budget &#x27;growth&#x27; reached 80%</p><p><a href='x'>link</a></p>", "html")
        message["Subject"] = "Budget 'growth' reached 80% of its cap"
        conn = inbox.connection()
        with smtplib.SMTP(conn["host"], conn["port"], timeout=5) as client:
            client.sendmail("credits@example.com", ["team@example.com"], message.as_string())
    finally:
        inbox.stop()
    assert state.inbox == [
        {
            "from": "credits@example.com",
            "to": ["team@example.com"],
            "subject": "Budget 'growth' reached 80% of its cap",
            "text": "Budget 'growth' reached 80% link",
        }
    ]
    assert conn["extra"]["disable_tls"] is True
