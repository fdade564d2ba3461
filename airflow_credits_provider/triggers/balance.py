"""The trigger behind deferrable credit sensors: wait until a connection has enough credits."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_credits_provider.triggers.clock import TriggerClock, error_backoff

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from pendulum import DateTime

    from airflow_credits_provider.triggers.poller import SharedBalancePoller


class CreditBalanceTrigger(BaseTrigger):
    """Poll a credit connection until ``available >= required``, the deadline passes, or waiting cannot help.

    Serialises only primitives (never a key). Triggers in one triggerer that watch the same connection
    share one in-flight request and a cached balance (:class:`SharedBalancePoller`). Network errors,
    429 and 5xx answers back off exponentially and keep waiting; authentication, permission and
    configuration errors end the wait with an ``error`` event carrying the vendor's message.

    Events: ``{"status": "success", "balance": {...}, "estimate": {...}}``,
    ``{"status": "timeout", "message": ...}``, ``{"status": "error", "message": ..., "error_type": ...}``.

    :param credit_conn_id: the credit connection to watch
    :param required: credits needed (cost + margin), as a string or number
    :param poll_interval: seconds between balance checks
    :param deadline: ISO 8601 time after which the wait times out (``None``: no deadline)
    :param not_before: ISO 8601 time before which no check is made (a known credit renewal)
    The trigger reads time and waits through :attr:`clock` (a :class:`TriggerClock`).

    :param estimate: what the deferring task needs back with the success event (the sensor's cost,
        margin and basis, so that resuming does not estimate again, and a partial run's ``plan``,
        :meth:`UnitPlan.to_dict() <airflow_credits_provider.partial.UnitPlan.to_dict>`)
    """

    clock: ClassVar[TriggerClock] = TriggerClock()

    def __init__(
        self,
        credit_conn_id: str,
        required: str | int | Decimal,
        poll_interval: float = 60.0,
        deadline: str | None = None,
        not_before: str | None = None,
        estimate: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.credit_conn_id = credit_conn_id
        self.required = str(required)
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.not_before = not_before
        self.estimate = estimate

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Class path and primitive kwargs, stored in the metadata database."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "credit_conn_id": self.credit_conn_id,
                "required": self.required,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "not_before": self.not_before,
                "estimate": self.estimate,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until a terminal event, then return."""
        from airflow_credits_provider.decision import is_fatal
        from airflow_credits_provider.errors import CreditProviderError
        from airflow_credits_provider.triggers.poller import SharedBalancePoller

        required = Decimal(self.required)
        deadline = _parse(self.deadline)
        not_before = _parse(self.not_before)
        clock = self.clock
        poller = SharedBalancePoller.acquire(self.credit_conn_id)
        failures = 0
        try:
            while True:
                now = clock.now()
                if deadline is not None and now >= deadline:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": f"Still not {self.required} credits on connection "
                            f"{self.credit_conn_id!r} at the deadline {deadline.isoformat()}.",
                        }
                    )
                    return
                if not_before is not None and now < not_before:
                    await self._sleep((not_before - now).total_seconds(), deadline)
                    continue
                try:
                    event = await self._check(poller, required)
                except CreditProviderError as exc:
                    if is_fatal(exc):
                        yield TriggerEvent(
                            {"status": "error", "message": str(exc), "error_type": type(exc).__name__}
                        )
                        return
                    failures += 1
                    delay = error_backoff(self.poll_interval, failures)
                    self.log.warning(
                        "Balance check failed (%s); waiting %.1fs before the next one", exc, delay
                    )
                    await self._sleep(delay, deadline)
                    continue
                failures = 0
                if event is not None:
                    yield event
                    return
                await self._sleep(self.next_wait(), deadline)
        finally:
            await poller.release()

    async def _check(self, poller: SharedBalancePoller, required: Decimal) -> TriggerEvent | None:
        """One check: the success event, or ``None`` to wait; vendor errors raise."""
        balance = await poller.get(max_age=self.poll_interval, clock=self.clock)
        if balance.available >= required:
            return TriggerEvent(
                {"status": "success", "balance": balance.to_dict(), "estimate": self.estimate}
            )
        self.log.info(
            "%s: %s credits available, %s required; checking again in %ss",
            self.credit_conn_id,
            balance.available,
            self.required,
            self.poll_interval,
        )
        return None

    def next_wait(self) -> float:
        """Seconds until the next check after one that found too few credits."""
        return float(self.poll_interval)

    async def _sleep(self, seconds: float, deadline: DateTime | None) -> None:
        """Wait ``seconds``, but not past ``deadline``."""
        if deadline is not None:
            seconds = min(seconds, (deadline - self.clock.now()).total_seconds())
        await self.clock.sleep(max(0.0, seconds))


def _parse(value: str | None) -> DateTime | None:
    if value is None:
        return None
    import pendulum

    parsed = pendulum.parse(value)
    assert isinstance(parsed, pendulum.DateTime)
    return parsed
