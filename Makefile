# The two commands a newcomer runs:  make demo  and  make test
VENV    ?= .venv
PY      := $(VENV)/bin/python
WORKDIR ?= work
STAMP   := $(VENV)/.installed-stamp

.PHONY: demo demo-grid test test-slow setup clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build
	$(VENV)/bin/pip install -q "torch==2.13.0"
	# the ray extra too: the tests start a local Ray cluster (about 80 MB, 20 s from PyPI)
	$(VENV)/bin/pip install -q -e ".[test,ray]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)  ## set up, prepare the embedded default, run every analysis, write reports/
	$(VENV)/bin/tueval demo --workdir $(WORKDIR)

demo-grid: $(STAMP)  ## as demo, with every seed-paper method on GA and NPO against its control (not timed: benchmarks/demo.md)
	$(VENV)/bin/tueval demo --workdir $(WORKDIR) --profile grid

# two pytest-xdist workers, one torch thread each; the small workdir is prepared once (benchmarks/test_suite.md)
XDIST   ?= -n 2

test: $(STAMP)  ## set up and run the test suite (fast tests + the small end-to-end profile)
	$(PY) -m pytest -m "not slow" -p no:cacheprovider $(XDIST)

test-slow: $(STAMP)  ## the slow end-to-end tests (default profile)
	$(PY) -m pytest -m slow -p no:cacheprovider

clean:
	rm -rf $(WORKDIR)
