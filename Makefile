# autoopt-lab: the two quick-start commands, and a few conveniences.
# Every target first runs scripts/bootstrap.sh (creates .venv when missing, installs the
# package and its test extras, registers the Jupyter kernel, installs offline data if root).

OUT ?= results/quick

.PHONY: demo test test-all lint bench browser-test setup

setup:
	bash scripts/bootstrap.sh

## The main job: reproduce Figures 2-4 and Table 2 in quick mode on offline data.
demo: setup
	.venv/bin/autoopt-lab reproduce all --quick --out $(OUT)

## The tests CI runs: everything but slow and GPU tests, plus the real-browser test (it skips
## cleanly where chromium cannot be installed).
test:
	AUTOOPT_BROWSER=1 bash scripts/bootstrap.sh
	.venv/bin/python -m pytest -m "not gpu and (not slow or browser)"

## Everything, including slow tests (GPU tests still skip without CUDA).
test-all: setup
	.venv/bin/python -m pytest -m "not gpu or gpu"

lint: setup
	.venv/bin/ruff check autoopt_lab tests benchmarks scripts

bench: setup
	.venv/bin/python benchmarks/step_overhead.py

## The real-browser workbench test alone: Debian chromium driven by Playwright (no download).
browser-test:
	AUTOOPT_BROWSER=1 bash scripts/bootstrap.sh
	.venv/bin/python -m pytest -m browser tests/test_workbench_browser.py
