"""What the pedal's page says when things go wrong, without a browser (tests/browser
has the same page in Chromium): an unreachable TONE3000, a page that does not exist, an
API client's JSON next to a form's page."""

import json
import time

from pedal_helpers import portal, sync_finished, wait_status

from tonebridge.boards.flashimage import make_image
from tonebridge.dev.simulator import SimulatedPedal, free_port

SESSION = {"access_token": "ACCESS-SECRET", "refresh_token": "REFRESH-SECRET", "expires_in": 3600, "flow": "pkce",
           "client_id": "t3k_pub_tonebridge_demo"}


def test_an_offline_sync_says_check_the_wifi_in_plain_words(lib, tmp_path):
    flash = tmp_path / "flash.img"
    record = dict(SESSION, expires_at=int(time.time()) + 3600)
    make_image(str(flash), {"session.json": json.dumps(record).encode()})
    dead = "http://127.0.0.1:%d/api/v1" % free_port()  # nothing listens: "the Wi-Fi is down"
    with SimulatedPedal(dead, str(flash), lib=lib, env={"TONEBRIDGE_NET": '{"io_timeout_ms": 2000}'}) as pedal:
        pedal.start()
        done = wait_status(pedal, sync_finished, 60, "the sync's end")
        words = "TONE3000 could not be reached (or answered too slowly): check the pedal's Wi-Fi, then try again."
        assert done["sync"]["state"] == "error" and done["sync"]["error"] == words
        page = portal(pedal).get("").text
        assert words.replace("'", "&#x27;") in page or words in page
        assert "127.0.0.1" not in page  # no address for a guitarist to decode
        missing = portal(pedal).get("no-such-page")
        assert missing.status_code == 404 and "There is no such page on the pedal." in missing.text
        assert portal(pedal).get("no-such-page", headers={"Accept": "application/json"}).json() == {
            "error": "no such page"}
