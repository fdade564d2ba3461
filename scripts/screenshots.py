"""
Screenshots of the real connection form, and a check that what the form saves works.

Starts a throwaway Airflow (metadata database, api-server on 127.0.0.1) and the sandbox, then, for each
credit connection type, drives the real "Add Connection" form in headless Chromium (Debian's
``chromium``; playwright only drives it, it downloads no browser): fills the fields a user fills,
takes a screenshot into docs/connections/img/, saves, and reads the saved connection back through the
REST API and the ``airflow-credits`` CLI, which must print its balance from the sandbox.

Run with ``make screenshots``. Usage: python scripts/screenshots.py [OUTPUT_DIR]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.processes import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402

#: Connection type -> (form label, what the user types in the extra fields).
FORMS: dict[str, tuple[str, dict[str, str]]] = {
    "leadmagic": ("LeadMagic", {}),
    "localleads": ("LocalLeads", {}),
    "truemail": ("TrueMail", {}),
    "credit_api": ("Credit API (generic)", {"preset": "ZeroBounce"}),
}


def main() -> int:
    from playwright.sync_api import sync_playwright

    from airflow_credits_provider.sandbox import SandboxServer

    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "connections" / "img"
    out.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="credits-ui-"))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
    }
    subprocess.run([BIN / "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    api = subprocess.Popen(
        [BIN / "airflow", "api-server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    failures = 0
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        with SandboxServer() as sandbox, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1500})
            for conn_type, (label, extra) in FORMS.items():
                conn_id = f"{conn_type}_from_ui"
                vendor = "zerobounce" if conn_type == "credit_api" else conn_type
                made = sandbox.connection(vendor)
                page.goto(f"{base}/connections", wait_until="networkidle")
                page.get_by_role("button", name="Add Connection").click()
                dialog = page.get_by_role("dialog")
                dialog.locator("input[name=connection_id]").fill(conn_id)
                _choose(page, dialog.get_by_role("combobox").first, label)
                dialog.locator("input[name=host]").fill(made["host"])
                page.wait_for_timeout(300)
                dialog.screenshot(path=str(out / f"{conn_type}.png"))  # before the key is typed
                dialog.locator("input[name=password]").fill(made["password"])
                dialog.get_by_text("Extra Fields", exact=True).click()
                for field, choice in extra.items():
                    field_box = dialog.locator(f"[name=element_{field}]").locator("xpath=..")
                    _choose(page, field_box.get_by_role("combobox"), choice)
                page.wait_for_timeout(300)
                dialog.screenshot(path=str(out / f"{conn_type}-extra.png"))
                dialog.get_by_role("button", name="Save").click()
                page.wait_for_timeout(1000)
                saved = httpx.get(f"{base}/api/v2/connections/{conn_id}", timeout=10).json()
                result = subprocess.run(
                    [BIN / "airflow-credits", "balance", conn_id], env=env, capture_output=True, text=True
                )
                ok = result.returncode == 0
                failures += not ok
                print(f"{conn_type}: saved extra {saved.get('extra')}")
                print(f"  airflow-credits balance {conn_id}: {'ok' if ok else 'FAILED'}")
                print("  " + (result.stdout.splitlines() or [result.stderr.strip()])[0])
            browser.close()
    finally:
        api.terminate()
        api.wait(timeout=30)
    print(f"screenshots in {out}")
    return 1 if failures else 0


def _choose(page: Any, combo: Any, text: str) -> None:
    """Pick ``text`` in a drop-down the way a user does: type it, then Enter."""
    combo.click()
    combo.fill(text)
    page.wait_for_timeout(300)
    page.keyboard.press("Enter")


if __name__ == "__main__":
    sys.exit(main())
