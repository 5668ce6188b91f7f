"""How much the fuzz tests fuzz, in one place.

TONEBRIDGE_FUZZ_EXAMPLES inputs per fuzz test (default 100000, as `make test` runs it;
`make fuzz` asks for 1000000).  Derandomized (the same inputs every run, as CI wants)
unless TONEBRIDGE_FUZZ_RANDOM=1.  A hypothesis example carries a batch of inputs:
hypothesis's own cost per example is far above one decode.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

FUZZ_CASES = int(os.environ.get("TONEBRIDGE_FUZZ_EXAMPLES", "100000"))
FUZZ_RANDOM = os.environ.get("TONEBRIDGE_FUZZ_RANDOM") == "1"
BATCH = 25  # inputs per hypothesis example
# pytest-timeout's default (300 s) is too short for `make fuzz`: scale it with the work.
FUZZ_TIMEOUT = pytest.mark.timeout(120 + FUZZ_CASES // 2000)
ROUND_TRIP = settings(max_examples=1000, deadline=None, derandomize=not FUZZ_RANDOM, database=None)


def fuzz_settings(cases, batch):
    """Settings for a fuzz test that feeds `batch` inputs per example, `cases` in all."""
    return settings(
        max_examples=(cases + batch - 1) // batch,
        deadline=None,
        derandomize=not FUZZ_RANDOM,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def corpus_settings(examples):
    """Settings for the corpus generators (make_*_corpus.py): deterministic, no health checks."""
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
