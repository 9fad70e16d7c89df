"""The console in a real browser: Debian's Chromium, driven by Selenium through
Debian's chromedriver (nothing downloads a browser build).

A reviewer signs in, finds a person by a number written otherwise than it was
archived, reads a copy of each channel, sees a good proof ticked and a copy
altered in the store crossed, exports a production that check-production
accepts, places and lifts a legal hold, is refused another account's copy,
and signs out. A hostile email is viewed while a canary server on loopback,
named by every URL in it, counts requests: none arrive, and nothing of the
copy runs. axe-core checks every page; every control is reached by Tab.

Screenshots go to $MSGARCHIVE_SCREENSHOTS when it is set (docs/console/ holds
the README's), else to the test's own directory.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lz4.frame
import pytest

from tests import console as world_of
from tests.console import ARCHIVED_PHONE, CAMPAIGN, Browser, ConsoleWorld, reviewer_key
from tests.seaweed import SeaweedFS

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
WAIT_S = 60.0
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--window-size=1280,1000", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps",
    "--disable-extensions", "--hide-scrollbars", "--force-device-scale-factor=1",
)  # fmt: skip

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip("needs Debian's chromium and chromium-driver (make test installs them)",
                allow_module_level=True)  # fmt: skip

from selenium import webdriver  # noqa: E402 (only with a browser to drive)
from selenium.common.exceptions import (  # noqa: E402
    NoAlertPresentException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def world(seaweed: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    yield from world_of.build(seaweed, tmp_path_factory.mktemp("console-browser"))


@pytest.fixture(scope="module")
def driver(world: ConsoleWorld) -> Iterator[WebDriver]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(WAIT_S)
    try:
        browser.get(world.url + "/signin")
        browser.find_element(By.ID, "api_key").send_keys(reviewer_key("jane"))
        click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "form.signin button"))
        wait(browser, lambda d: d.current_url.endswith("/search"))
        yield browser
    finally:
        browser.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("MSGARCHIVE_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait(driver: WebDriver, until: Any, timeout: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(until)


def open_copy(driver: WebDriver, world: ConsoleWorld, name: str) -> None:
    from urllib.parse import urlencode

    driver.get(f"{world.url}/copy?{urlencode({'key': world.keys[name]})}")


def search(driver: WebDriver, **filters: str) -> None:
    driver.get(world_url(driver) + "/search")
    for name, value in filters.items():
        field = driver.find_element(By.ID, name)
        if field.tag_name == "select":
            field.find_element(By.CSS_SELECTOR, f"option[value='{value}']").click()
        else:
            field.clear()
            field.send_keys(value)
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.filters button"))
    wait(driver, lambda d: d.find_elements(By.ID, "found") or d.find_elements(By.ID, "problems"))


def click_and_load(driver: WebDriver, control: Any) -> None:
    """Click a link or a form's button, and wait until the page it loads has
    replaced this one (so that nothing is read off the old page).

    The old page is marked in its window and the wait is for a document
    without the mark: asking chromedriver whether an element went stale
    while the page is being replaced can fail with an inspector error of its
    own, so errors while the next page loads are waited out, not raised."""
    driver.execute_script("window.__msgarchiveLeaving = true")
    control.click()
    WebDriverWait(
        driver, WAIT_S, poll_frequency=0.1, ignored_exceptions=(WebDriverException,)
    ).until(
        lambda d: d.execute_script(
            "return window.__msgarchiveLeaving === undefined && document.readyState === 'complete'"
        )
    )


def world_url(driver: WebDriver) -> str:
    scheme, rest = driver.current_url.split("://", 1)
    return f"{scheme}://{rest.split('/', 1)[0]}"


def test_a_person_is_found_however_their_number_is_written(
    driver: WebDriver, world: ConsoleWorld, shots: Path
) -> None:
    assert ARCHIVED_PHONE != "+1 555-555-5555"
    search(driver, recipient="+1 555-555-5555")
    assert driver.find_element(By.ID, "found").text == "2 copies found"
    rows = driver.find_elements(By.CSS_SELECTOR, "table.results tbody tr")
    assert sorted(r.find_elements(By.TAG_NAME, "td")[1].text for r in rows) == ["sms", "whatsapp"]
    search(driver, campaign_id=CAMPAIGN)
    assert driver.save_screenshot(str(shots / "search.png"))


def test_each_channel_is_shown_as_a_reviewer_expects(
    driver: WebDriver, world: ConsoleWorld, shots: Path
) -> None:
    open_copy(driver, world, "email")
    assert "20% off coupon inside!" in driver.find_element(By.TAG_NAME, "h1").text
    frame = driver.find_element(By.CSS_SELECTOR, "iframe.email")
    assert frame.get_attribute("sandbox") == ""  # sandboxed, no allow-* token
    driver.switch_to.frame(frame)
    assert driver.find_element(By.TAG_NAME, "body").text == "Hi Jane"
    driver.switch_to.default_content()
    driver.save_screenshot(str(shots / "copy-email.png"))
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "Plain text"))
    assert driver.find_element(By.CSS_SELECTOR, "pre.body").text == "Hi Jane"
    click_and_load(driver, driver.find_element(By.LINK_TEXT, "Headers"))
    assert "List-Unsubscribe" in driver.find_element(By.CSS_SELECTOR, "main").text

    open_copy(driver, world, "push")
    assert driver.find_element(By.CLASS_NAME, "push-title").text == "Flat 20% off"
    assert driver.find_element(By.CLASS_NAME, "push-text").text == "Today only"
    driver.save_screenshot(str(shots / "copy-push.png"))
    for channel in ("sms", "whatsapp"):
        open_copy(driver, world, channel)
        assert driver.find_element(By.CLASS_NAME, "bubble").text == "Hi there!"
        assert "via twilio" in driver.find_element(By.CLASS_NAME, "bubble-meta").text
        driver.save_screenshot(str(shots / f"copy-{channel}.png"))


def test_a_hostile_email_fetches_nothing_and_runs_nothing(
    driver: WebDriver, world: ConsoleWorld, shots: Path
) -> None:
    world.canary.requests.clear()
    open_copy(driver, world, "hostile")  # returns once the page and its frame have loaded
    frame = driver.find_element(By.CSS_SELECTOR, "iframe.email")
    driver.switch_to.frame(frame)
    assert "Visible text of a hostile email" in driver.find_element(By.TAG_NAME, "body").text
    driver.switch_to.default_content()
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 (no script of the copy raised one)
    assert world.canary.requests == []
    listed = driver.find_element(By.CSS_SELECTOR, "details.blocked").text
    assert "not loaded" in listed
    driver.save_screenshot(str(shots / "copy-hostile-email.png"))
    # The canary counts what reaches it: the browser itself can reach it.
    driver.get(world.canary.url + "/control")
    wait(driver, lambda d: "/control" in world.canary.requests)


def test_a_good_proof_is_ticked_and_a_copy_altered_in_the_store_is_crossed(
    driver: WebDriver, world: ConsoleWorld
) -> None:
    open_copy(driver, world, "to-alter")
    verdict = driver.find_element(By.CSS_SELECTOR, ".integrity .verdict").text
    assert verdict == "✓ Proven", driver.find_element(By.CSS_SELECTOR, ".integrity .why").text
    s3 = world.seaweed.client()
    bucket, key = world.buckets["acme"], world.keys["to-alter"]
    stored = json.loads(lz4.frame.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    stored["body"] = "Altered after the fact"
    s3.put_object(Bucket=bucket, Key=key, Body=lz4.frame.compress(json.dumps(stored).encode()))
    open_copy(driver, world, "to-alter")
    assert driver.find_element(By.CLASS_NAME, "bubble").text == "Altered after the fact"
    assert driver.find_element(By.CSS_SELECTOR, ".integrity .verdict").text == "✗ Does not check"
    why = driver.find_element(By.CSS_SELECTOR, ".integrity .why").text
    assert "SHA-256" in why


def test_an_export_is_made_downloaded_and_checks(
    driver: WebDriver, world: ConsoleWorld, tmp_path: Path
) -> None:
    search(driver, campaign_id=CAMPAIGN, channel="email")
    total = driver.find_element(By.ID, "found").text
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form[action='/exports'] button"))
    wait(driver, lambda d: d.current_url.endswith("/exports"))
    link = wait(driver, lambda d: d.find_elements(By.PARTIAL_LINK_TEXT, "Download"))[0]
    href = link.get_attribute("href")
    assert href is not None
    downloader = Browser(world.url)
    session = driver.get_cookie("msgarchive_console")
    assert session is not None
    downloader.cookie = f"msgarchive_console={session['value']}"
    got = downloader.get(href[len(world.url) :])
    assert got.status == 200
    assert got.headers["content-type"] == "application/zip"
    production = tmp_path / "production.zip"
    production.write_bytes(got.body)
    checked = subprocess.run(
        [sys.executable, "-m", "msgarchive_server", "check-production", str(production),
         f"--public-key={world.team_public}", f"--manifest-key={world.manifest_public}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert total == "2 copies found"  # the email and the hostile email
    assert "done: 2 copies" in driver.find_element(By.TAG_NAME, "main").text


def test_a_hold_is_placed_and_lifted_with_a_reason(driver: WebDriver, world: ConsoleWorld) -> None:
    s3 = world.seaweed.client()
    bucket, key = world.buckets["acme"], world.keys["push"]

    def hold_status() -> str:
        version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
        answer = s3.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=version)
        return str(answer["LegalHold"]["Status"])

    for action, status in (("on", "ON"), ("off", "OFF")):
        search(driver, campaign_id=CAMPAIGN, channel="push")
        driver.find_element(By.ID, "reason").send_keys("Matter 2026-114")
        button = driver.find_element(By.CSS_SELECTOR, f"form.hold button[value='{action}']")
        click_and_load(driver, button)
        notice = wait(driver, lambda d: d.find_elements(By.CLASS_NAME, "notice"))[0].text
        assert notice.startswith("Legal hold placed on 1 copies" if action == "on"
                                 else "Legal hold lifted from 1 copies")  # fmt: skip
        assert hold_status() == status
    records = s3.list_objects_v2(Bucket=bucket, Prefix="_msgarchive/holds/")["Contents"]
    last = json.loads(s3.get_object(Bucket=bucket, Key=records[-1]["Key"])["Body"].read())
    assert last["reason"] == "Matter 2026-114 (console reviewer jane)"


def test_another_accounts_copy_is_refused(driver: WebDriver, world: ConsoleWorld) -> None:
    open_copy(driver, world, "globex")
    assert driver.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert "+44" not in driver.page_source


def test_every_page_passes_axe_and_every_control_is_reached_by_keyboard(
    driver: WebDriver, world: ConsoleWorld
) -> None:
    axe = AXE.read_text()
    pages: dict[str, Callable[[], object]] = {
        "search": lambda: search(driver, campaign_id=CAMPAIGN),
        "exports": lambda: driver.get(world.url + "/exports"),
        "not found": lambda: driver.get(world.url + "/nowhere"),
    }
    for copy in ("email", "push", "sms", "whatsapp", "hostile"):
        pages[f"copy {copy}"] = functools.partial(open_copy, driver, world, copy)
    for name, load in pages.items():
        load()
        driver.execute_script(axe)
        result = driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations));"
        )
        serious = [(v["id"], v["help"]) for v in result if v["impact"] in ("serious", "critical")]
        assert serious == [], name
        assert_reachable_by_keyboard(driver, name)


def assert_reachable_by_keyboard(driver: WebDriver, page: str) -> None:
    # Every control; not the email's frame, which has none (its links are
    # removed) and which Chromium leaves out of the tab order when sandboxed.
    count = driver.execute_script(
        "const all = [...document.querySelectorAll("
        "'a[href], button, input:not([type=hidden]), select, summary')];"
        "all.forEach((e, i) => e.setAttribute('data-kb', i)); return all.length;"
    )
    reached: set[str] = set()
    body = driver.find_element(By.TAG_NAME, "body")
    body.click()
    for _ in range(count + 10):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        index = driver.execute_script("return document.activeElement.getAttribute('data-kb');")
        if index is not None:
            reached.add(index)
    missed = driver.execute_script(
        "return [...document.querySelectorAll('[data-kb]')]"
        ".filter(e => !arguments[0].includes(e.getAttribute('data-kb')))"
        ".map(e => e.outerHTML.slice(0, 120));",
        sorted(reached),
    )
    assert missed == [], page


def test_sign_out_ends_the_session(driver: WebDriver, world: ConsoleWorld) -> None:
    driver.get(world.url + "/search")
    click_and_load(driver, driver.find_element(By.CSS_SELECTOR, "form.signout button"))
    wait(driver, lambda d: d.current_url.endswith("/signin"))
    driver.get(world.url + "/search")
    assert driver.current_url.endswith("/signin")
