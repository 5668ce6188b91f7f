"""The pedal's QR encoder (tonecore.qr) against the `qrcode` package, module for module."""

import random
import xml.etree.ElementTree as ElementTree

import pytest
import qrcode
from qrcode.util import MODE_8BIT_BYTE, QRData

from tonecore.qr import MAX_BYTES, QrCode, svg_parts, text_lines


def reference(payload, version, mask):
    code = qrcode.QRCode(version=version, error_correction=qrcode.constants.ERROR_CORRECT_L, mask_pattern=mask,
                         border=0)
    code.add_data(QRData(payload, mode=MODE_8BIT_BYTE))
    code.make(fit=False)
    return code.get_matrix()


@pytest.mark.parametrize("length", [1, 17, 18, 32, 33, 53, 54, 78, 79, 106, 107, 120, MAX_BYTES])
def test_every_module_matches_the_reference_for_every_mask(length):
    rng = random.Random(length)
    payload = bytes(rng.randrange(256) for _ in range(length))
    for mask in range(8):
        mine = QrCode(payload, mask)
        assert mine.size == 17 + 4 * mine.version
        matrix = reference(payload, mine.version, mask)
        assert [[int(bool(v)) for v in row] for row in matrix] == [
            [int(mine.dark(x, y)) for x in range(mine.size)] for y in range(mine.size)]


def test_the_smallest_version_is_chosen_and_too_long_is_refused():
    assert QrCode("https://www.tone3000.com/activate?user_code=BCDF-GHJK").version == 3
    assert QrCode("x" * 17).version == 1 and QrCode("x" * 18).version == 2
    with pytest.raises(ValueError):
        QrCode("x" * (MAX_BYTES + 1))


def test_svg_and_text_renderings():
    code = QrCode("https://www.tone3000.com/activate?user_code=BCDF-GHJK")
    svg = ElementTree.fromstring("".join(svg_parts(code)))
    assert svg.tag.endswith("svg") and svg.get("width") == str((code.size + 8) * 6)
    lines = list(text_lines(code))
    assert len(lines) == code.size + 4 and {len(line) for line in lines} == {2 * (code.size + 4)}
    assert lines[2][4:18] == "#" * 14  # the top-left finder's first row: 7 dark modules
