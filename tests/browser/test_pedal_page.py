"""The pedal's page in a real browser (headless Chromium, 390x844, a phone's user
agent) against the simulated pedal and the emulator: pairing, today's sign-in through
TONE3000's pages, the sync's progress changing without a reload, Use, Delete with its
confirmation, the error cases as pages, and no serious accessibility violations."""

import os
import time

import httpx
import pytest
from browser import Missing, axe_violations, required
from pedal_helpers import EMAIL
from signin_helpers import configure, wait_until

try:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover
    if required():
        raise
    pytest.skip("browser tests: no selenium (pip install -e '.[dev]')", allow_module_level=True)

from tonebridge.dev import phone as scripted_phone
from tonebridge.dev.emulator.server import EmulatorServer
from tonebridge.dev.simulator import SimulatedPedal

SHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "build", "browser-screenshots")


@pytest.fixture(scope="module")
def emulator():
    with EmulatorServer() as server:
        yield server


@pytest.fixture(scope="module")
def pedal(emulator, tmp_path_factory, lib):
    flash = tmp_path_factory.mktemp("browser") / "flash.img"
    with SimulatedPedal(emulator.base_url + "/api/v1", str(flash), lib=lib) as pedal:
        pedal.start()
        yield pedal


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def click(driver, element):
    """Click, and wait until the browser shows the page that led to."""
    old = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 15).until(staleness_of(old))


def text(driver):
    """The page's text; a page that reloads itself meanwhile is read again."""
    for _ in range(20):
        try:
            return driver.find_element(By.TAG_NAME, "body").text
        except StaleElementReferenceException:
            time.sleep(0.1)
    return driver.find_element(By.TAG_NAME, "body").text


def no_serious_violations(driver, page):
    try:
        found = axe_violations(driver)
    except Missing as exc:
        if required():
            raise
        pytest.skip("accessibility check: %s" % exc)
    assert not found, "%s: %s" % (page, found)


def fits_the_phone(driver):
    width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1] == 390, width


def owner_http(driver, pedal):
    """An httpx client with the browser's cookie: 'another tab' of the same phone."""
    return httpx.Client(base_url=pedal.portal_url, timeout=10,
                        cookies={"tb_owner": driver.get_cookie("tb_owner")["value"]})


def sign_in_with_tone3000(driver, emulator, consent="allow"):
    """Press the page's sign-in button and go through TONE3000's pages as a person would."""
    click(driver, driver.find_element(By.LINK_TEXT, "Sign in with TONE3000"))
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "input[type=email], input[name=email]"), 10, "email form")
    field = driver.find_elements(By.CSS_SELECTOR, "input[type=email], input[name=email]")[0]
    field.send_keys(EMAIL)
    old = driver.find_element(By.TAG_NAME, "html")
    field.submit()
    WebDriverWait(driver, 15).until(staleness_of(old))
    wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "input[name=code]"), 10, "code form")
    code = driver.find_element(By.CSS_SELECTOR, "input[name=code]")
    code.send_keys(scripted_phone.outbox_code(emulator.base_url, EMAIL)())
    old = driver.find_element(By.TAG_NAME, "html")
    code.submit()
    WebDriverWait(driver, 15).until(staleness_of(old))
    choice = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "input[name=decision][value=%s]" % consent), 10,
                  "consent page")
    form = choice[0].find_element(By.XPATH, "ancestor::form")
    click(driver, form.find_element(By.CSS_SELECTOR, "button, input[type=submit]"))


