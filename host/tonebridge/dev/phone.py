"""A scripted phone: completes a TONE3000 sign-in page the way a person would.

The demo, the benchmarks and the end-to-end tests need someone to open the sign-in URL,
type an email, read the 6-digit code from the mailbox and type it in.  This module does
exactly that with plain HTTP and HTML forms (no JavaScript, like the real page needs):
it reads the forms generically, so it does not depend on the page's exact markup.  The
"mailbox" is the emulator's outbox (`GET /_emulator/outbox`), or any function that
returns the code.
"""

import html.parser
import re
import time
import urllib.parse

import httpx


class PhoneError(Exception):
    """The sign-in page did not behave as a person would expect."""


class Form:
    """One HTML form: where it goes, how, and its fields (name -> value)."""

    def __init__(self, action, method):
        self.action = action
        self.method = method
        self.fields = {}
        self.types = {}  # name -> input type
        self.buttons = []  # (name, value, label) of submit buttons


class _FormParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []
        self._button = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append(Form(a.get("action") or "", (a.get("method") or "get").upper()))
            return
        if not self.forms:
            return
        form = self.forms[-1]
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            name = a.get("name")
            if kind == "submit":
                form.buttons.append((name, a.get("value") or "", a.get("value") or ""))
            elif name:
                form.fields[name] = a.get("value") or ""
                form.types[name] = kind
        elif tag == "button":
            self._button = [a.get("name"), a.get("value") or "", ""]
            if (a.get("type") or "submit").lower() != "submit":
                self._button = None

    def handle_data(self, data):
        if self._button is not None:
            self._button[2] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._button is not None and self.forms:
            self.forms[-1].buttons.append((self._button[0], self._button[1], self._button[2].strip()))
            self._button = None


def parse_forms(page):
    parser = _FormParser()
    parser.feed(page)
    return parser.forms


def _find_form(forms, wanted):
    """The first form with a field whose name or type mentions `wanted`."""
    for form in forms:
        for name, kind in form.types.items():
            if wanted in name.lower() or kind == wanted:
                return form, name
    return None, None


def _submit(http, page_url, form, values, avoid=("cancel", "resend")):
    data = dict(form.fields)
    data.update(values)
    for name, value, label in form.buttons:
        text = (label or value or "").lower()
        if name and not any(word in text or word in (name or "").lower() for word in avoid):
            data[name] = value
            break
    target = urllib.parse.urljoin(page_url, form.action or page_url)
    if form.method == "POST":
        return http.post(target, data=data)
    return http.get(target, params=data)


def outbox_code(emulator_base, email, after=0.0, timeout_s=10.0, verify=True):
    """A function returning the newest OTP code the emulator 'sent' to `email`.

    `verify`: as httpx's (an ssl.SSLContext trusting a test CA, for an emulator on https).
    """

    def read():
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            items = httpx.get(emulator_base.rstrip("/") + "/_emulator/outbox", timeout=5, verify=verify).json()
            for item in reversed(items):
                if item.get("email") == email and item.get("code"):
                    return item["code"]
            time.sleep(0.05)
        raise PhoneError("no code arrived for %s" % email)

    return read


def pair(portal_url, pin=None, timeout_s=10.0):
    """Pair with the pedal at `portal_url` as its owner's phone: press Pair (after the
    footswitch was held) or type `pin`.

    Returns:
        httpx.Cookies holding the owner's cookie, for `owner_client` or `sign_in`.
    Raises:
        PhoneError: the pedal refused (its page's message).
    """
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as http:
        reply = http.post(portal_url.rstrip("/") + "/pair", data={"pin": pin or ""})
        if reply.status_code != 303 or not http.cookies:
            raise PhoneError("the pedal did not pair this phone (HTTP %d): %s" % (reply.status_code, _text(reply)))
        return http.cookies


def owner_client(portal_url, cookies, timeout_s=10.0):
    """An httpx.Client for the pedal's page with the owner's cookie (paths are relative
    to `portal_url`)."""
    return httpx.Client(base_url=portal_url, cookies=cookies, timeout=timeout_s)


