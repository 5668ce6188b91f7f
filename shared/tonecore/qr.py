"""A small QR code encoder (ISO/IEC 18004) for the pedal: byte mode, error correction
level L, versions 1 to 6 (up to 134 bytes: a sign-in address with its code fits).

The host draws its QR codes with segno; the pedal has no such library, so it shows the
device sign-in's address with this one (on its page as SVG, on the console as text).
The tests compare every module with the `qrcode` package's, for every version and mask.

    code = QrCode("https://www.tone3000.com/activate?user_code=BCDF-GHJK")
    code.size                  modules per side (21 for version 1, +4 a version)
    code.dark(x, y)            True for a dark module
    svg_parts(code)            an SVG image, as small strings (for a streamed page)

Memory: two bytearrays of size x size (at most 41 x 41) and the codewords while
encoding, then one.
"""

# version -> (data codewords, error correction codewords per block, blocks), level L
_LAYOUT = {1: (19, 7, 1), 2: (34, 10, 1), 3: (55, 15, 1), 4: (80, 20, 1), 5: (108, 26, 1), 6: (136, 18, 2)}
_ALIGN = {2: 18, 3: 22, 4: 26, 5: 30, 6: 34}  # the one alignment pattern's centre (besides 6)
MAX_BYTES = 134


def _gf_tables():
    exp = bytearray(512)
    log = bytearray(256)
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value <<= 1
        if value & 0x100:
            value ^= 0x11D
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


def _ec_codewords(data, count, exp, log):
    """The Reed-Solomon error correction codewords of `data` (count of them)."""
    generator = bytearray([1])
    for power in range(count):  # multiply by (x - 2^power)
        product = bytearray(len(generator) + 1)
        for at in range(len(generator)):
            product[at] ^= generator[at]
            if generator[at]:
                product[at + 1] ^= exp[log[generator[at]] + power]
        generator = product
    remainder = bytearray(data) + bytearray(count)
    for at in range(len(data)):
        factor = remainder[at]
        if factor:
            for k in range(1, len(generator)):
                if generator[k]:
                    remainder[at + k] ^= exp[log[generator[k]] + log[factor]]
    return remainder[len(data):]


def _codewords(payload, version):
    """Data and error correction codewords, interleaved as the symbol holds them."""
    data_count, ec_count, blocks = _LAYOUT[version]
    data = bytearray(data_count)  # the bits go straight in: no list of bits on the heap
    position = [0]

    def put(value, width):
        for shift in range(width - 1, -1, -1):
            if (value >> shift) & 1:
                at = position[0]
                data[at >> 3] |= 0x80 >> (at & 7)
            position[0] += 1

    put(4, 4)  # byte mode
    put(len(payload), 8)
    for byte in payload:
        put(byte, 8)
    used = (min(position[0] + 4, data_count * 8) + 7) // 8  # a terminator of up to 4 zero bits
    for at in range(used, data_count):
        data[at] = 0xEC if (at - used) % 2 == 0 else 0x11
    exp, log = _gf_tables()
    size = data_count // blocks
    chunks = [data[at * size:(at + 1) * size] for at in range(blocks)]
    ecs = [_ec_codewords(chunk, ec_count, exp, log) for chunk in chunks]
    out = bytearray()
    for at in range(size):
        for chunk in chunks:
            out.append(chunk[at])
    for at in range(ec_count):
        for ec in ecs:
            out.append(ec[at])
    return out


def _format_bits(mask):
    """The 15 format bits for level L and `mask` (BCH code, then the fixed XOR)."""
    value = (1 << 3 | mask) << 10  # level L is 01
    remainder = value
    for shift in range(14, 9, -1):
        if remainder & (1 << shift):
            remainder ^= 0x537 << (shift - 10)
    return (value | remainder) ^ 0x5412


