"""The sandbox HTTP server: every vendor under its own prefix on one port, plus a control API.

``http://127.0.0.1:<port>/leadmagic/v1/credits`` is LeadMagic's ``/v1/credits``, and so on; a
connection's host is ``http://127.0.0.1:<port>/<vendor>``. ``/_sandbox/...`` changes state from another
process (see :mod:`airflow_credits_provider.sandbox`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from airflow_credits_provider.sandbox.emulators.base import Reply, Request, registered_emulators
from airflow_credits_provider.sandbox.state import RecordedRequest, SandboxState

if TYPE_CHECKING:
    import ssl

_HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY each keep-alive response stalls ~40 ms on loopback (Nagle + delayed ACK).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Stay quiet: request lines can carry query-parameter keys."""

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        parts = split.path.split("/", 2)
        prefix = parts[1] if len(parts) > 1 else ""
        rest = "/" + (parts[2] if len(parts) > 2 else "")
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        if prefix == "_sandbox":
            self._send(self._control(self.command, rest, body))
            return
        emulators = self.server.emulators
        if prefix not in emulators:
            self._send(
                Reply(404, {"error": f"no sandbox vendor {prefix!r}; use one of {', '.join(emulators)}"})
            )
            return
        state = self.server.state
        in_flight = state.begin_answer()
        try:
            self._answer(prefix, rest, query, body, in_flight)
        finally:
            state.end_answer()

    def _answer(self, prefix: str, rest: str, query: dict[str, str], body: bytes, in_flight: int) -> None:
        emulator = self.server.emulators[prefix]
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        recorded = RecordedRequest(
            prefix, self.command, rest, query, headers, self.client_address[1], time.monotonic(), in_flight
        )
        state.record(recorded)
        delay = state.answer_delay()
        if delay:
            time.sleep(delay)  # the network's round trip; this thread only, as on a real server
        request = Request(prefix, self.command, rest, query, headers, body)
        fault = state.take_fault(prefix, rest)
        kind = fault.kind if fault else None
        recorded.fault = kind
        if fault is not None and kind == "slow":
            time.sleep(fault.delay)
        if fault is not None and kind == "drop":
            self.close_connection = True
            return
        if fault is not None and kind == "status":
            self._send(emulator.error(fault.status, state, style=fault.error_style))
            return
        if fault is not None and kind == "rate_limit":
            reply = emulator.error(429, state, style=fault.error_style)
            if fault.retry_after is not None:
                reply.headers["Retry-After"] = fault.retry_after
            self._send(reply)
            return
        if fault is not None and kind == "html":
            self._send(Reply(fault.status if fault.status != 500 else 502, _HTML_PAGE, {}, "text/html"))
            return
        reply = emulator.handle(request, state)
        if fault is not None and kind == "wrong_types" and reply.status == 200:
            reply.body = emulator.corrupt(reply.body)
        if fault is not None and kind == "short_page" and isinstance(reply.body, dict):
            rows = reply.body.get("data")
            if isinstance(rows, list):
                reply.body = {**reply.body, "data": rows[: fault.count]}
        if fault is not None and kind == "grow_ledger":
            with state.lock:
                state.ledger.grow(fault.count)
        if fault is not None and kind == "truncated":
            encoded = reply.encoded()
            reply.body = encoded[: max(1, len(encoded) // 2)]
        if fault is not None and kind == "cut":
            self._send(reply, cut=True)
            return
        self._send(reply)

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        state = self.server.state
        try:
            data = json.loads(body or b"{}")
            if (method, path) == ("GET", "/health"):
                return Reply(200, {"status": "ok"})
            if (method, path) == ("GET", "/state"):
                return Reply(200, state.snapshot())
            if method in ("POST", "PATCH") and path.startswith("/state/"):
                state.update(path.removeprefix("/state/"), data)
                return Reply(200, state.snapshot())
            if (method, path) == ("POST", "/faults"):
                return Reply(201, asdict(state.inject(**data)))
            if (method, path) == ("DELETE", "/faults"):
                state.clear_faults()
                return Reply(200, {"faults": []})
            if (method, path) == ("POST", "/ledger"):
                with state.lock:
                    if "size" in data:
                        state.ledger.size = int(data["size"])
                    state.ledger.grow(int(data.get("grow", 0)))
                return Reply(200, {"ledger_size": len(state.ledger)})
            if (method, path) == ("GET", "/requests"):
                return Reply(
                    200,
                    [
                        {
                            "vendor": r.vendor,
                            "method": r.method,
                            "path": r.path,
                            "query": r.query,
                            "at": r.at,
                            "in_flight": r.in_flight,
                            "fault": r.fault,
                        }
                        for r in state.requests_for()
                    ],
                )
            if (method, path) == ("POST", "/latency"):
                state.set_latency(data.get("seconds", 0.0), data.get("jitter", 0.0))
                return Reply(200, {"seconds": state.latency, "jitter": state.latency_jitter})
            if (method, path) == ("GET", "/latency"):
                return Reply(200, {"seconds": state.latency, "jitter": state.latency_jitter})
            if (method, path) == ("GET", "/inbox"):
                with state.lock:
                    return Reply(200, list(state.inbox))
            if (method, path) == ("DELETE", "/inbox"):
                with state.lock:
                    state.inbox.clear()
                return Reply(200, {"inbox": 0})
            if (method, path) == ("DELETE", "/requests"):
                state.clear_requests()
                return Reply(200, {"requests": 0})
        except (ValueError, TypeError, KeyError) as exc:
            return Reply(400, {"error": str(exc)})
        return Reply(404, {"error": f"no control endpoint {method} {path}"})

    def _send(self, reply: Reply, *, cut: bool = False) -> None:
        payload = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        if cut:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of clients (the Credits page asks
    # every connection at once), which the client's kernel retries a second later: a stall no real
    # vendor API has.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        super().__init__(address, _Handler)
        self.state = state
        self.emulators = registered_emulators()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up before its answer (a timeout, a slow fault) is normal: say nothing."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class SandboxServer:
    """A real HTTP server on 127.0.0.1 emulating LeadMagic, LocalLeads and TrueMail.

    Use it as a context manager (or :meth:`start` / :meth:`stop`)::

        with SandboxServer() as sandbox:
            os.environ.update(sandbox.airflow_env())
            LeadMagicHook().get_balance()

    :param state: the state to serve (a fresh :class:`SandboxState` by default)
    :param host: address to bind; keep it on loopback
    :param port: port to bind (0 picks a free one)
    :param tls: serve HTTPS with this server-side context (its certificate must name ``host``)
    """

    def __init__(
        self,
        state: SandboxState | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.state = state or SandboxState()
        self._server = _Server((host, port), self.state)
        self._tls = tls
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's root URL."""
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host!s}:{port}"

    def base_url(self, vendor: str) -> str:
        """The base URL to put in a ``vendor`` connection's host field."""
        return f"{self.url}/{vendor}"

    def connection(self, vendor: str, key: str | None = None, **extra: Any) -> dict[str, Any]:
        """An Airflow connection (JSON form) for ``vendor`` pointing at this sandbox.

        ``vendor`` is a named vendor or a generic preset (a ``credit_api`` connection with that preset).
        """
        preset = registered_emulators()[vendor].preset
        if preset:
            extra = {"preset": vendor, **extra}
        return {
            "conn_type": "credit_api" if preset else vendor,
            "host": self.base_url(vendor),
            "password": key or registered_emulators()[vendor].default_key,
            "extra": {
                "timeout": 10,
                "max_retries": 2,
                "retry_initial_wait": 0.05,
                "max_retry_wait": 1,
                **extra,
            },
        }

    def connections(self, generic_preset: str = "zerobounce") -> dict[str, dict[str, Any]]:
        """The default connection ids and their connections (JSON form), pointing at this sandbox.

        ``leadmagic_default``, ``localleads_default``, ``truemail_default``, and ``credit_api_default``
        (a generic connection using ``generic_preset``).
        """
        conns = {
            f"{vendor}_default": self.connection(vendor)
            for vendor, emulator in registered_emulators().items()
            if not emulator.preset
        }
        conns["credit_api_default"] = self.connection(generic_preset)
        return conns

    def airflow_env(self, generic_preset: str = "zerobounce") -> dict[str, str]:
        """``AIRFLOW_CONN_*`` variables for :meth:`connections`."""
        return {
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
            for conn_id, conn in self.connections(generic_preset).items()
        }

    def start(self) -> SandboxServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="credits-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._server.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
