"""A real browser for the pedal's page: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by selenium, on a phone-sized screen, and axe-core for the
accessibility check.

`TONEBRIDGE_BROWSER=required` (set by .ci/run) makes a missing browser a failure;
otherwise the browser tests are skipped with one line saying what is missing.

axe-core comes from the npm registry as the release tarball, checked against the
sha512 the registry published for it (pinned here), and is kept in build/axe-core/.
"""

import base64
import hashlib
import io
import os
import shutil
import tarfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AXE_VERSION = "4.10.3"
AXE_PINS = {  # the registry's `dist.integrity` of each version we use
    "4.10.3": "sha512-Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce856dYtJYLkuIoYZvGfTs/PbZhideTcEg==",
}
AXE_DIR = os.path.join(ROOT, "build", "axe-core")
PHONE = {"width": 390, "height": 844, "pixelRatio": 3}
PHONE_AGENT = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/126.0.0.0 Mobile Safari/537.36")


class Missing(Exception):
    """What the browser tests need and this machine lacks (one line)."""


def required():
    return os.environ.get("TONEBRIDGE_BROWSER") == "required"


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise Missing("no Chromium (apt install chromium chromium-driver)")


def find_driver():
    path = shutil.which("chromedriver") or ("/usr/lib/chromium/chromedriver"
                                            if os.path.exists("/usr/lib/chromium/chromedriver") else None)
    if not path:
        raise Missing("no chromedriver (apt install chromium-driver)")
    return path


def phone_browser():
    """A headless Chromium as a 390x844 phone (a selenium WebDriver)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise Missing("no selenium (pip install -e '.[dev]')") from None
    options = webdriver.ChromeOptions()
    options.binary_location = find_chromium()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=390,844", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.add_experimental_option("mobileEmulation", {"deviceMetrics": PHONE, "userAgent": PHONE_AGENT})
    return webdriver.Chrome(service=Service(find_driver()), options=options)


def axe_source():
    """The text of axe.min.js (downloaded once, integrity checked)."""
    path = os.path.join(AXE_DIR, AXE_VERSION, "axe.min.js")
    if not os.path.exists(path):
        url = "https://registry.npmjs.org/axe-core/-/axe-core-%s.tgz" % AXE_VERSION
        try:
            with urllib.request.urlopen(url, timeout=60) as reply:
                tarball = reply.read()
        except OSError as exc:
            raise Missing("cannot fetch axe-core %s from the npm registry: %s" % (AXE_VERSION, exc)) from None
        algorithm, _, digest = AXE_PINS[AXE_VERSION].partition("-")
        if base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode() != digest:
            raise RuntimeError("axe-core %s from the registry does not match its pinned sha512" % AXE_VERSION)
        with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
            source = archive.extractfile("package/axe.min.js").read()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "wb") as f:
            f.write(source)
        os.replace(path + ".tmp", path)
    with open(path, encoding="utf-8") as f:
        return f.read()


def axe_violations(driver, impacts=("serious", "critical")):
    """Run axe-core on the page the browser shows; the violations of those impacts as
    [(rule id, impact, help, [targets])]."""
    driver.execute_script(axe_source())
    result = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(function (r) { done(r.violations); },"
        " function (e) { done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]); });")
    return [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:5])
            for v in result if v["impact"] in impacts]
