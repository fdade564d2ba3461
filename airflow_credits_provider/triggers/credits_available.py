"""CreditsAvailableTrigger: an event trigger for ``AssetWatcher``: schedule a DAG when credits arrive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_credits_provider.triggers.clock import TriggerClock, error_backoff

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Hashable
    from decimal import Decimal
    from logging import Logger

    from airflow_credits_provider.arrival import ArrivalRule, WatchState
    from airflow_credits_provider.models import CreditBalance

#: Prefix of the asset-state-store keys the trigger keeps its state under (one key per rule).
STATE_KEY_PREFIX = "airflow_credits_provider.credits_available"


class CreditsAvailableTrigger(BaseEventTrigger):
    """Fire once each time a credit connection's available credits arrive: reach a threshold, or rise.

    For ``AssetWatcher``: a DAG scheduled on the watched asset runs once per arrival (after a monthly
    reset or a top-up), instead of polling on a cron. With ``threshold`` it fires when the balance rises
    from below the threshold to at least it, and not again until it has dropped below; with ``rise_by``
    it fires when the balance is that much above the lowest balance seen since it last fired (see
    :mod:`airflow_credits_provider.arrival`).

    It remembers what it has seen across triggerer restarts in Airflow's asset state store (Airflow
    3.3+), so a restart neither fires again for a balance it already fired for nor misses a crossing
    that happened while the triggerer was down. Older Airflow versions have no store: after a restart
    the first balance seen is the new starting point (``fire_on_start`` decides whether a balance
    already at the threshold fires).

    Watchers of one connection with the same ``poll_interval`` make one balance request per interval:
    on Airflow 3.3+ through the triggerer's shared streams (one poll, fanned out), on older versions
    through the provider's shared poller. Errors never end the watch: network errors, 429 and 5xx back
    off (up to 10 minutes); a rejected key or a broken connection is logged as an error and the
    connection is read again on the next attempt, so fixing it resumes the watch.

    Its kwargs are the connection id and the rule: never a key.

    Event payload (the asset event's ``extra``): ``credit_conn_id``, ``vendor``, ``vendor_name``,
    ``available``, ``previous`` (the balance seen before; absent on a first balance that fires),
    ``threshold`` or ``rise_by`` (the rule's one), ``fetched_at``; amounts as exact decimal strings,
    no null values.

    :param credit_conn_id: the credit connection to watch (any vendor)
    :param threshold: fire when available credits reach this many (from below)
    :param rise_by: or fire when they rise by this many (exactly one of the two)
    :param poll_interval: seconds between balance checks
    :param fire_on_start: with ``threshold``, also fire when the first balance ever seen is already at
        or above it (default: that balance is only the starting point)
    """

    clock: ClassVar[TriggerClock] = TriggerClock()

    def __init__(
        self,
        credit_conn_id: str,
        threshold: str | int | Decimal | None = None,
        rise_by: str | int | Decimal | None = None,
        poll_interval: float = 60.0,
        fire_on_start: bool = False,
    ) -> None:
        super().__init__()
        if not float(poll_interval) > 0:
            raise ValueError(f"poll_interval must be a positive number of seconds, got {poll_interval!r}")
        self.credit_conn_id = credit_conn_id
        self.threshold = None if threshold is None else str(threshold)
        self.rise_by = None if rise_by is None else str(rise_by)
        self.poll_interval = float(poll_interval)
        self.fire_on_start = bool(fire_on_start)
        self.rule()  # a bad rule fails when the DAG is parsed

    def rule(self) -> ArrivalRule:
        """The arrival rule of this trigger's kwargs."""
        from airflow_credits_provider.arrival import ArrivalRule
        from airflow_credits_provider.parsing import to_amount

        return ArrivalRule(
            threshold=None if self.threshold is None else to_amount(self.threshold, "threshold"),
            rise_by=None if self.rise_by is None else to_amount(self.rise_by, "rise_by"),
            fire_on_start=self.fire_on_start,
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and primitive kwargs (no key)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "credit_conn_id": self.credit_conn_id,
                "threshold": self.threshold,
                "rise_by": self.rise_by,
                "poll_interval": self.poll_interval,
                "fire_on_start": self.fire_on_start,
            },
        )

    def shared_stream_key(self) -> Hashable | None:
        """Watchers of one connection at one interval share one poll (Airflow 3.3+)."""
        return (STATE_KEY_PREFIX, self.credit_conn_id, self.poll_interval)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        """The connection's balance every ``poll_interval`` seconds, forever (one poll per group)."""
        import logging

        log = logging.getLogger(f"{cls.__module__}.{cls.__qualname__}")
        async for balance in poll_balances(
            str(kwargs["credit_conn_id"]), float(kwargs["poll_interval"]), cls.clock, log
        ):
            yield balance

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Turn balances into this watcher's arrival events, keeping its state in the asset state store."""
        rule = self.rule()
        store = _WatchStateStore(self)
        state = await store.load()
        self.log.info(
            "Watching %s for credits to %s (every %ss)%s",
            self.credit_conn_id,
            rule.describe(),
            self.poll_interval,
            "" if state is None else f"; last seen {state.last.normalize():f}",
        )
        async for balance in shared_stream:
            fired, new_state = rule.observe(state, balance.available)
            if fired:
                self.log.info("Credits arrived on %s: %s available", self.credit_conn_id, balance.available)
                yield TriggerEvent(self._payload(balance, state))
            if new_state != state:
                await store.save(new_state)  # after the event: a crash in between fires again, never misses
                state = new_state

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Without shared streams (Airflow before 3.3): the same filter over the provider's shared poller."""
        async for event in self.filter_shared_stream(
            poll_balances(self.credit_conn_id, self.poll_interval, self.clock, self.log)
        ):
            yield event

    def _payload(self, balance: CreditBalance, before: WatchState | None) -> dict[str, Any]:
        # No None values: a task that returns the payload with multiple_outputs pushes each key as an
        # XCom, and Airflow 3.0's execution API rejects a null XCom body (422).
        payload = {
            "credit_conn_id": self.credit_conn_id,
            "vendor": balance.vendor,
            "vendor_name": balance.vendor_name,
            "available": str(balance.available),
            "previous": None if before is None else str(before.last),
            "threshold": self.threshold,
            "rise_by": self.rise_by,
            "fetched_at": balance.fetched_at.isoformat(),
        }
        return {key: value for key, value in payload.items() if value is not None}


async def poll_balances(
    conn_id: str, interval: float, clock: TriggerClock, log: Logger | Any
) -> AsyncIterator[CreditBalance]:
    """Yield ``conn_id``'s balance every ``interval`` seconds, forever; errors back off and never end it.

    Through :class:`~airflow_credits_provider.triggers.poller.SharedBalancePoller`: every loop of one
    connection in one event loop shares a request and a balance younger than ``interval``.
    """
    from airflow_credits_provider.decision import is_fatal
    from airflow_credits_provider.errors import CreditProviderError
    from airflow_credits_provider.triggers.poller import SharedBalancePoller

    poller = SharedBalancePoller.acquire(conn_id)
    failures = 0
    try:
        while True:
            try:
                balance = await poller.get(max_age=interval, clock=clock)
            except CreditProviderError as exc:
                failures += 1
                delay = error_backoff(interval, failures)
                if is_fatal(exc):
                    # A rejected key or a broken connection: say so loudly, read the connection afresh
                    # next time (it may have been fixed), and keep watching.
                    log.error("Balance check of %s failed: %s; retrying in %.0fs", conn_id, exc, delay)
                    await poller.reset()
                else:
                    log.warning("Balance check of %s failed (%s); retrying in %.1fs", conn_id, exc, delay)
                await clock.sleep(delay)
                continue
            if failures:
                log.info(
                    "Balance check of %s works again after %d failed attempt(s): %s credits available",
                    conn_id,
                    failures,
                    balance.available,
                )
            failures = 0
            yield balance
            await clock.sleep(interval)
    finally:
        await poller.release()


class _WatchStateStore:
    """A watcher's :class:`WatchState` in Airflow 3.3's asset state store, or in memory without one."""

    def __init__(self, trigger: CreditsAvailableTrigger) -> None:
        self._trigger = trigger
        self._accessors = getattr(trigger, "asset_state_store", None)  # injected by the 3.3+ triggerer
        rule = (
            f"threshold={trigger.threshold}"
            if trigger.threshold is not None
            else f"rise_by={trigger.rise_by}"
        )
        self.key = f"{STATE_KEY_PREFIX}:{trigger.credit_conn_id}:{rule}"

    async def load(self) -> WatchState | None:
        from airflow_credits_provider.arrival import WatchState

        if self._accessors is None:
            return None
        try:
            return WatchState.from_json(await self._accessors.aget(self.key))
        except ValueError as exc:  # watched by several assets: the store needs one; keep state in memory
            self._trigger.log.warning("Not keeping the watch state across restarts: %s", exc)
            self._accessors = None
            return None

    async def save(self, state: WatchState) -> None:
        if self._accessors is not None:
            await self._accessors.aset(self.key, state.to_json())
