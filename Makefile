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

## The tests CI runs (slow, GPU and browser tests excluded).
test: setup
	.venv/bin/python -m pytest

## Everything, including slow tests (GPU tests still skip without CUDA).
test-all: setup
	.venv/bin/python -m pytest -m "not gpu or gpu"

lint: setup
	.venv/bin/ruff check autoopt_lab tests benchmarks scripts

bench: setup
	.venv/bin/python benchmarks/step_overhead.py

## The real-browser workbench test: Debian chromium driven by Playwright (no browser download).
browser-test:
	AUTOOPT_EXTRAS=test,browser bash scripts/bootstrap.sh
	command -v chromium >/dev/null || apt-get install -y chromium
	.venv/bin/python -m pytest -m "slow and browser" tests/test_workbench_browser.py
