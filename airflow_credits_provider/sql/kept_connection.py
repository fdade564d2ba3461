"""One database connection per thread, kept open between transactions.

Opening a connection costs more than a reservation's whole transaction (an Airflow connection look-up,
a TCP and authentication handshake, session settings). A task reserves and releases; the triggerer and
a benchmark reserve many times: each thread keeps its connection and reuses it, and drops it after any
error, so the next transaction starts on a fresh one.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


class KeptConnection:
    """A connection per thread, opened on first use by ``open_conn`` and set up by ``on_open``.

    :param open_conn: opens a DB-API connection (a common-sql hook's ``get_conn``)
    :param on_open: runs once on each new connection (session settings)
    """

    def __init__(self, open_conn: Callable[[], Any], on_open: Callable[[Any], None] | None = None) -> None:
        self._open = open_conn
        self._on_open = on_open
        self._local = threading.local()
        self._conns: list[Any] = []  # every thread's: closed together when this object goes
        self._closer = weakref.finalize(self, _close_all, self._conns)

    def get(self) -> tuple[Any, bool]:
        """The thread's connection and whether it was used before (``False``: just opened)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        conn = self._open()
        try:
            if self._on_open is not None:
                self._on_open(conn)
        except BaseException:
            _close(conn)
            raise
        self._local.conn = conn
        self._conns.append(conn)
        return conn, False

    def discard(self) -> None:
        """Close the thread's connection (after an error: its state is unknown)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            self._conns.remove(conn)
            _close(conn)

    def close(self) -> None:
        """Close every thread's connection (they open again on next use)."""
        self._local = threading.local()
        _close_all(self._conns)


def _close_all(conns: list[Any]) -> None:
    while conns:
        _close(conns.pop())


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - already broken: nothing more to do with it
        pass


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` may mean a kept connection was closed under us (server restart, idle timeout).

    Drivers name these ``OperationalError`` or ``InterfaceError``; a caller retries once on a new
    connection, only before it changed anything.
    """
    return any(cls.__name__ in ("OperationalError", "InterfaceError") for cls in type(exc).__mro__)
