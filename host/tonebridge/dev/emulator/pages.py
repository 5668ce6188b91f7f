"""The emulator's HTML: the sign-in pages and a small index page.

Plain forms, no JavaScript, readable on a phone (viewport meta, large inputs).  Every
interpolated value is escaped.  Forms: the main form comes first and has an unnamed
submit button; "Resend" and "Cancel" are separate small forms after it.
"""

from html import escape

AUTH = "/api/v1/auth"

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#111;color:#eee}
main{max-width:26rem;margin:0 auto;padding:2rem 1.25rem}
h1{font-size:1.6rem;margin:0 0 .5rem} p{line-height:1.45}
.brand{letter-spacing:.12em;font-weight:700;color:#f5b400;font-size:.85rem}
label{display:block;margin:1.25rem 0 .4rem;font-weight:600}
input[type=email],input[type=text]{box-sizing:border-box;width:100%;font-size:1.35rem;padding:.8rem;
 border-radius:.5rem;border:1px solid #555;background:#1c1c1c;color:#fff}
input[name=code]{letter-spacing:.4em;text-align:center;font-size:1.8rem}
button{width:100%;font-size:1.15rem;padding:.85rem;margin-top:1rem;border:0;border-radius:.5rem;
 background:#f5b400;color:#111;font-weight:700}
button.secondary{background:#2a2a2a;color:#ddd;margin-top:.6rem}
.error{background:#4a1515;border-left:4px solid #e55;padding:.6rem .8rem;border-radius:.3rem}
.notice{background:#15324a;border-left:4px solid #4af;padding:.6rem .8rem;border-radius:.3rem}
.note{color:#999;font-size:.85rem;margin-top:2rem} a{color:#f5b400}
"""


def layout(title, body):
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>%s - TONE3000 (emulator)</title><style>%s</style></head>"
        '<body><main><div class="brand">TONE3000 &middot; EMULATOR</div>%s</main></body></html>\n'
        % (escape(title), _STYLE, body)
    )


def _hidden(flow_id):
    return '<input type="hidden" name="flow" value="%s">' % escape(flow_id)


def _small_form(action, flow_id, label):
    return ('<form method="post" action="%s/%s">%s<button type="submit" class="secondary">%s</button></form>'
            % (AUTH, action, _hidden(flow_id), escape(label)))


def _messages(error=None, notice=None):
    html = ""
    if error:
        html += '<p class="error" role="alert">%s</p>' % escape(error)
    if notice:
        html += '<p class="notice">%s</p>' % escape(notice)
    return html


def _outbox_note():
    return ('<p class="note">Emulator: nothing is really emailed. The code or link is printed in the '
            'emulator\'s terminal and listed at <a href="/_emulator/outbox">/_emulator/outbox</a>.</p>')


def email_page(flow_id, otp_only, email="", error=None):
    """Step 1: ask for the email address."""
    what = "a 6-digit code" if otp_only else "a sign-in link"
    body = (
        "<h1>Sign in</h1><p>Enter your email and we'll send you %s.</p>%s"
        '<form method="post" action="%s/email">%s'
        '<label for="email">Email</label>'
        '<input id="email" type="email" name="email" value="%s" autocomplete="email" inputmode="email" '
        'required autofocus>'
        '<button type="submit">Continue</button></form>%s'
        % (what, _messages(error), AUTH, _hidden(flow_id), escape(email), _small_form("cancel", flow_id, "Cancel"))
    )
    return layout("Sign in", body)


def code_page(flow_id, email, error=None, notice=None):
    """Step 2 (OTP): ask for the 6-digit code."""
    body = (
        "<h1>Check your email</h1><p>We sent a 6-digit code to <strong>%s</strong>. "
        "It is valid for 10 minutes.</p>%s"
        '<form method="post" action="%s/code">%s'
        '<label for="code">6-digit code</label>'
        '<input id="code" type="text" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" '
        'autocomplete="one-time-code" required autofocus>'
        '<button type="submit">Sign in</button></form>%s%s%s'
        % (escape(email), _messages(error, notice), AUTH, _hidden(flow_id),
           _small_form("resend", flow_id, "Resend code"), _small_form("cancel", flow_id, "Cancel"), _outbox_note())
    )
    return layout("Enter your code", body)


def code_dead_page(flow_id, email, reason):
    """The code cannot be used any more: offer a new one."""
    body = (
        "<h1>Code not valid</h1>%s<p>Send a new code to <strong>%s</strong> and try again.</p>"
        '<form method="post" action="%s/resend">%s<button type="submit">Send a new code</button></form>%s'
        % (_messages(reason), escape(email), AUTH, _hidden(flow_id), _small_form("cancel", flow_id, "Cancel"))
    )
    return layout("Code not valid", body)


def link_sent_page(flow_id, email, notice=None):
    """Step 2 (magic link): tell the user to open the emailed link."""
    body = (
        "<h1>Check your email</h1><p>We sent a sign-in link to <strong>%s</strong>. "
        "Open it on this device within 10 minutes.</p>%s%s%s%s"
        % (escape(email), _messages(None, notice), _small_form("resend", flow_id, "Resend link"),
           _small_form("cancel", flow_id, "Cancel"), _outbox_note())
    )
    return layout("Check your email", body)


def problem_page(title, message, restart_url=None):
    """An error the user can only recover from by starting again."""
    action = ('<p><a href="%s">Start again</a></p>' % escape(restart_url)) if restart_url else (
        "<p>Go back to the app and start signing in again.</p>")
    return layout(title, "<h1>%s</h1>%s%s" % (escape(title), _messages(message), action))


def index_page(base_url, storage_url):
    """GET / : what this server is and where things are."""
    rows = [
        ("GET", "/api/v1/oauth/authorize?client_id=…&amp;redirect_uri=…&amp;code_challenge=…", "OAuth sign-in"),
        ("POST", "/api/v1/oauth/token · /oauth/device_authorization", "OAuth tokens, device grant"),
        ("GET", "/activate", "enter a device's code"),
        ("GET", "/api/v1/auth?redirect_url=…&amp;otp_only=true", "sign-in page (v1)"),
        ("POST", "/api/v1/auth/session", "api_key → session"),
        ("POST", "/api/v1/auth/session/refresh", "refresh"),
        ("GET", "/api/v1/user", "profile"),
        ("GET", "/api/v1/tones/created · /tones/favorited", "tones"),
        ("GET", "/api/v1/models?tone_id=…", "models"),
        ("GET", "/_emulator/outbox · /_emulator/requests · /_emulator/config", "inspection"),
    ]
    table = "".join("<li><code>%s %s</code> &mdash; %s</li>" % row for row in rows)
    body = (
        "<h1>TONE3000 API emulator</h1><p>API origin: <code>%s</code><br>Storage origin: <code>%s</code></p>"
        "<ul>%s</ul><p>Sign in as <code>demo@example.com</code> for a catalogue with tones and favorites.</p>"
        % (escape(base_url), escape(storage_url or "not running"), table)
    )
    return layout("Emulator", body)


OAUTH = "/api/v1/oauth"


def consent_page(kind, request_id, app_name, username):
    """After sign-in: may this app use the account?  `kind`: "code" or "device"."""
    body = (
        "<h1>Allow %s?</h1><p>Signed in as <strong>%s</strong>. <strong>%s</strong> wants to read your "
        "profile, your tones and your models, and download the models you may download.</p>"
        '<form method="post" action="%s/consent"><input type="hidden" name="kind" value="%s">'
        '<input type="hidden" name="request" value="%s"><input type="hidden" name="decision" value="allow">'
        '<button type="submit">Allow</button></form>'
        '<form method="post" action="%s/consent"><input type="hidden" name="kind" value="%s">'
        '<input type="hidden" name="request" value="%s"><input type="hidden" name="decision" value="deny">'
        '<button type="submit" class="secondary">Deny</button></form>'
        % (escape(app_name), escape(username), escape(app_name), OAUTH, escape(kind), escape(request_id),
           OAUTH, escape(kind), escape(request_id))
    )
    return layout("Allow access", body)


def activate_page(user_code="", error=None):
    """GET /activate: type the code a device shows."""
    body = (
        "<h1>Connect a device</h1><p>Enter the code shown on your device.</p>%s"
        '<form method="post" action="/activate"><label for="user_code">Code</label>'
        '<input id="user_code" type="text" name="user_code" value="%s" autocomplete="off" autocapitalize="characters" '
        'required autofocus><button type="submit">Continue</button></form>'
        % (_messages(error), escape(user_code))
    )
    return layout("Connect a device", body)


def device_done_page(approved, app_name):
    """The end of a device sign-in on the phone."""
    if approved:
        return layout("Device connected", "<h1>Device connected</h1><p>%s is signed in. You can close this page "
                      "and go back to your device.</p>" % escape(app_name))
    return layout("Not connected", "<h1>Not connected</h1><p>You denied access; %s is not signed in.</p>"
                  % escape(app_name))
