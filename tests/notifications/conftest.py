"""The notifiers' receivers, and the reservation database and sandbox account of the reservation tests."""

from __future__ import annotations

from tests.receivers import slack_webhook, smtp_inbox  # noqa: F401
from tests.reservations.conftest import leadmagic, reservation_tables  # noqa: F401
