"""The sandbox's SMTP inbox: a real SMTP server on 127.0.0.1 that keeps the alerts sent to it.

Airflow's ``SmtpNotifier`` sends to it through the ``credits_smtp`` connection that ``airflow-credits
sandbox`` prints; ``GET /_sandbox/inbox`` on the sandbox lists what arrived (sender, recipients,
subject and text). It needs ``aiosmtpd`` (installed with the provider's ``dev`` extra, or ``pip install
aiosmtpd``); without it the sandbox runs without an inbox and says so.
"""

from __future__ import annotations

import importlib.util
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_credits_provider.sandbox.state import SandboxState

#: The SMTP connection of the sandbox's inbox, as the example alert rules name it.
INBOX_CONN_ID = "credits_smtp"


class SandboxInbox:
    """An SMTP server on ``host`` that appends every message it receives to ``state.inbox``.

    :param state: the sandbox state whose ``inbox`` list receives the messages
    :param port: the port (0 picks a free one)
    """

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state
        self.host = host
        self.port = port or _free_port(host)
        self._controller: Any = None

    @staticmethod
    def available() -> bool:
        """Whether ``aiosmtpd`` is installed."""
        return importlib.util.find_spec("aiosmtpd") is not None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        """Keep the message (aiosmtpd's handler hook)."""
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        text = [_readable(part) for part in message.walk() if part.get_content_maintype() == "text"]
        with self.state.lock:
            self.state.inbox.append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "subject": str(message["Subject"] or ""),
                    "text": "\n".join(text),
                }
            )
        return "250 OK"

    def start(self) -> SandboxInbox:
        """Serve in aiosmtpd's thread."""
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def connection(self) -> dict[str, Any]:
        """Airflow's SMTP connection (JSON form) to this inbox: no TLS, no login."""
        extra = {"disable_ssl": True, "disable_tls": True, "from_email": "credits-sandbox@example.com",
                 "retry_limit": 1, "timeout": 10}  # fmt: skip
        return {"conn_type": "smtp", "host": self.host, "port": self.port, "extra": extra}


def _readable(part: Any) -> str:
    """A text part as a person reads it: HTML without its tags and entities, one kind of line end."""
    import html
    import re

    text = str(part.get_content()).replace("\r\n", "\n")
    if part.get_content_subtype() == "html":
        text = html.unescape(re.sub(r"<[^>]+>", " ", text)).strip()
        text = re.sub(r"[ \t]+", " ", text)
    return text


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