_MASKS = (
    lambda x, y: (x + y) % 2 == 0,
    lambda x, y: y % 2 == 0,
    lambda x, y: x % 3 == 0,
    lambda x, y: (x + y) % 3 == 0,
    lambda x, y: (y // 2 + x // 3) % 2 == 0,
    lambda x, y: (x * y) % 2 + (x * y) % 3 == 0,
    lambda x, y: ((x * y) % 2 + (x * y) % 3) % 2 == 0,
    lambda x, y: ((x + y) % 2 + (x * y) % 3) % 2 == 0,
)


class QrCode:
    """The QR code of `text` (str or bytes), level L, the smallest version that holds it.

    Raises:
        ValueError: longer than MAX_BYTES.
    """

    def __init__(self, text, mask=0, version=None):
        payload = text.encode() if isinstance(text, str) else bytes(text)
        if version is None:
            version = 1
            while version <= 6 and _LAYOUT[version][0] - 2 < len(payload):
                version += 1
        if version > 6 or _LAYOUT[version][0] - 2 < len(payload):
            raise ValueError("%d bytes do not fit a version 1-6 QR code" % len(payload))
        self.version = version
        self.mask = mask
        self.size = size = 17 + 4 * version
        self.modules = bytearray(size * size)
        reserved = bytearray(size * size)
        self._functions(reserved)
        self._place(_codewords(payload, version), reserved)
        self._format()

    def dark(self, x, y):
        return self.modules[y * self.size + x] == 1

    def _set(self, reserved, x, y, dark):
        at = y * self.size + x
        self.modules[at] = 1 if dark else 0
        reserved[at] = 1

    def _functions(self, reserved):
        size = self.size
        for cx, cy in ((3, 3), (size - 4, 3), (3, size - 4)):  # finders and their separators
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    x, y = cx + dx, cy + dy
                    if 0 <= x < size and 0 <= y < size:
                        ring = max(abs(dx), abs(dy))
                        self._set(reserved, x, y, ring != 2 and ring != 4)
        for at in range(8, size - 8):  # timing patterns
            self._set(reserved, at, 6, at % 2 == 0)
            self._set(reserved, 6, at, at % 2 == 0)
        centre = _ALIGN.get(self.version)
        if centre:
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    self._set(reserved, centre + dx, centre + dy, max(abs(dx), abs(dy)) != 1)
        for at in range(9):  # the format areas, written last
            reserved[8 * size + at] = reserved[at * size + 8] = 1
        for at in range(8):
            reserved[8 * size + size - 1 - at] = reserved[(size - 1 - at) * size + 8] = 1
        self._set(reserved, 8, size - 8, True)  # the dark module

    def _place(self, codewords, reserved):
        size = self.size
        test = _MASKS[self.mask]
        bit = 0
        total = len(codewords) * 8
        right = size - 1
        while right > 0:
            if right == 6:
                right -= 1  # the vertical timing pattern has no data column beside it
            upward = (right + 1) & 2 == 0
            for step in range(size):
                y = size - 1 - step if upward else step
                for x in (right, right - 1):
                    at = y * size + x
                    if reserved[at]:
                        continue
                    dark = bit < total and (codewords[bit >> 3] >> (7 - (bit & 7))) & 1
                    bit += 1
                    if test(x, y):
                        dark = not dark
                    self.modules[at] = 1 if dark else 0
            right -= 2

    def _format(self):
        size = self.size
        bits = _format_bits(self.mask)
        for at in range(15):
            dark = (bits >> at) & 1
            # around the top-left finder
            if at < 6:
                x, y = 8, at
            elif at < 8:
                x, y = 8, at + 1
            elif at == 8:
                x, y = 7, 8
            else:
                x, y = 14 - at, 8
            self.modules[y * size + x] = dark
            # split between the other two finders
            if at < 8:
                x, y = size - 1 - at, 8
            else:
                x, y = 8, size - 15 + at
            self.modules[y * size + x] = dark


def svg_parts(code, module=6, border=4):
    """An SVG image of `code`, as a generator of small strings (dark runs as rectangles)."""
    side = (code.size + 2 * border) * module
    yield ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" '
           'aria-label="QR code"><rect width="100%%" height="100%%" fill="#fff"/><path fill="#000" d="'
           % (side, side, side, side))
    for y in range(code.size):
        x = 0
        while x < code.size:
            if code.dark(x, y):
                start = x
                while x < code.size and code.dark(x, y):
                    x += 1
                yield "M%d %dh%dv%dh-%dz" % ((start + border) * module, (y + border) * module,
                                            (x - start) * module, module, (x - start) * module)
            else:
                x += 1
    yield '"/></svg>'


def text_lines(code, border=2):
    """The code as lines of text for a console: two characters per module."""
    blank = "  " * (code.size + 2 * border)
    for _ in range(border):
        yield blank
    for y in range(code.size):
        row = "  " * border
        for x in range(code.size):
            row += "##" if code.dark(x, y) else "  "
        yield row + "  " * border
    for _ in range(border):
        yield blank
