import pytest
from browser import Missing, find_chromium, find_driver, phone_browser, required


@pytest.fixture(scope="session")
def phone():
    """A headless Chromium on a phone-sized screen; skipped (or, with
    TONEBRIDGE_BROWSER=required as in CI, failed) when the machine has none."""
    try:
        find_chromium()
        find_driver()
        driver = phone_browser()
    except Missing as exc:
        if required():
            pytest.fail("browser tests are required here: %s" % exc)
        pytest.skip("browser tests: %s" % exc)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
