"""Alert rules and when they are due: pure rules, no database (airflow_credits_provider.alerts)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from airflow_credits_provider.alerts import (
    AlertRule,
    below,
    budget_crossings,
    budget_forecast_crossings,
    dip_crossing,
    expiring_credits,
    thresholds_text,
)
from airflow_credits_provider.budgets import Budget, BudgetState
from airflow_credits_provider.errors import AlertRuleError

GOOD = {"name": "growth-80", "kind": "budget", "subject": "growth", "thresholds": [80], "notifier": "smtp"}


def rule(**fields: Any) -> AlertRule:
    return AlertRule.parse(**{**GOOD, **fields})


def state(spent: str, held: str = "0", cap: str = "1000", now: datetime | None = None) -> BudgetState:
    budget = Budget.parse(name="growth", account="lm", cap=cap)
    start, end = budget.period_bounds(now or datetime(2026, 12, 10, tzinfo=timezone.utc))
    return BudgetState(budget, start, end, Decimal(spent), Decimal(held))


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"kind": "weekly"},
            "kind must be one of budget, budget_forecast, balance, depleted, runway, expiring",
        ),
        ({"thresholds": [-5]}, "threshold -5 is not a positive number"),
        ({"thresholds": ["lots"]}, "threshold 'lots' is not a positive number"),
        ({"thresholds": [0]}, "threshold 0 is not a positive number"),
        ({"thresholds": []}, "a budget rule needs at least one threshold (percent)"),
        ({"thresholds": [80, "80.0"]}, "a threshold is listed twice"),
        ({"thresholds": ["20%"]}, "only an expiring rule takes a percentage"),
        ({"thresholds": [5000]}, "threshold '5000' is more than 1000%"),
        ({"kind": "depleted", "subject": "lm", "thresholds": [5]}, "a depleted rule takes no thresholds"),
        ({"notifier": "mail"}, "notifier must be smtp, slack_webhook or the import path"),
        ({"notifier_args": ["to"]}, "notifier_args must be a mapping"),
        ({"subject": ""}, "budget must be a non-empty name"),
        ({"recovered": "yes"}, "recovered must be true or false"),
    ],
)
def test_bad_rules_say_what_is_wrong(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(AlertRuleError) as info:
        rule(**fields)
    assert problem in str(info.value)
    assert str(info.value).startswith("Alert rule 'growth-80': ")


def test_thresholds_are_read_exactly_sorted_and_shown_in_their_unit() -> None:
    assert rule(thresholds=["100", 50, 80.5]).thresholds == ("50", "80.5", "100")
    assert thresholds_text(rule(thresholds=[50, 80])) == "50%, 80% of the cap"
    balance = rule(kind="balance", subject="lm", thresholds=[1000, "250.5"])
    assert thresholds_text(balance) == "below 250.5, 1,000 credits"
    expiring = rule(kind="expiring", subject="lm", thresholds=["20%", 5000])
    assert expiring.thresholds == ("20%", "5000")
    assert rule(notifier="slack_webhook").notifier_path.endswith("slack_webhook.SlackWebhookNotifier")


def test_a_budget_threshold_is_reached_exactly_and_the_message_has_the_numbers() -> None:
    r = rule(thresholds=[50, 80])
    assert budget_crossings(r, state("799.99")) == [budget_crossings(r, state("799.99"))[0]]
    assert [c.threshold for c in budget_crossings(r, state("500", held="299.99"))] == ["50"]
    (fifty, eighty) = budget_crossings(r, state("700", held="100"))
    assert eighty.key == ("growth-80", "growth", "80", "2026-12-01T00:00:00+00:00", "crossed")
    assert eighty.title == "Budget 'growth' reached 80% of its cap"
    assert "has used 800 of 1,000 credits (80%) this month: 700 spent and 100 held" in eighty.text
    assert "renews 2027-01-01 00:00 UTC" in eighty.text
    assert "airflow-credits budgets set growth --cap" in eighty.text
    assert eighty.facts["remaining"] == "200"
    assert fifty.period == eighty.period
    # A share that is no finite decimal (11 of 30) is shown to a tenth; the threshold is still exact.
    (third,) = budget_crossings(rule(thresholds=["36.6"]), state("11", cap="30"))
    assert "has used 11 of 30 credits (36.7%)" in third.text
    assert budget_crossings(rule(thresholds=["36.7"]), state("11", cap="30")) == []


def test_a_forecast_waits_for_a_trend_and_says_the_projection() -> None:
    r = rule(kind="budget_forecast", thresholds=[100])
    early = datetime(2026, 12, 2, tzinfo=timezone.utc)  # 1 day of 31: less than a twentieth
    assert budget_forecast_crossings(r, state("200", now=early), early) == []
    mid = datetime(2026, 12, 11, tzinfo=timezone.utc)  # 10 days in: 400 used -> 1,240 by the renewal
    (due,) = budget_forecast_crossings(r, state("400", now=mid), mid)
    assert due.facts["projected"] == "1240"
    assert "will spend about 1,240 of its 1,000 credits before it renews" in due.text
    # Past the line already: that is a budget alert's business, not a forecast's.
    assert budget_forecast_crossings(r, state("1000", now=mid), mid) == []
    assert budget_forecast_crossings(r, state("300", now=mid), mid) == []  # 930 by the renewal
    naive = mid.replace(tzinfo=None)  # the store's clock
    assert budget_forecast_crossings(r, state("400", now=mid), naive) == [due]


def test_what_is_past_each_threshold_for_each_kind() -> None:
    balance = rule(kind="balance", subject="lm", thresholds=[100, 1000])
    assert below(balance, Decimal("999.99")) == {"100": False, "1000": True}
    assert below(balance, Decimal(100)) == {"100": False, "1000": True}
    depleted = rule(kind="depleted", subject="lm", thresholds=[])
    assert below(depleted, Decimal(0)) == {"": True}
    assert below(depleted, Decimal("0.01")) == {"": False}
    runway = rule(kind="runway", subject="lm", thresholds=[7])
    assert below(runway, Decimal("6.9")) == {"7": True}
    assert below(runway, None) == {"7": False}  # no forecast, or renewed first: not short
    expiring = rule(kind="expiring", subject="lm", thresholds=["20%", 5000])
    assert below(expiring, Decimal(2000), plan=Decimal(10000)) == {"20%": True, "5000": False}
    assert below(expiring, Decimal(2000), plan=None) == {"20%": False, "5000": False}


def test_credits_left_at_the_renewal_leave_out_what_carries_over() -> None:
    assert expiring_credits(Decimal(10000), Decimal(200), Decimal(10), carried=Decimal(1000)) == Decimal(7000)
    assert expiring_credits(Decimal(1000), Decimal(200), Decimal(10)) == Decimal(0)


def test_dip_messages_say_what_to_do_and_recoveries_say_it_is_armed_again() -> None:
    balance = rule(kind="balance", subject="lm", thresholds=[500])
    crossed = dip_crossing(
        balance, "500", 3, "crossed", Decimal(420), {"renews_at": "2027-01-01T00:00:00+00:00"}
    )
    assert crossed.period == "dip-3"
    assert crossed.title == "Account 'lm' is below 500 free credits"
    assert "Account 'lm' has 420 free credits" in crossed.text
    assert "renews 2027-01-01" in crossed.text
    back = dip_crossing(balance, "500", 3, "recovered", Decimal(900), {})
    assert back.key == ("growth-80", "lm", "500", "dip-3", "recovered")
    assert "is back above 500 free credits: 900 free credits" in back.text
