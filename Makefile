# tonebridge - the two set-up commands are `make demo` and `make test`; both install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# An ESP32 without PSRAM: the MicroPython heap the core's tests must fit in.
MPY_HEAP ?= 128k

.PHONY: install test test-micropython test-python fuzz soak demo bench firmware clean

install: $(VENV)/.installed

# Reinstalled when the dependencies or the version (tonecore's __init__.py) change; `dev`
# includes the `emulator` (Starlette, uvicorn) and `sim` (the MicroPython unix port) extras.
$(VENV)/.installed: pyproject.toml shared/tonecore/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

## test: the core under MicroPython (compiled with mpy-cross, heap capped), then pytest
test: test-micropython test-python

test-micropython: install
	rm -rf build/mpy-test
	$(BIN)/python -m tonebridge.boards.mpycross build/mpy-test shared/tonecore=tonecore tests/core
	MICROPYPATH=build/mpy-test $(BIN)/micropython -X heapsize=$(MPY_HEAP) -m run_micropython --path build/mpy-test --heap $(MPY_HEAP)

test-python: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

## fuzz: the fuzz tests with 1000000 random inputs each (make test runs 100000, derandomized)
fuzz: install
	TONEBRIDGE_FUZZ_EXAMPLES=1000000 TONEBRIDGE_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/properties -k fuzz

## soak: the hostile-API matrix (host CLI and simulated pedal) with the real limits: a byte
## every 14 s, a 64 MB flood, the full retry backoff; several minutes (make test runs it short)
soak: install
	TONEBRIDGE_SOAK=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/host/test_hostile_api.py tests/pedal/test_pedal_hostile_api.py

## demo: local emulator, OTP sign-in, favorites, downloads
demo: install
	$(BIN)/python -m tonebridge.dev.demo

## bench: throughput and memory numbers as JSON (not part of `make test`)
bench:
	@$(MAKE) --no-print-directory install 1>&2  # stdout is for the JSON only
	@$(BIN)/python -m tests.bench.run

## firmware: compile the pedal firmware for BOARD into build/BOARD (see boards/README.md)
BOARD ?= esp32_generic
firmware: install
	$(BIN)/tonebridge firmware build --board $(BOARD)

clean:
	rm -rf build .pytest_cache demo-out bench-results.json
