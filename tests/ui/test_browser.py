"""The Credits pages in a real browser: Debian's chromium driven by playwright (no browser download).

Logs in through the simple auth manager's own form, opens "Credits" from the UI's navigation (the page
is shown in the UI's frame), and checks what each role sees: every
sandbox vendor's balance, a failing vendor's row, the chart with the landed points, a reservation
appearing after a reserving run, LocalLeads' renewal on its account page (the verdict and the chart's
line), the run's Credits tab, a viewer's filtered view, and dark mode.

With ``CREDITS_SCREENSHOTS=<dir>`` (``make screenshots``) the pages are saved there as PNG for the docs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.processes import CHROMIUM, CHROMIUM_ARGS
from tests.ui.stack import REJECTED

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.ui.stack import UiStack

pytestmark = pytest.mark.integration

SHOTS = os.environ.get("CREDITS_SCREENSHOTS")


def _airflow_has_plugin_views() -> bool:
    from importlib.metadata import version

    major, minor = (int(part) for part in version("apache-airflow").split(".")[:2])
    return (major, minor) >= (3, 1)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not _airflow_has_plugin_views():
        pytest.skip("Airflow 3.0 has no plugin views: the Credits pages are served as JSON only there")
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        message = "needs Debian's chromium (apt-get install chromium); .ci/run installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _login(browser: Any, stack: UiStack, user: str, **context: Any) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{stack.base}/", wait_until="networkidle")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", f"{user}-pw")
    page.click("button[type=submit]")
    page.get_by_role("link", name="Credits").wait_for()
    return page


def _open_credits(page: Any) -> Any:
    page.get_by_role("link", name="Credits").click()
    frame = page.frame_locator("iframe")
    frame.locator("h1", has_text="Credits").wait_for()
    return frame


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def test_op_sees_every_balance_a_failing_row_and_a_new_reservation(browser: Any, ui_stack: UiStack) -> None:
    page = _login(browser, ui_stack, "op")
    frame = _open_credits(page)
    rows = frame.locator("#accounts tbody tr")
    ids = [rows.nth(i).get_attribute("data-conn-id") for i in range(rows.count())]
    assert ids == sorted(
        ["credit_api_default", "leadmagic_default", "localleads_default", REJECTED, "truemail_default"]
    )
    state = ui_stack.sandbox.state
    leadmagic = frame.locator("tr[data-conn-id=leadmagic_default]")
    assert leadmagic.locator("td.available").inner_text() == f"{state.leadmagic.credits.normalize():,f}"
    assert leadmagic.locator("svg.spark polyline").count() == 1  # the landed history's sparkline
    rejected = frame.locator(f"tr[data-conn-id={REJECTED}] td.error")
    assert "rejected the API key" in rejected.inner_text()
    holds_before = _holds(leadmagic.locator("td.held").inner_text())

    run_id = ui_stack.dags_test("credits_ui_hold")  # a run that reserves 44 credits and keeps them
    page.reload(wait_until="networkidle")
    frame = page.frame_locator("iframe")
    held = frame.locator("tr[data-conn-id=leadmagic_default] td.held")
    held.wait_for()
    assert _holds(held.inner_text()) == (holds_before[0] + 44, holds_before[1] + 1)
    _shot(page, "overview")

    frame.get_by_role("link", name="leadmagic_default").click()
    frame.locator("#history-chart svg").wait_for()
    chart = frame.locator("#history-chart svg")
    assert chart.locator("circle.point").count() in (14, 15)  # two weeks of hourly snapshots, per day
    assert chart.locator("path.refill").count() == 1  # the top-up
    assert chart.locator("line.projection").count() == 1  # the runway to zero
    reservation = frame.locator("#reservations tbody tr", has_text=run_id)
    assert reservation.count() == 1
    assert "credits_ui_hold" in reservation.inner_text()
    # The budget's alert rule fired with this account's first budget reservation; its SMTP connection
    # does not exist, so the page shows it failed, with the error and the next attempt.
    alert = frame.locator("#alerts tbody tr", has_text="ui-team-used")
    assert alert.count() == 1
    assert "Budget 'ui-team' reached 1% of its cap" in alert.inner_text()
    assert alert.locator("td.alert-failed").inner_text().startswith("failed (1 try; next ")
    _shot(page, "account")

    # LocalLeads reports when it renews: the account page says whether it runs dry first, and the
    # chart draws the renewal on the runway.
    page.goto(f"{ui_stack.base}/", wait_until="networkidle")  # a reload would keep the frame's page
    frame = _open_credits(page)
    frame.get_by_role("link", name="localleads_default").click()
    verdict = frame.locator("#renewal-verdict")
    verdict.wait_for()
    assert verdict.inner_text().startswith("renews ")
    renewal = frame.locator("#history-chart svg line.renewal")
    assert renewal.count() == 1
    assert (renewal.locator("title").text_content() or "").startswith("renews ")
    _shot(page, "account-renewal")

    page.goto(f"{ui_stack.base}/dags/credits_ui_hold/runs/{run_id}", wait_until="networkidle")
    page.locator("a[href$='/plugin/credits_run']").click()  # the run's "Credits" tab
    tab = page.frame_locator("iframe")
    decisions = tab.locator("#decisions tbody tr")
    decisions.first.wait_for()
    assert "passed" in decisions.first.inner_text()
    assert tab.locator("#reservations tbody tr").inner_text().split("\t")[2].strip() == "44"
    _shot(page, "run-tab")


def _holds(cell: str) -> tuple[int, int]:
    """(credits held, holds) from the overview's Held cell ("0", or "1,234" over "3 hold(s)")."""
    lines = cell.split()
    return int(lines[0].replace(",", "")), int(lines[1]) if len(lines) > 1 else 0


