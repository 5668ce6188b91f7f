"""The pedal's Wi-Fi: its name on the network, joining the home network, the set-up
access point, and the set-up page's scan and save.

    join(wifi, root, name)   at boot (main.boot): the network in config.json's "wifi";
                             without one (or when it cannot be joined within its
                             timeout_s) a WPA2 access point named `name`, whose
                             password the console shows.  Joining closes the access
                             point: set-up is over.
    device_name()            "tonebridge-" + the last 4 hex digits of the MAC: the DHCP
                             host name, the mDNS name (<name>.local) and the AP's SSID
    scan()                   [(ssid, rssi, secure)] for the set-up page, strongest first
    save(root, ssid, pw)     put the network in config.json (the next boot joins it)

The unix port has no `network` module: scan() returns None there and the set-up page
asks for the name by hand (the simulator joins no real network).
"""

import time

from tonecore.compat import hexlify

from .console import log
from .library import read_json, write_json

CONFIG = "config.json"
SCAN_MAX = 12


def device_name():
    """This pedal's network name, "tonebridge-" and the last 4 hex digits of its MAC:
    its DHCP host name and mDNS name (<name>.local) and its access point's SSID."""
    try:
        import machine

        return "tonebridge-" + hexlify(machine.unique_id())[-4:]
    except (ImportError, AttributeError):
        return "tonebridge"


AP_PASSWORD = "wifi_ap.json"
_PASSWORD_LETTERS = "abcdefghjkmnpqrstuvwxyz23456789"  # none that read alike (l/1, o/0)


def ap_password(root, wifi):
    """The set-up access point's WPA2 password: config.json's wifi.ap_password (8 to 63
    characters), else one made up at the first start and kept in wifi_ap.json."""
    chosen = wifi.get("ap_password")
    if isinstance(chosen, str) and 8 <= len(chosen) <= 63:
        return chosen
    path = root + "/" + AP_PASSWORD
    kept = read_json(path, None)
    if isinstance(kept, dict) and isinstance(kept.get("password"), str) and len(kept["password"]) >= 8:
        return kept["password"]
    import os

    password = "".join(_PASSWORD_LETTERS[b % len(_PASSWORD_LETTERS)] for b in os.urandom(12))
    write_json(path, {"password": password})
    return password


def join(wifi, root="", name="tonebridge"):
    """Join the configured network (as `name`, also its mDNS name); without one, open a
    WPA2 access point for the portal, whose password the console shows.  Returns the
    pedal's address."""
    import network

    try:
        network.hostname(name)  # DHCP and mDNS: http://<name>.local/
    except (AttributeError, ValueError, OSError):
        pass
    ssid = wifi.get("ssid")
    timeout_ms = int(wifi.get("timeout_s", 20) * 1000)
    ap = network.WLAN(network.AP_IF)
    if ssid:
        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        sta.connect(ssid, wifi.get("password") or "")
        started = time.ticks_ms()
        while not sta.isconnected() and time.ticks_diff(time.ticks_ms(), started) < timeout_ms:
            time.sleep_ms(200)
        if sta.isconnected():
            ap.active(False)  # set-up is over: no open door beside the home network
            address = sta.ifconfig()[0]
            log("wifi: joined %s as %s; the page: http://%s/ or http://%s.local/" % (ssid, address, address, name))
            try:
                import ntptime

                ntptime.settime()  # token expiry needs the wall clock
            except Exception as exc:  # no NTP: tokens are refreshed before first use
                log("wifi: no network time (%s)" % exc)
            return address
        log("wifi: could not join %s" % ssid)
    password = ap_password(root, wifi)
    ap.active(True)
    ap.config(essid=name, password=password, authmode=getattr(network, "AUTH_WPA2_PSK", 3))
    address = ap.ifconfig()[0]
    log("wifi: no network; join '%s' (password %s) and open http://%s/" % (name, password, address))
    return address


def scan():
    """Networks in reach for the set-up page, or None without a radio (the unix port)."""
    try:
        import network
    except ImportError:
        return None
    try:
        sta = network.WLAN(network.STA_IF)
        sta.active(True)
        found = sta.scan()  # (ssid, bssid, channel, RSSI, security, hidden)
    except (OSError, AttributeError) as exc:
        log("wifi: scan failed: %s" % (exc,))
        return []
    best = {}
    for entry in found:
        try:
            ssid = entry[0].decode()
        except (UnicodeError, AttributeError):
            continue
        if ssid and (ssid not in best or entry[3] > best[ssid][1]):
            best[ssid] = (ssid, entry[3], entry[4] != 0)
    networks = sorted(best.values(), key=lambda item: -item[1])
    return networks[:SCAN_MAX]


def save(root, ssid, password):
    """Put `ssid` and `password` in config.json's "wifi" (other settings stay).

    Returns:
        the SSID saved.
    Raises:
        ValueError: a message for the page (no name, too long, a bad password).
    """
    ssid = (ssid or "").strip() if isinstance(ssid, str) else ""
    password = password if isinstance(password, str) else ""
    if not ssid or len(ssid.encode()) > 32:
        raise ValueError("Choose a network (its name is 1 to 32 characters).")
    if password and not 8 <= len(password) <= 63:
        raise ValueError("A Wi-Fi password is 8 to 63 characters (or none for an open network).")
    for char in ssid + password:
        if ord(char) < 32:
            raise ValueError("The name or password has a character Wi-Fi does not allow.")
    path = root + "/" + CONFIG
    config = read_json(path, None)
    if not isinstance(config, dict):
        config = {}
    wifi = config.get("wifi") if isinstance(config.get("wifi"), dict) else {}
    wifi["ssid"] = ssid
    wifi["password"] = password
    config["wifi"] = wifi
    write_json(path, config)
    log("wifi: saved the network %s; the next start joins it" % ssid)
    return ssid
