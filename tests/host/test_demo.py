"""`make demo` end to end: the real CLI and the simulated pedal against the emulator."""

import os
import subprocess
import sys

import pytest

from tonebridge.boards.flashimage import problems


@pytest.mark.slow
def test_the_demo_runs_the_host_and_the_pedal_parts(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "tonebridge.dev.demo", "--out", str(out)], capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    assert text.count("Signed in as demo_player") == 3  # PKCE, the device grant, the seed's OTP flow
    assert "/api/v1/oauth/authorize?" in text and "[phone] shows: Device connected" in text
    assert "/api/v1/auth?redirect_url=" in text  # the seed's flow, against the v1 emulator
    assert "the emulator will cut the first download" in text
    assert "back on the pedal's page" in text and "sync: done" in text
    assert "models verified on the flash image" in text
    manifest, _, found = problems(str(out / "pedal-flash.img"))
    assert not found and len(manifest["models"]) >= 10
    assert os.path.getsize(out / "pedal-console.log") > 0
    assert "Traceback" not in done.stdout + done.stderr
