"""A streaming scan of a JSON model file (tonecore.formats): the top-level keys it holds
and the JSON type of their values, in memory that does not grow with the file.

The scan keeps: whether it is inside a string (and after a backslash), a stack of the
open brackets (at most MAX_DEPTH), the top-level string just read when it is one of the
keys wanted, and {wanted key: first byte of its value}.  It jumps from one interesting
byte to the next with bytes.find, C speed on both runtimes: quotes, backslashes inside
strings, brackets, and at the top level ':' (the next byte that is not whitespace starts
the value of the key just read).  Keys count only at the top level, never inside strings.

It checks that the file is exactly one object, its brackets match and nothing but
whitespace follows; it does not check every comma (a loader refuses such a file; the
scan's job is to refuse what is not the kind of file its name says, or is cut short).
"""

from .compat import const

MAX_DEPTH = 64  # nesting deeper than this is refused (the stack is this many bytes)
SCAN_BYTES = 512  # a memoryview (no find()) is scanned through a scratch buffer of this size
KEY_BYTES = 16  # longer top-level strings are no keys we look for
VALUES = b'{["-0123456789tfn'  # the bytes a JSON value starts with

# states outside strings: before the object, inside it, after a top-level ':', after it
_START = const(0)
_SCAN = const(1)
_VALUE = const(2)
_END = const(3)
_FIND = (b'"', b"\\", b"{", b"}", b"[", b"]", b":")  # the bytes jumped to, by index in JsonScan.at


class JsonScan:
    """Feed it a file's bytes in order; `problem()` at the end.

    Args:
        wanted: the top-level keys (bytes) whose values' types are recorded in `found`
            ({key: the first byte of its value}).
    """

    def __init__(self, wanted):
        self.wanted = wanted
        self.found = {}
        self.error = None  # the first problem (sticky: later bytes are not looked at)
        self.seen = 0
        self.state = _START
        self.string = self.escaped = False
        self.depth = 0
        self.stack = bytearray(MAX_DEPTH)
        self.key = self.last = self.member = None  # a top-level string being read, the last one, the key of the value next
        self.at = [0] * len(_FIND)  # where the next of each _FIND byte is in the piece being scanned
        self.scratch = None

    def feed(self, data):
        if type(data) is not memoryview:
            self._piece(data, len(data))
            self.seen += len(data)
            return
        scratch = self.scratch  # no find() on a memoryview: scan a copy, a piece at a time
        if scratch is None:
            scratch = self.scratch = bytearray(SCAN_BYTES)
        done = 0
        while done < len(data) and self.error is None:
            count = min(SCAN_BYTES, len(data) - done)
            scratch[:count] = data[done:done + count]
            self._piece(scratch, count)
            done += count
            self.seen += count

    def problem(self):
        """What is wrong with the bytes fed, or None when they are one complete object."""
        if self.error is None and self.state != _END:
            if self.state == _START:
                return "no JSON object"
            return "it is cut short (it ends %s)" % (
                "inside a string" if self.string else "with %d unclosed brackets" % self.depth)
        return self.error

    def _fail(self, what, pos):
        if self.error is None:
            self.error = "%s at byte %d" % (what, self.seen + pos)

    def _piece(self, data, end):
        at = self.at
        for index in range(len(at)):
            at[index] = -1  # a new piece: no position known
        pos = 0
        while pos < end and self.error is None:
            if self.string:
                pos = self._in_string(data, pos, end)
            elif self.state == _SCAN:
                pos = self._scan(data, pos, end)
            elif data[pos] in b" \t\r\n":
                pos += 1
            elif self.state == _VALUE:  # the first byte of a top-level value: its type
                if data[pos] not in VALUES:
                    self._fail("a value was expected", pos)
                elif self.member is not None:
                    self.found[self.member] = data[pos]
                self.state = _SCAN  # (which reads that byte again: a string or a bracket opens)
            elif self.state == _START and data[pos] == 0x7B:
                self._open(0x7B, pos)
                self.state = _SCAN
                pos += 1
            else:
                self._fail("more after the JSON object" if self.state == _END else "no JSON object", pos)

    def _next(self, index, data, pos, end):
        """Where the next _FIND[index] byte is, from `pos` (`end`: not in this piece)."""
        at = self.at
        found = at[index]
        if found < pos:
            found = data.find(_FIND[index], pos, end)
            at[index] = found = end if found < 0 else found
        return found

    def _scan(self, data, pos, end):
        """Outside strings: jump to the next quote or bracket, or at the top level a ':'."""
        stop = min(self._next(0, data, pos, end), self._next(2, data, pos, end), self._next(3, data, pos, end),
                   self._next(4, data, pos, end), self._next(5, data, pos, end))
        if self.depth == 1 and self._next(6, data, pos, end) < stop:
            self.state = _VALUE
            self.member, self.last = self.last, None
            return self.at[6] + 1
        if stop >= end:
            return end
        byte = data[stop]
        if byte == 0x22:
            self.string = True
            self.key = bytearray() if self.depth == 1 and self.wanted else None
        elif byte == 0x7B or byte == 0x5B:
            self._open(byte, stop)
        else:
            self.depth -= 1
            if self.stack[self.depth] != byte - 2:  # '{' + 2 == '}', '[' + 2 == ']'
                self._fail("%s closes %s" % (chr(byte), chr(self.stack[self.depth])), stop)
            elif not self.depth:
                self.state = _END
        return stop + 1

    def _in_string(self, data, pos, end):
        """Inside a string from `pos`: jump to its end or its next escape."""
        if self.escaped:  # the byte after a backslash that ended the last piece
            self.escaped = False
            self._key_add(data, pos, pos + 1)
            return pos + 1
        quote = self._next(0, data, pos, end)
        backslash = self._next(1, data, pos, end)
        if backslash < quote:  # skip the backslash and the byte after it
            self.escaped = backslash + 1 >= end
            self._key_add(data, pos, backslash + 2)  # (kept escaped: such a key is none we want)
            return backslash + 2
        self._key_add(data, pos, quote)
        if quote >= end:
            return end
        self.string = False  # the closing quote
        if self.depth == 1:
            key = self.key
            self.last = bytes(key) if key is not None and bytes(key) in self.wanted else None
        self.key = None
        return quote + 1

    def _key_add(self, data, start, stop):
        """data[start:stop] of a top-level string, kept while it could be a key we want."""
        key = self.key
        if key is not None:
            if len(key) + stop - start > KEY_BYTES:
                self.key = None
            else:
                key.extend(data[start:stop])

    def _open(self, byte, pos):
        if self.depth >= MAX_DEPTH:
            self._fail("nested deeper than %d" % MAX_DEPTH, pos)
        else:
            self.stack[self.depth] = byte
            self.depth += 1