def test_the_page_on_a_phone(phone, pedal, emulator):
    driver = phone
    # -- a phone that is not paired sees how to pair, and nothing else
    driver.get(pedal.portal_url)
    assert "Pair this phone" in text(driver) and "Sign in" not in text(driver)
    fits_the_phone(driver)
    no_serious_violations(driver, "the pairing page")
    shot(driver, "1-pairing")
    click(driver, driver.find_element(By.XPATH, "//button[text()='Pair']"))
    alert = driver.find_element(By.CSS_SELECTOR, "[role=alert]")
    assert "Hold the pedal's footswitch" in alert.text
    pedal.press_footswitch()
    click(driver, driver.find_element(By.XPATH, "//button[text()='Pair']"))
    assert "This phone is paired" in driver.find_element(By.CSS_SELECTOR, "[role=status]").text
    no_serious_violations(driver, "the signed-out page")

    # -- a declined sign-in ends on the page, in plain words, at a clean address
    sign_in_with_tone3000(driver, emulator, consent="deny")
    wait_until(lambda: driver.current_url == pedal.portal_url, 10, "the page again")
    assert "You declined the sign-in on TONE3000" in driver.find_element(By.CSS_SELECTOR, "[role=alert]").text
    driver.refresh()  # a reload does not repeat the callback
    assert driver.current_url == pedal.portal_url

    # -- sign in; the sync's progress changes on the page without a reload
    configure(emulator.base_url, delay_ms=120)  # a sync of ~90 requests then takes ~15 s
    try:
        sign_in_with_tone3000(driver, emulator)
        wait_until(lambda: driver.current_url == pedal.portal_url and "Signed in as" in text(driver), 15, "signed in")
        driver.execute_script("window.sameDocument = true")
        first = wait_until(lambda: driver.find_elements(By.ID, "sync-line"), 10, "a sync line")[0].text
        same_page_line = ("var e = document.getElementById('sync-line');"
                          "return window.sameDocument === true && e ? e.textContent : null")  # one atomic read
        changed = wait_until(lambda: (driver.execute_script(same_page_line) or first) != first and
                             driver.execute_script(same_page_line), 20, "progress without a reload")
        assert "models checked" in changed or "downloaded" in changed, changed
        shot(driver, "2-syncing")
        assert driver.find_element(By.XPATH, "//button[contains(., 'Syncing')]").get_attribute("disabled")
        driver.refresh()  # the list as it is now: deleting waits for the end of the sync
        deletes = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "button[aria-label^='Delete']"), 10,
                       "models during the sync")
        assert all(b.get_attribute("disabled") for b in deletes)
        assert "Deleting waits until the sync is done." in text(driver)
        no_serious_violations(driver, "the page during a sync")
        # when it is done the page shows the list (it reloads itself once)
        wait_until(lambda: "Last sync:" in text(driver), 90, "the sync's end on the page")
    finally:
        configure(emulator.base_url, delay_ms=0)
    fits_the_phone(driver)
    shot(driver, "3-synced")
    no_serious_violations(driver, "the page with models")
    assert driver.find_element(By.XPATH, "//*[text()='Playing now']")

    # -- Use: every button is named for its model
    for group in driver.find_elements(By.TAG_NAME, "summary"):  # a big group starts folded: unfold it
        if not group.find_element(By.XPATH, "..").get_attribute("open"):
            group.click()
    use = driver.find_elements(By.CSS_SELECTOR, "button[aria-label^='Use ']")[0]
    name = use.get_attribute("aria-label")[len("Use "):]
    click(driver, use)
    assert "Model in use." in text(driver) and name in driver.find_element(By.CSS_SELECTOR, "#playing b").text

    # -- Delete asks first; Cancel keeps the model
    link = [a for a in driver.find_elements(By.CSS_SELECTOR, "a[aria-label^='Delete ']") if a.is_displayed()][0]
    victim = link.get_attribute("aria-label")[len("Delete "):]
    click(driver, link)
    assert "Delete this model?" in text(driver) and victim in text(driver)
    no_serious_violations(driver, "the delete confirmation")
    shot(driver, "4-confirm-delete")
    click(driver, driver.find_element(By.LINK_TEXT, "Cancel"))
    again = driver.find_element(By.CSS_SELECTOR, "a[aria-label='Delete %s']" % victim)
    if not again.is_displayed():
        click_summary = again.find_element(By.XPATH, "ancestor::details/summary")
        click_summary.click()
    click(driver, again)
    click(driver, driver.find_element(By.XPATH, "//button[text()='Delete']"))
    assert "Model deleted." in text(driver)
    assert not driver.find_elements(By.CSS_SELECTOR, "a[aria-label='Delete %s']" % victim)

    # -- stale pages: what another tab changed is explained on a page, never raw JSON
    other_tab = owner_http(driver, pedal)
    freeze = "window.fetch = function () { return new Promise(function () {}); }"  # a tab asleep in the background
    driver.execute_script(freeze)
    use = [b for b in driver.find_elements(By.CSS_SELECTOR, "button[aria-label^='Use ']") if b.is_displayed()][0]
    model_id = int(use.find_element(By.XPATH, "..").get_attribute("action").split("/")[-2])
    assert other_tab.post("models/%d/delete" % model_id, headers={"Accept": "application/json"}).status_code == 200
    click(driver, use)
    assert "no longer on the pedal" in driver.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "{" not in text(driver)[:1]
    driver.execute_script(freeze)
    assert other_tab.post("signout", headers={"Accept": "application/json"}).status_code == 200
    click(driver, driver.find_element(By.XPATH, "//button[contains(., 'Sync now')]"))
    assert "Sign in first" in driver.find_element(By.CSS_SELECTOR, "[role=alert]").text

    # -- the Wi-Fi set-up page
    driver.get(pedal.portal_url + "wifi")
    assert "Wi-Fi" in text(driver)
    fits_the_phone(driver)
    no_serious_violations(driver, "the Wi-Fi page")
    shot(driver, "5-wifi")


def test_the_clis_sign_in_answer_on_a_phone(phone):
    """The page `tonebridge login` shows in the browser when TONE3000 sends it back."""
    from urllib.parse import quote

    from tonebridge.api.signin import PAGE

    for title, body in (("You're signed in", "Signed in as demo_player. You can close this tab."),
                        ("Sign-in failed", "You declined. See the terminal for details.")):
        phone.get("data:text/html;charset=utf-8," + quote(PAGE % (title, body)))
        assert phone.find_element(By.TAG_NAME, "h1").text == title
        fits_the_phone(phone)
        no_serious_violations(phone, title)
