"""`tonebridge login` without a service: the listener, errors from the browser, --paste input."""

import threading

import httpx
from click.testing import CliRunner

from tonebridge.api import signin as login_module
from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_SIGN_IN
from tonebridge.api.signin import CallbackListener
from tonecore.auth import callback_params

API = "http://127.0.0.1:1"


def invoke(tmp_path, *args, **kwargs):
    return CliRunner().invoke(cli, ["--api", API, "login", *args], env={"TONEBRIDGE_HOME": str(tmp_path)}, **kwargs)


def fake_browser(monkeypatch, query):
    """Replace webbrowser.open: 'the browser' comes back to the redirect_url with `query`."""
    pages = []

    def open_(url):
        redirect_url = callback_params(url)["redirect_url"]

        def visit():
            pages.append(httpx.get(redirect_url + "?" + query, timeout=10))

        thread = threading.Thread(target=visit)
        thread.start()
        pages.append(thread)
        return True

    monkeypatch.setattr(login_module.webbrowser, "open", open_)
    return pages


def test_the_listener_answers_only_its_callback():
    with CallbackListener() as listener:
        assert listener.redirect_url.startswith("http://127.0.0.1:")
        base = listener.redirect_url.rsplit("/", 1)[0]
        assert httpx.get(base + "/favicon.ico").status_code == 404
        assert httpx.get(listener.redirect_url).status_code == 400
        assert listener.wait(0.01) is None


def test_an_error_from_the_sign_in_page_is_reported_in_both_places(tmp_path, monkeypatch):
    pages = fake_browser(monkeypatch, "error=access_denied&error_description=the+user+cancelled")
    result = invoke(tmp_path, "--no-qr", "--timeout", "10")
    pages[0].join(10)
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == "tonebridge: error: sign-in was not completed: access_denied (the user cancelled)\n"
    browser_page = pages[1]
    assert browser_page.status_code == 400
    assert "Sign-in failed" in browser_page.text and "access_denied" in browser_page.text
    assert "Opened your browser." in result.output
    assert not (tmp_path / "session.json").exists()


def test_nothing_arrives_before_the_timeout(tmp_path):
    result = invoke(tmp_path, "--no-browser", "--timeout", "1")
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == "tonebridge: error: no sign-in arrived within 1 s; run `tonebridge login` again\n"
    assert API + "/api/v1/auth?redirect_url=http%3A%2F%2F127.0.0.1%3A" in result.output


def test_paste_at_end_of_input_cancels_cleanly(tmp_path):
    result = invoke(tmp_path, "--paste", input="")
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == "tonebridge: error: no address was pasted (end of input); sign-in cancelled\n"


def test_paste_of_something_else_is_refused(tmp_path):
    result = invoke(tmp_path, "--paste", input="https://example.com/?foo=bar\n")
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == "tonebridge: error: the callback has no api_key parameter\n"


def test_qr_code_is_drawn_on_request(tmp_path):
    result = invoke(tmp_path, "--paste", "--qr", input="")
    assert "\u2580" in result.output or "\u2584" in result.output or "\u2588" in result.output
    plain = invoke(tmp_path, "--paste", input="")
    assert "\u2580" not in plain.output and "\u2584" not in plain.output
