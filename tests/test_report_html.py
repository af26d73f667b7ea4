"""``campaigns report --html``: one self-contained file, checked in a real headless browser (Debian's chromium).

The campaign goes through the CLI to a fake Twilio (refusals at send time, then receipts polled with
``campaigns refresh``), over several countries, with a campaign name and a provider error text that are
HTML. The page must load with no console error and no network request, and draw its charts as SVG.

Without chromium and chromedriver on the machine the browser test is skipped, saying so; CI installs
both and sets BULKSEND_REQUIRE_BROWSER=1, which turns that skip into a failure (.ci/run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from test_provider_contract import CANARY
from test_reports import FakeTwilioStatuses, api, configure  # noqa: F401 (api is a fixture)
from webhook_helpers import ledger_backend_fixture  # noqa: F401 - the ledger_backend fixture

NAME = '<b>Spring</b> & "sale"'
HOSTILE_TEXT = "<img src=x onerror=alert(1)>"
COUNTRIES = {  # numbers per country: GB mobiles, French, German, Spanish and US numbers (valid, mobile)
    "GB": [f"+447400{i:06d}" for i in range(14)],
    "FR": [f"+3361234{i:04d}" for i in range(8)],
    "DE": [f"+49151123{i:05d}" for i in range(6)],
    "ES": [f"+3461234{i:04d}" for i in range(4)],
    "US": [f"+1201555{i:04d}" for i in range(3)],
}


@pytest.fixture
def reported(api, home, cli, tmp_path, monkeypatch):  # noqa: F811
    """The HTML report of a campaign with deliveries, receipts of failure and refusals, in five countries."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", CANARY)
    configure(home, api.url_for("/").rstrip("/"))
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    twilio = FakeTwilioStatuses(api)
    numbers = [n for group in COUNTRIES.values() for n in group]
    twilio.refuse[COUNTRIES["GB"][0]] = (21211, "The 'To' number is not a valid phone number.")
    twilio.refuse[COUNTRIES["FR"][0]] = (21610, "Attempt to send to unsubscribed recipient")
    twilio.refuse[COUNTRIES["US"][0]] = (21408, HOSTILE_TEXT)
    (tmp_path / "list.csv").write_text("phone,consent\n" + "".join(f"{n},yes\n" for n in numbers))
    sent = cli("send", tmp_path / "list.csv", "-m", "Spring sale: 20% off", "--provider", "fake", "--name", NAME,
               "--yes")
    assert sent.exit_code == 4, sent.stderr
    undelivered = {COUNTRIES["GB"][1]: 30003, COUNTRIES["GB"][2]: 30003, COUNTRIES["DE"][1]: 30005,
                   COUNTRIES["ES"][1]: 30007, COUNTRIES["FR"][1]: 30008}
    for number in numbers:
        if number in undelivered:
            twilio.status[number] = {"status": "undelivered", "error_code": undelivered[number]}
        elif number not in (COUNTRIES["GB"][3], COUNTRIES["DE"][2]):  # two stay "sent": no receipt yet
            twilio.status[number] = {"status": "delivered"}
    assert cli("campaigns", "refresh", NAME).exit_code == 0
    page = tmp_path / "report.html"
    result = cli("campaigns", "report", NAME, "--html", page, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["charts"] == 4
    return page


def test_the_report_is_one_offline_file_with_user_data_escaped(ledger_backend, reported):
    """On either ledger backend (``ledger_backend`` comes first: a PostgreSQL ledger is set before the sends)."""
    text = reported.read_text(encoding="utf-8")
    # Nothing to fetch: no script, no external src/href (SVG's own references are "#id" within the page).
    assert "<script" not in text.lower()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)""", text, re.IGNORECASE)
    assert "default-src 'none'" in text
    # User and provider data are escaped, never markup.
    assert HOSTILE_TEXT not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert NAME not in text and "&lt;b&gt;Spring&lt;/b&gt; &amp; &quot;sale&quot;" in text
    assert CANARY not in text
    # Codes with their meaning.
    assert "unreachable destination handset" in text and "the recipient unsubscribed (replied STOP)" in text
    assert text.count("<svg") == 4


def test_a_campaign_with_nothing_sent_yet_still_reports(cli, home, tmp_path):
    from bulksend.config import Config
    from bulksend.ledger import open_ledger

    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    with open_ledger(Config(home=home)) as ledger:
        ledger.open_campaign("empty", "sms", "outbox", "fp")
    page = tmp_path / "empty.html"
    result = cli("campaigns", "report", "empty", "--html", page)
    assert result.exit_code == 0, result.stderr
    assert "(0 charts)" in result.stdout
    assert page.read_text(encoding="utf-8").count("Nothing to show yet.") == 4


def _browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if not (chromium and driver):
        why = "the HTML report's browser test needs chromium, chromedriver and selenium (apt-get install chromium " \
              "chromium-driver; pip install -e '.[test]')"
        if os.environ.get("BULKSEND_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BULKSEND_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    return chromium, driver


@pytest.mark.slow
def test_the_report_opens_in_a_headless_browser_without_errors_or_network(reported, tmp_path):
    chromium, chromedriver = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        driver.get_log("performance")  # drop what the browser's own start page loaded before ours
        driver.get(reported.as_uri())
        assert driver.execute_script("return document.readyState") == "complete"
        assert driver.title == f"Campaign {NAME} – bulksend report"  # the name shown as text, not markup

        console = driver.get_log("browser")
        assert [entry for entry in console if entry["level"] in ("SEVERE", "WARNING")] == []
        events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
        requests = [e["params"] for e in events if e["method"] == "Network.requestWillBeSent"]
        # The page's own load is its only request; the rest is the browser's built-in start page (chrome://, data:).
        ours = [r["request"]["url"] for r in requests if r.get("documentURL") == reported.as_uri()]
        assert ours == [reported.as_uri()], ours
        outside = [r["request"]["url"] for r in requests if not r["request"]["url"].startswith(("chrome://", "data:"))]
        assert outside == [reported.as_uri()], outside

        figures = driver.find_elements(By.CSS_SELECTOR, "svg.figure")
        assert len(figures) == 4
        assert all(f.size["width"] > 300 and f.size["height"] > 100 for f in figures)  # drawn, laid out
        bars = driver.execute_script("return document.querySelectorAll('svg.figure g[id^=\"patch_\"] path').length")
        lines = driver.execute_script("return document.querySelectorAll('svg.figure g[id^=\"line2d_\"] path').length")
        assert bars >= 3 + 7 + 5  # funnel stages, failure codes, countries (at least one bar each)
        assert lines >= 2  # accepted and delivered over time
        assert driver.find_elements(By.TAG_NAME, "img") == []
        assert driver.find_elements(By.TAG_NAME, "script") == []
        table = driver.find_element(By.CSS_SELECTOR, "section.table table").text
        assert HOSTILE_TEXT in table  # shown as the provider's words, never run
        assert "30003 undelivered 2 unreachable destination handset" in table
        if os.environ.get("BULKSEND_REPORT_SCREENSHOT"):  # to look at the page: a path to write a PNG to
            driver.set_window_size(1200, driver.execute_script("return document.body.scrollHeight") + 100)
            driver.save_screenshot(os.environ["BULKSEND_REPORT_SCREENSHOT"])
    finally:
        driver.quit()