def sign_in(start_url, email, read_code, timeout_s=15.0, follow_to_callback=True, verify=True, consent="allow",
            hosts=None, cookies=None):
    """Open `start_url`, submit `email`, type the code `read_code()` returns, and answer
    the consent page (today's OAuth sign-in has one) with `consent` ("allow"/"deny").

    Returns:
        the final httpx.Response: the page the browser lands on after the redirect to
        the app's redirect_url (the callback), or, with follow_to_callback False, the
        redirect that leaves the sign-in service (its Location holds api_key, or code
        and state).  Redirects within the service (the LAN relay's bridge) are followed.
        `hosts` maps host names to the addresses the phone reaches them at ({"10.77.0.2":
        "127.0.0.1"}: the simulated pedal's "Wi-Fi" address is on loopback), like a
        phone on the pedal's network.  `cookies`: the pedal owner's cookie (`pair`),
        which starting a sign-in on the pedal's page needs.
    Raises:
        PhoneError: a page had no usable form, or the code was refused.
    """
    service = _origin(start_url)
    with httpx.Client(timeout=timeout_s, follow_redirects=False, verify=verify, cookies=cookies) as http:
        http.hosts = hosts or {}
        page = _follow(http, http.get(start_url), service, follow_to_callback)
        done = _prove_email(http, page, email, read_code, service, follow_to_callback, consent)
        if not follow_to_callback and not done.is_redirect:
            raise PhoneError("the sign-in did not finish (HTTP %d): %s" % (done.status_code, _text(done)))
        return done


def activate(verification_uri, user_code, email, read_code, timeout_s=15.0, verify=True, consent="allow"):
    """Connect a device with the device grant: open the verification page, type the
    device's `user_code` (unless the URL already carries it), sign in, answer consent.

    Returns:
        the last page (httpx.Response): "Device connected", or "Not connected".
    """
    service = _origin(verification_uri)
    with httpx.Client(timeout=timeout_s, follow_redirects=False, verify=verify) as http:
        http.hosts = {}
        page = http.get(verification_uri)
        form, field = _find_form(parse_forms(page.text), "user_code")
        if form is None:
            raise PhoneError("the activation page has no code form (HTTP %d)" % page.status_code)
        reply = _submit(http, str(page.url), form, {field: form.fields.get(field) or user_code})
        return _prove_email(http, reply, email, read_code, service, True, consent)


def _prove_email(http, page, email, read_code, service, follow, consent):
    """Email form -> code form -> consent page (if any): the response after the last one."""
    form, field = _find_form(parse_forms(page.text), "email")
    if form is None:
        raise PhoneError("the sign-in page has no email form (HTTP %d): %s" % (page.status_code, _text(page)))
    reply = _follow(http, _submit(http, str(page.url), form, {field: email}), service, follow)
    form, field = _find_form(parse_forms(reply.text), "code")
    if form is None:
        raise PhoneError("no code form after the email (HTTP %d): %s" % (reply.status_code, _text(reply)))
    done = _submit(http, str(reply.url), form, {field: read_code()})
    if not done.is_redirect:
        choice = [f for f in parse_forms(done.text) if f.fields.get("decision") == consent]
        if not choice:
            if done.status_code >= 400:
                raise PhoneError("the code was not accepted (HTTP %d): %s" % (done.status_code, _text(done)))
            return done
        done = _submit(http, str(done.url), choice[0], {})
    return _follow(http, done, service, follow)


def _reach(http, url):
    """`url` with its host replaced by the address the phone reaches it at (http.hosts)."""
    parts = urllib.parse.urlsplit(url)
    address = http.hosts.get(parts.hostname)
    if address is None:
        return url
    netloc = address + (":%d" % parts.port if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _origin(url):
    parts = urllib.parse.urlsplit(url)
    return "%s://%s" % (parts.scheme, parts.netloc)


_REFRESH = re.compile(r'<meta http-equiv="refresh" content="0;\s*url=([^"]+)"', re.I)


def _follow(http, response, service, follow):
    """Follow redirects: all of them when `follow`, else only those within `service`
    (the sign-in service's origin), stopping at the one that leaves for the app.  With
    `follow`, an immediate `<meta http-equiv="refresh">` is followed too, as a browser
    does (the pedal's page after a sign-in)."""
    hops = 0
    while hops < 10:
        if response.is_redirect:
            target = urllib.parse.urljoin(str(response.url), response.headers["location"])
            if not follow and _origin(target) != service:
                break
        elif follow and "html" in response.headers.get("content-type", "") and _REFRESH.search(response.text):
            target = urllib.parse.urljoin(str(response.url), _REFRESH.search(response.text).group(1))
        else:
            break
        response = http.get(_reach(http, target))
        hops += 1
    return response


def _text(response):
    """A short plain-text excerpt of an HTML page, for error messages."""
    class Strip(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts = []

            self.skip = False

        def handle_starttag(self, tag, attrs):
            self.skip = tag in ("style", "script")

        def handle_endtag(self, tag):
            self.skip = False

        def handle_data(self, data):
            if data.strip() and not self.skip:
                self.parts.append(data.strip())

    s = Strip()
    s.feed(response.text)
    return " ".join(s.parts)[:200]
