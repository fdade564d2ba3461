"""HTTPS to a vendor: one TLS context per process, built in the background, and the trust it carries.

The sandbox serves HTTPS here with a certificate made for the test (127.0.0.1), which no bundle trusts:
a process trusts it only through ``SSL_CERT_FILE``, as a deployment behind a re-signing proxy does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import ssl
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from airflow_credits_provider.client import transport
from airflow_credits_provider.client.transport import CreditApiClient
from airflow_credits_provider.errors import UntrustedCertificateError
from airflow_credits_provider.hooks.localleads import LocalLeadsHook
from airflow_credits_provider.hooks.resolve import get_credit_hook
from airflow_credits_provider.sandbox import SandboxServer, SandboxState
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
from tests.conftest import CANARY, FAST_EXTRA, subprocess_env
from tests.warehouse_support import postgres_conn_json

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A CA-flagged certificate for 127.0.0.1 and its key (PEM files): its own trust anchor."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "credits sandbox test CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "sandbox.pem", directory / "sandbox.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_sandbox(tmp_path: Path) -> Iterator[tuple[SandboxServer, Path]]:
    """The sandbox over HTTPS, and the certificate a client must trust to reach it."""
    cert_file, key_file = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with SandboxServer(SandboxState(ledger_size=250), tls=context) as server:
        yield server, cert_file


class GatedBuild:
    """httpx's TLS context build, held in this process until :attr:`release` is set (a forked child's runs
    at once); :attr:`builds` records each held build: ``True`` when it was released, ``False`` if it gave up.
    """

    def __init__(self) -> None:
        self.parent = os.getpid()
        self.real = httpx.create_ssl_context
        self.started, self.release = threading.Event(), threading.Event()
        self.builds: list[bool] = []

    def __call__(self) -> ssl.SSLContext:
        if os.getpid() == self.parent:
            self.started.set()
            self.builds.append(self.release.wait(30))
        return self.real()


@pytest.fixture
def gated_tls(monkeypatch: pytest.MonkeyPatch) -> GatedBuild:
    """No TLS context built yet in this process; building one waits for the test's word."""
    gate = GatedBuild()
    monkeypatch.setattr(transport, "_tls_context", None)
    monkeypatch.setattr(transport.httpx, "create_ssl_context", gate)
    return gate


def test_one_context_for_concurrent_clients(gated_tls: GatedBuild) -> None:
    transport.prepare_tls()
    transport.prepare_tls()  # already being built: no second build
    assert gated_tls.started.wait(30)
    got: list[ssl.SSLContext] = []
    threads = [threading.Thread(target=lambda: got.append(transport._ssl_context())) for _ in range(4)]
    for thread in threads:
        thread.start()
    gated_tls.release.set()
    for thread in threads:
        thread.join()
    assert gated_tls.builds == [True]
    assert len(got) == 4
    assert all(context is got[0] for context in got)
    transport.prepare_tls()  # built: nothing starts
    assert not any(t.name == "credits-tls" and t.is_alive() for t in threading.enumerate())
    assert gated_tls.builds == [True]


def test_a_process_forked_while_the_context_loads_builds_its_own(gated_tls: GatedBuild) -> None:
    """A task that forks (multiprocessing) right after its first hook must not inherit a held lock."""
    import signal

    transport.prepare_tls()
    assert gated_tls.started.wait(30)
    assert transport._tls_lock.locked()  # the build is under way in the thread, holding the lock
    pid = os.fork()
    if pid == 0:  # the child: the building thread does not exist here; it never returns to pytest
        status = 1
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(10)  # a child stuck on the inherited lock is killed by the alarm: the test fails
            status = 0 if isinstance(transport._ssl_context(), ssl.SSLContext) else 1
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    gated_tls.release.set()
    assert os.waitstatus_to_exitcode(status) == 0
    assert isinstance(transport._ssl_context(), ssl.SSLContext)  # the parent's build completes as before
    assert gated_tls.builds == [True]