def test_viewer_sees_no_balance(browser: Any, ui_stack: UiStack) -> None:
    page = _login(browser, ui_stack, "viewer")
    frame = _open_credits(page)
    frame.locator("#empty").wait_for()
    assert "may not read any" in frame.locator("#empty").inner_text()
    assert frame.locator("#accounts").count() == 0
    _shot(page, "viewer")


def test_dark_mode_follows_the_ui(browser: Any, ui_stack: UiStack) -> None:
    page = _login(browser, ui_stack, "admin", color_scheme="dark")
    frame = _open_credits(page)
    background = frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor")
    text = frame.locator("body").evaluate("b => getComputedStyle(b).color")
    assert background == "rgb(26, 32, 44)", background
    assert text == "rgb(226, 232, 240)", text
    _shot(page, "overview-dark")


#: WCAG's minimum contrast for the parts of an icon a user must see (non-text contrast, 1.4.11).
ICON_CONTRAST = 3.0

_ICON_CONTRAST_JS = """async (link) => {
  const img = link.querySelector("img");
  await img.decode();
  const size = 48, canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = getComputedStyle(link).backgroundColor;  // what the icon is drawn on
  ctx.fillRect(0, 0, size, size);
  const bg = ctx.getImageData(0, 0, 1, 1).data;
  ctx.drawImage(img, 0, 0, size, size);
  const lum = (r, g, b) => [r, g, b].map(c => { c /= 255; return c <= 0.03928 ? c / 12.92
    : Math.pow((c + 0.055) / 1.055, 2.4); }).reduce((s, c, i) => s + c * [0.2126, 0.7152, 0.0722][i], 0);
  const base = lum(bg[0], bg[1], bg[2]);
  const px = ctx.getImageData(0, 0, size, size).data;
  let best = 1;
  for (let i = 0; i < px.length; i += 4) {
    const l = lum(px[i], px[i + 1], px[i + 2]);
    best = Math.max(best, (Math.max(l, base) + 0.05) / (Math.min(l, base) + 0.05));
  }
  return {contrast: best, src: img.getAttribute("src")};
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_nav_icon_stands_out_when_idle_and_when_active(
    browser: Any, ui_stack: UiStack, scheme: str
) -> None:
    page = _login(browser, ui_stack, "viewer", color_scheme=scheme)
    link = page.get_by_role("link", name="Credits")
    idle = link.evaluate(_ICON_CONTRAST_JS)
    _open_credits(page)
    link = page.get_by_role("link", name="Credits")  # highlighted now (aria-current="page" from 3.2 on)
    active = link.evaluate(_ICON_CONTRAST_JS)
    if scheme == "dark":
        assert idle["src"] == active["src"] == "credits/icon-dark.svg"
    assert idle["contrast"] >= ICON_CONTRAST, idle
    assert active["contrast"] >= ICON_CONTRAST, active


def test_the_address_bar_follows_each_page_and_deep_links_open_it(browser: Any, ui_stack: UiStack) -> None:
    """Airflow 3.3 shows the frame's own path under /plugin/credits (hence .../credits/credits/...)."""
    from importlib.metadata import version

    page = _login(browser, ui_stack, "op")
    frame = _open_credits(page)
    mirrors = tuple(int(p) for p in version("apache-airflow").split(".")[:2]) >= (3, 3)
    entry = "/plugin/credits/credits/" if mirrors else "/plugin/credits"
    page.wait_for_url(f"**{entry}")
    assert page.url == f"{ui_stack.base}{entry}"
    frame.get_by_role("link", name="localleads_default").click()
    frame.locator("h1", has_text="localleads_default").wait_for()
    account = "/plugin/credits/credits/accounts/localleads_default" if mirrors else entry
    page.wait_for_url(f"**{account}", timeout=5_000)  # updated on the click itself, not one click later
    assert page.url == f"{ui_stack.base}{account}"
    frame.get_by_role("link", name="All credit accounts").click()
    frame.locator("#accounts").wait_for()
    page.wait_for_url(f"**{entry}", timeout=5_000)
    assert page.url == f"{ui_stack.base}{entry}"
    if mirrors:  # a copied address opens the same page
        page.goto(
            f"{ui_stack.base}/plugin/credits/credits/accounts/leadmagic_default", wait_until="networkidle"
        )
        heading = page.frame_locator("iframe").locator("h1")
        heading.wait_for()
        assert "leadmagic_default" in heading.inner_text()


