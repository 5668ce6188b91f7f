"""A small `unittest` for the MicroPython unix port, which ships none.

Only what tests/core uses: TestCase with setUp/tearDown, the common assertions,
assertRaises (callable and context-manager forms), SkipTest.  CPython never imports
this file: pytest runs the same TestCase classes with the real unittest.
"""


class SkipTest(Exception):
    pass


class AssertionFailure(AssertionError):
    pass


class _Raises:
    def __init__(self, expected):
        self.expected = expected
        self.exception = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise AssertionFailure("%s not raised" % _name(self.expected))
        if not issubclass(exc_type, self.expected):
            return False
        self.exception = exc
        return True


def _name(kind):
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return kind.__name__


class TestCase:
    def setUp(self):
        pass

    def tearDown(self):
        pass

    def skipTest(self, reason):
        raise SkipTest(reason)

    def fail(self, msg="failed"):
        raise AssertionFailure(msg)

    def assertEqual(self, a, b, msg=None):
        if not a == b:
            self.fail(msg or "%r != %r" % (a, b))

    def assertNotEqual(self, a, b, msg=None):
        if a == b:
            self.fail(msg or "%r == %r" % (a, b))

    def assertTrue(self, x, msg=None):
        if not x:
            self.fail(msg or "%r is not true" % (x,))

    def assertFalse(self, x, msg=None):
        if x:
            self.fail(msg or "%r is not false" % (x,))

    def assertIs(self, a, b, msg=None):
        if a is not b:
            self.fail(msg or "%r is not %r" % (a, b))

    def assertIsNone(self, x, msg=None):
        if x is not None:
            self.fail(msg or "%r is not None" % (x,))

    def assertIsNotNone(self, x, msg=None):
        if x is None:
            self.fail(msg or "unexpectedly None")

    def assertIn(self, a, b, msg=None):
        if a not in b:
            self.fail(msg or "%r not in %r" % (a, b))

    def assertNotIn(self, a, b, msg=None):
        if a in b:
            self.fail(msg or "%r unexpectedly in %r" % (a, b))

    def assertIsInstance(self, x, kind, msg=None):
        if not isinstance(x, kind):
            self.fail(msg or "%r is not an instance of %r" % (x, kind))

    def assertGreater(self, a, b, msg=None):
        if not a > b:
            self.fail(msg or "%r not > %r" % (a, b))

    def assertGreaterEqual(self, a, b, msg=None):
        if not a >= b:
            self.fail(msg or "%r not >= %r" % (a, b))

    def assertLess(self, a, b, msg=None):
        if not a < b:
            self.fail(msg or "%r not < %r" % (a, b))

    def assertLessEqual(self, a, b, msg=None):
        if not a <= b:
            self.fail(msg or "%r not <= %r" % (a, b))

    def assertRaises(self, expected, func=None, *args, **kwargs):
        ctx = _Raises(expected)
        if func is None:
            return ctx
        with ctx:
            func(*args, **kwargs)
        return ctx


def main():
    raise SystemExit("run tests with tests/core/run_micropython.py")