def test_the_context_loads_while_the_connection_is_looked_up(
    gated_tls: GatedBuild, connections: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_credits_provider.hooks import connections as lookups

    real_lookup = lookups.get_connection
    order: list[str] = []

    def lookup(conn_id: str) -> Any:  # the build stays under way until the connection has been read
        building = any(t.name == "credits-tls" and t.is_alive() for t in threading.enumerate())
        order.append("looked up while building" if building else "looked up, nothing building")
        gated_tls.release.set()
        return real_lookup(conn_id)

    monkeypatch.setattr("airflow_credits_provider.hooks.resolve.get_connection", lookup)
    hook = get_credit_hook("localleads_default")
    account = connections.state.localleads
    assert hook.get_balance().available == account.monthly + account.bonus - account.used
    assert order == ["looked up while building"]
    assert gated_tls.builds == [True]  # one build, released by the look-up it ran beside


def test_untrusted_certificate_is_a_clear_error_and_never_retried(
    tls_sandbox: tuple[SandboxServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = tls_sandbox
    server.state.set_key("localleads", CANARY)
    conn = server.connection("localleads", CANARY, **{**FAST_EXTRA, "max_retries": 3})
    monkeypatch.setenv("AIRFLOW_CONN_LOCALLEADS_DEFAULT", json.dumps(conn))
    waits: list[float] = []
    monkeypatch.setattr(CreditApiClient, "sleep", staticmethod(waits.append))
    with pytest.raises(UntrustedCertificateError) as caught:
        LocalLeadsHook().get_balance()
    message = str(caught.value)
    assert conn["host"].startswith("https://127.0.0.1:")
    assert f"The TLS certificate of LocalLeads at {conn['host']} did not verify" in message
    assert "self-signed certificate" in message or "self signed certificate" in message
    assert "SSL_CERT_FILE" in message
    assert not caught.value.retryable
    assert waits == []
    assert CANARY not in message
    assert CANARY not in repr(caught.value)
    assert server.state.requests_for("localleads") == []  # nothing was sent over the refused channel


LAND_OVER_HTTPS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
from airflow_credits_provider.hooks.localleads import LocalLeadsHook
landed = CreditTransactionsToSqlOperator(
    task_id="land", credit_conn_id="localleads_default", sql_conn_id="warehouse", table="ledger"
).execute({})
print(json.dumps({"landed": landed, "available": str(LocalLeadsHook().get_balance().available)}))
"""


def test_landing_over_https_trusts_ssl_cert_file_in_a_fresh_process(
    tls_sandbox: tuple[SandboxServer, Path], tmp_path: Path
) -> None:
    server, cert_file = tls_sandbox
    account = server.state.localleads
    account.monthly, account.used = Decimal(900), Decimal(123)
    env = subprocess_env(
        SSL_CERT_FILE=str(cert_file),
        AIRFLOW_CONN_LOCALLEADS_DEFAULT=json.dumps(server.connection("localleads", **FAST_EXTRA)),
        AIRFLOW_CONN_WAREHOUSE=json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}),
    )
    env.pop("SSL_CERT_DIR", None)
    out = subprocess.run(
        [sys.executable, "-c", LAND_OVER_HTTPS, str(ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.splitlines()[-1])
    assert result == {"landed": 250, "available": str(account.monthly + account.bonus - account.used)}
    paths = [r.path for r in server.state.requests_for("localleads")]
    assert paths.count("/api/v1/credits/transactions") == 3
    assert paths[-1] == "/api/v1/credits/balance"


def test_a_landing_from_an_untrusted_vendor_fails_without_the_tasks_retries(
    tls_sandbox: tuple[SandboxServer, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    server, _ = tls_sandbox
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOCALLEADS_DEFAULT", json.dumps(server.connection("localleads", **FAST_EXTRA))
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})
    )
    task = CreditTransactionsToSqlOperator(
        task_id="land", credit_conn_id="localleads_default", sql_conn_id="warehouse", retries=3
    )
    with pytest.raises(AirflowFailException, match="did not verify") as caught:  # fails: no retry helps
        task.execute({})
    assert isinstance(caught.value.__cause__, UntrustedCertificateError)
    assert server.state.requests_for("localleads") == []


LAND_WITH_BROKEN_TRUST = r"""
import sys
sys.path.insert(0, sys.argv[1])
from airflow_credits_provider.transfers.credit_transactions_to_sql import CreditTransactionsToSqlOperator
CreditTransactionsToSqlOperator(
    task_id="land", credit_conn_id="localleads_default", sql_conn_id="warehouse", table=sys.argv[2]
).execute({})
"""


@pytest.mark.parametrize("broken", ["missing", "not a bundle"])
def test_an_unusable_ssl_cert_file_is_named_not_blamed_on_the_database(
    sandbox: SandboxServer, tmp_path: Path, postgres_conn_uri: str, broken: str
) -> None:
    """Seen by a new user: a wrong SSL_CERT_FILE failed a landing into PostgreSQL as "rejected a row"."""
    bundle = tmp_path / "bundle.pem"
    if broken == "not a bundle":
        bundle.write_text("this is not a certificate\n")
    expected = (
        f"Could not load the CA bundle that verifies vendors' TLS certificates from SSL_CERT_FILE={bundle}"
    )
    env = subprocess_env(
        SSL_CERT_FILE=str(bundle),
        AIRFLOW_CONN_LOCALLEADS_DEFAULT=json.dumps(sandbox.connection("localleads", **FAST_EXTRA)),
        AIRFLOW_CONN_WAREHOUSE=postgres_conn_json(postgres_conn_uri),
    )
    table = f"tls_{abs(hash(broken)) % 10**8}"
    land = subprocess.run(
        [sys.executable, "-c", LAND_WITH_BROKEN_TRUST, str(ROOT), table],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert land.returncode != 0
    assert "AirflowFailException: " + expected in land.stderr  # config: no retries either
    assert "rejected a row" not in land.stderr
    assert "Exception in thread" not in land.stderr  # the background build says nothing of its own
    cli = subprocess.run(
        [sys.executable, "-m", "airflow_credits_provider.cli", "balance", "localleads_default"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 2  # the configuration, as a connection's own error is
    assert "Traceback" not in cli.stderr
    # One line of its own (Airflow 3.0 may log a warning of its own before it).
    [error] = [line for line in cli.stderr.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: {expected}")