def test_chart_labels_stay_inside_the_chart(browser: Any) -> None:
    """A renewal at the chart's right edge: its label turns left instead of being cut ("rene...")."""
    from datetime import date, datetime, timedelta, timezone
    from decimal import Decimal

    from airflow_credits_provider.ui.charts import history_chart
    from airflow_credits_provider.ui.queries import DailyBalance

    days = [
        DailyBalance(
            date(2026, 11, 1) + timedelta(days=n),
            Decimal(900 - 30 * n),
            Decimal(880 - 30 * n),
            Decimal(910 - 30 * n),
            24,
            Decimal(30),
            Decimal(0),
            0,
        )
        for n in range(10)
    ]
    renewal = datetime(2026, 11, 11, 6, tzinfo=timezone.utc)  # the chart ends 12 hours after it
    live = (datetime(2026, 11, 11, 5, tzinfo=timezone.utc), Decimal(700))
    svg = history_chart(days, renewal=renewal, live=live)
    page = browser.new_page(viewport={"width": 800, "height": 400})
    page.set_content(f"<body style='margin:0;font:14px system-ui'>{svg}</body>")
    boxes = page.evaluate(
        """() => { const svg = document.querySelector("svg"), vb = svg.viewBox.baseVal;
        return {width: vb.width, labels: [...svg.querySelectorAll("text")].map(t => {
          const b = t.getBBox(); return {text: t.textContent, left: b.x, right: b.x + b.width}; })}; }"""
    )
    texts = [label["text"] for label in boxes["labels"]]
    assert any(t.startswith("renews ") for t in texts), texts
    assert "live" in texts
    for label in boxes["labels"]:
        assert label["left"] >= 0, label
        assert label["right"] <= boxes["width"], label
    page.close()
