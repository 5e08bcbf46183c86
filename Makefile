# edgekd: `make demo` and `make test` are the two commands a newcomer needs.
# Both create .venv if it is missing; a second run reuses it and starts in seconds.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.edgekd-installed
TORCH_VERSION := 2.13.0
TARGET ?= all
CHECKPOINT ?=
PYTEST_ARGS ?=
TFLM_SRC ?=

.PHONY: demo test export bench report toolchain venv clean help

help:
	@echo "make demo     set up .venv, then train teacher/student/KD student end to end"
	@echo "make test     set up .venv, then run the test suite"
	@echo "make export   TARGET=onnx|tflite|tflm|c|all [CHECKPOINT=...]"
	@echo "make bench    edgekd bench --demo --zoo: Cortex-M (est.) and host (meas.), reports/bench.json + report.html"
	@echo "make report   render reports/report.md and reports/report.html again from reports/bench.json"

venv: $(STAMP)

# torch first, pinned: the CPU wheel is on local disk; a bare `torch` would pull CUDA builds.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e ".[all]"
	touch $(STAMP)

# The Cortex-M cross compiler, where apt is available (root); otherwise MCU parts skip with a reason.
toolchain:
	@if command -v arm-none-eabi-gcc >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "installing gcc-arm-none-eabi (Debian, no recommends)"; \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc-arm-none-eabi >/dev/null) \
	    || echo "warning: gcc-arm-none-eabi could not be installed; Cortex-M parts will skip"; \
	else echo "note: arm-none-eabi-gcc not found and apt unavailable; Cortex-M parts will skip"; fi

demo: $(STAMP)
	$(VENV)/bin/edgekd demo

test: $(STAMP) toolchain
	$(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

export: $(STAMP)
	$(VENV)/bin/edgekd export $(if $(CHECKPOINT),$(CHECKPOINT),--demo-student) --target $(TARGET) --out exports

# TFLM_SRC=path/to/tflite-micro (after its third_party_downloads) also builds TFLite Micro itself per core
bench: $(STAMP) toolchain
	$(VENV)/bin/edgekd bench --demo --zoo --out reports $(if $(TFLM_SRC),--tflm-src $(TFLM_SRC))

report: $(STAMP)
	$(PY) -m benchmarks.report reports/bench.json --out reports

clean:
	rm -rf reports exports runs build *.egg-info
