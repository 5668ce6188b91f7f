"""What is not a model file never gets onto the pedal: `tonebridge pedal push` checks the
file before it connects, and the pedal (the real firmware, simulated) checks every PUT's
fields and every file's structure itself, whatever the host sends.  Each refusal is one
line and an ERROR reply, never a traceback or silence."""

import subprocess
import sys
import zlib

import pytest
from link_helpers import NO_API, nam_bytes, open_link, pedal_env, sha, wav_bytes, write

from tonebridge.boards.flashimage import check_library
from tonebridge.dev.simulator import SimulatedPedal
from tonecore import link
from tonecore.errors import PedalRefused

TONEBRIDGE = [sys.executable, "-m", "tonebridge"]
NOT_A_PORT = "/nonexistent/tty-for-tonebridge-tests"


def push_cli(path, *options):
    return subprocess.run(TONEBRIDGE + ["pedal", "push", str(path), "--port", NOT_A_PORT] + list(options),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name, data, options, code, message", [
    ("notes.txt", b"hello", [], 6, "notes.txt is not a model file tonebridge knows (.aidax, .json, .nam, .wav)"),
    ("m.json", b'{"a": 1}', [], 6, 'm.json is not an AIDA-X model: no "model_data"'),
    ("cut.nam", nam_bytes(2000)[:-30], [], 6, "cut.nam is not a NAM model: it is cut short"),
    ("lofi.wav", wav_bytes(2044)[:34] + b"\x08\x00" + wav_bytes(2044)[36:], [], 6, "8-bit PCM samples"),
    ("cab.wav", wav_bytes(2044), ["--platform", "nam"], 6, "a .wav file is an impulse response, not a NAM model"),
    ("clean.nam", nam_bytes(2000), ["--platform", "banana"], 2, "Invalid value for '--platform'"),
])
def test_push_refuses_what_is_no_model_file_before_it_looks_for_the_pedal(tmp_path, name, data, options, code,
                                                                            message):
    done = push_cli(write(tmp_path / name, data), *options)
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("tonebridge: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    assert NOT_A_PORT not in done.stderr  # refused before the port was opened


def test_a_good_file_gets_past_the_check_to_the_port(tmp_path):
    done = push_cli(write(tmp_path / "clean.nam", nam_bytes(2000)))
    assert done.returncode not in (0, 6) and NOT_A_PORT in done.stderr, done.stderr  # (then: no such port)


@pytest.fixture(scope="module")
def shared_pedal(lib, tmp_path_factory):
    sim = SimulatedPedal(NO_API, str(tmp_path_factory.mktemp("flash") / "flash.img"), lib=lib, env=pedal_env())
    with sim:
        sim.start()
        yield sim


def bomb(chunk):
    """Raw deflate of `chunk` and then 256 KB of zeros: ~250 bytes more on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -9)
    return packer.compress(bytes(chunk) + bytes(256 * 1024)) + packer.flush()


def test_the_pedal_refuses_bad_files_and_deflate_bombs_itself_and_keeps_nothing_of_them(pedal, tmp_path):
    # PedalLink.push checks nothing: what it sends, the pedal judges
    cases = [
        ("notes.txt", b'{"version": "1"}', None, "notes.txt is not a model file"),  # at PUT
        ("m.json", b'{"a": 1}', "aida-x", 'm.json is not an AIDA-X model: no "model_data"'),  # at COMMIT
        ("cab.wav", wav_bytes(4044)[:24] + (22050).to_bytes(4, "little") + wav_bytes(4044)[28:], "ir", "22050 Hz"),
        ("clean.nam", nam_bytes(3000), "banana", "'banana' is not a platform"),
        ("deep.nam", b'{"version": "1", "architecture": "A", "config": ' + b"[" * 70 + b"]" * 70 + b"}", "nam",
         "nested deeper than 64"),
    ]
    data = nam_bytes(60_000, 3)
    path = write(tmp_path / "bomb.nam", data)
    with open_link(pedal.serial_path) as link_:
        for model_id, (name, content, platform, message) in enumerate(cases, 900):
            with pytest.raises(PedalRefused) as refused:
                link_.push(write(tmp_path / name, content), model_id, platform=platform)
            assert refused.value.code == link.E_FORMAT and message in str(refused.value), name
            assert "\n" not in str(refused.value)
        assert link_.models()[0] == []
        link_.end.compress = bomb
        with pytest.raises(PedalRefused) as refused:
            link_.push(path, 970, platform="nam")
        assert refused.value.code == link.E_BAD_REQUEST and "inflates past" in str(refused.value)
        link_.compress = True  # the real compressor: the same file goes in, from where the good bytes end
        result = link_.push(path, 970, platform="nam")
        assert result.sha256 == sha(data) and result.compressed_frames > 0
    pedal.wait_for_console(lambda line: "usb: model 970 installed" in line, 10)
    assert not any("MemoryError" in line for line in pedal.console_lines())
    pedal.stop()
    manifest, files = check_library(pedal.flash)
    assert [e["id"] for e in manifest["models"]] == [970]
    assert sorted(files) == ["970-%s.nam" % sha(data)[:8]]  # no .part of a refused file


def put_fields(**change):
    data = nam_bytes(3000)
    fields = {link.K_ID: 960, link.K_SIZE: len(data), link.K_SHA: bytes.fromhex(sha(data)), link.K_NAME: "Fine",
              link.K_PLATFORM: "nam", link.K_FILENAME: "fine.nam"}
    for key, value in change.items():
        if value is None:
            del fields[getattr(link, key)]
        else:
            fields[getattr(link, key)] = value
    return fields


@pytest.mark.parametrize("change", [
    {"K_NAME": ["a", "list"]}, {"K_FILENAME": 12}, {"K_NAME": "n" * 65}, {"K_FILENAME": None}, {"K_SHA": None},
    {"K_SIZE": 0}, {"K_ID": -4}, {"K_CLASS": "huge"}, {"K_TONE": "7"}, {"K_NAME": "two\nlines"},
])
def test_malformed_put_fields_get_a_bad_request_and_open_nothing(shared_pedal, change):
    with open_link(shared_pedal.serial_path) as link_:
        with pytest.raises(PedalRefused) as refused:
            link_.request(link.PUT, put_fields(**change))
        assert refused.value.code == link.E_BAD_REQUEST and "field" in str(refused.value)
        assert link_.stat(960) == (0, False)  # the pedal answers on; nothing was opened
