"""Real receivers for the notifiers: an SMTP server (aiosmtpd) and a Slack-webhook-like HTTP endpoint.

The fixtures are imported by the conftest of the tests that use them.
"""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage

SMTP_CONN = "smtp_alerts"
SLACK_CONN = "slack_alerts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """An SMTP server on 127.0.0.1 that keeps every message; it can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def bodies(self) -> list[str]:
        """Every message's subject and decoded body."""
        out = []
        for message in self.received:
            parts = [p.get_content() for p in message.walk() if p.get_content_maintype() == "text"]
            out.append(str(message["Subject"]) + "\n" + "\n".join(parts))
        return out


@pytest.fixture
def smtp_inbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """A running SMTP server and the ``smtp_alerts`` connection to it (no TLS, no retries)."""
    inbox = Inbox()
    inbox.start()
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "credits@example.com", "retry_limit": 1,
             "timeout": 5}  # fmt: skip
    conn = {"conn_type": "smtp", "host": "127.0.0.1", "port": inbox.port, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{SMTP_CONN.upper()}", json.dumps(conn))
    yield inbox
    inbox.stop()


class Webhook:
    """A Slack-webhook-like endpoint on 127.0.0.1: keeps each posted JSON body, answers ``ok``."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.paths: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                hook.posted.append(json.loads(self.rfile.read(length) or b"{}"))
                hook.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@pytest.fixture
def slack_webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    """A running webhook receiver and the ``slack_alerts`` connection to it."""
    hook = Webhook()
    conn = {
        "conn_type": "slackwebhook",
        "host": f"{hook.url}/services",
        "password": "T000/B000/webhook-secret",
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{SLACK_CONN.upper()}", json.dumps(conn))
    yield hook
    hook.stop()
