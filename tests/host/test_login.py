"""`tonebridge login` without a service: the listener, errors from the browser, --paste input,
the client id."""

import threading

import httpx
from click.testing import CliRunner

from tonebridge.api import signin as login_module
from tonebridge.cli import cli
from tonebridge.cli.common import EXIT_SIGN_IN
from tonebridge.api.signin import CallbackListener
from tonecore.auth import callback_params

API = "http://127.0.0.1:1"
CLIENT_ID = "t3k_pub_test"


def invoke(tmp_path, *args, **kwargs):
    env = {"TONEBRIDGE_HOME": str(tmp_path), "TONEBRIDGE_CLIENT_ID": CLIENT_ID}
    env.update(kwargs.pop("env", {}))
    return CliRunner().invoke(cli, ["--api", API, "login", *args], env=env, **kwargs)


def fake_browser(monkeypatch, query):
    """Replace webbrowser.open: 'the browser' comes back to the redirect_url with `query`."""
    pages = []

    def open_(url):
        params = callback_params(url)
        redirect_url = params.get("redirect_url") or params["redirect_uri"]
        if "state" in params:
            query_ = query + "&state=" + params["state"]
        else:
            query_ = query

        def visit():
            pages.append(httpx.get(redirect_url + "?" + query_, timeout=10))

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
        assert httpx.get(base + "?api_key=guessed").status_code == 404  # the path has a nonce
        assert httpx.get(listener.redirect_url).status_code == 400
        assert listener.wait(0.01) is None


def test_the_listener_takes_only_its_own_state():
    """Another local program cannot sign the CLI in to an account of its choosing."""
    with CallbackListener(state="ours") as listener:
        for query in ("code=THEIRS", "code=THEIRS&state=theirs", "error=access_denied&state=other"):
            reply = httpx.get(listener.redirect_url + "?" + query, timeout=5)
            assert reply.status_code == 400 and "Not this sign-in" in reply.text
        assert listener.wait(0.01) is None

        def answer():
            listener.wait(5)
            listener.finish(True, "demo")

        thread = threading.Thread(target=answer)
        thread.start()
        assert httpx.get(listener.redirect_url + "?code=OURS&state=ours", timeout=10).status_code == 200
        thread.join(5)
        assert listener.wait(0) == {"code": "OURS", "state": "ours"}


def test_a_missing_client_id_says_where_to_get_one(tmp_path):
    result = invoke(tmp_path, "--no-browser", env={"TONEBRIDGE_CLIENT_ID": ""})
    assert result.exit_code == 2
    assert "Settings -> API Keys" in result.stderr and "--client-id" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_oauth_listener_flow_reports_a_denial(tmp_path, monkeypatch):
    pages = fake_browser(monkeypatch, "error=access_denied")
    result = invoke(tmp_path, "--no-qr", "--timeout", "10")
    pages[0].join(10)
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == "tonebridge: error: sign-in was declined (access denied)\n"
    assert "client_id=t3k_pub_test" in result.output and "code_challenge_method=S256" in result.output
    assert pages[1].status_code == 400 and "declined" in pages[1].text
    assert not (tmp_path / "session.json").exists()


def test_an_error_from_the_sign_in_page_is_reported_in_both_places(tmp_path, monkeypatch):
    pages = fake_browser(monkeypatch, "error=access_denied&error_description=the+user+cancelled")
    result = invoke(tmp_path, "--otp", "--no-qr", "--timeout", "10")
    pages[0].join(10)
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == "tonebridge: error: sign-in was not completed: access_denied (the user cancelled)\n"
    browser_page = pages[1]
    assert browser_page.status_code == 400
    assert "Sign-in failed" in browser_page.text and "access_denied" in browser_page.text
    assert "Opened your browser." in result.output
    assert not (tmp_path / "session.json").exists()


def test_nothing_arrives_before_the_timeout(tmp_path):
    result = invoke(tmp_path, "--otp", "--no-browser", "--timeout", "1")
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == ("tonebridge: error: no sign-in arrived within 1 s; run `tonebridge login --api %s/api/v1` "
                             "again\n" % API)  # the service being signed in to
    assert API + "/api/v1/auth?redirect_url=http%3A%2F%2F127.0.0.1%3A" in result.output


def test_paste_at_end_of_input_cancels_cleanly(tmp_path):
    for mode in ((), ("--otp",)):
        result = invoke(tmp_path, "--paste", *mode, input="")
        assert result.exit_code == EXIT_SIGN_IN
        assert result.stderr == "tonebridge: error: no address was pasted (end of input); sign-in cancelled\n"


def test_paste_of_something_else_is_refused(tmp_path):
    result = invoke(tmp_path, "--paste", "--otp", input="https://example.com/?foo=bar\n")
    assert result.exit_code == EXIT_SIGN_IN
    assert result.stderr == "tonebridge: error: the callback has no api_key parameter\n"
    assert "http://tonebridge-callback.invalid/?api_key=" in result.output  # an address that cannot resolve
    result = invoke(tmp_path, "--paste", input="http://127.0.0.1:1/tonebridge-callback?code=C&state=forged\n")
    assert result.exit_code == EXIT_SIGN_IN
    assert "state mismatch" in result.stderr


def test_qr_code_is_drawn_on_request(tmp_path):
    result = invoke(tmp_path, "--paste", "--qr", input="")
    assert "\u2580" in result.output or "\u2584" in result.output or "\u2588" in result.output
    plain = invoke(tmp_path, "--paste", input="")
    assert "\u2580" not in plain.output and "\u2584" not in plain.output
