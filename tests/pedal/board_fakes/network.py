"""A stand-in for MicroPython's `network` on the unix port (test_pedal_boot.py).

The station "joins" only the network named in FAKE_SSID ("HomeNet"), with the password
"secret-home"; a scan finds it (twice, as two access points) and an open "Cafe"; the
access point reports the ESP32's usual 192.168.4.1.
"""

STA_IF = 0
AP_IF = 1
AUTH_WPA2_PSK = 3
HOSTNAME = []  # what network.hostname() was given


def hostname(name=None):
    if name is not None:
        HOSTNAME.append(name)
    return HOSTNAME[-1] if HOSTNAME else "espressif"

FAKE_SSID = "HomeNet"
FAKE_PASSWORD = "secret-home"


class WLAN:
    def __init__(self, interface):
        self.interface = interface
        self.connected = False
        self.essid = None

    def active(self, on=None):
        return True

    def connect(self, ssid, password):
        self.connected = ssid == FAKE_SSID and password == FAKE_PASSWORD

    def scan(self):
        # (ssid, bssid, channel, RSSI, security, hidden), as MicroPython's WLAN.scan()
        return [(b"Cafe", b"\x02" * 6, 1, -81, 0, False), (b"HomeNet", b"\x01" * 6, 6, -70, 3, False),
                (b"HomeNet", b"\x03" * 6, 11, -48, 3, False), (b"\xff\xfe", b"\x04" * 6, 3, -60, 3, False)]

    def isconnected(self):
        return self.connected

    def ifconfig(self):
        if self.interface == AP_IF:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")
        return ("10.0.0.7", "255.255.255.0", "10.0.0.1", "10.0.0.1")

    def config(self, **settings):
        self.essid = settings.get("essid", self.essid)
        if self.interface == AP_IF:
            assert settings.get("authmode") == AUTH_WPA2_PSK and len(settings.get("password") or "") >= 8, \
                "an open access point"
            print("fake network: access point %s, WPA2" % self.essid)
