# Attention Course — the two commands a newcomer needs:
#   make book   create .venv, install everything, execute the notebooks, build _build/html
#   make test   the full test suite (lint, unit, property, equivalence, checkers, notebooks,
#               book build with warnings as errors, built-site checks, headless Chromium)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch. Where PyPI's default torch is a CUDA build, add a CPU index, e.g.
#   make book TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH := torch==2.13.0
TORCH_PIP_ARGS ?=
JOBS ?= 2
BUILD_FLAGS := -W -n --keep-going
# Executed notebooks (book, nbval) show no progress bars; `make lab` keeps them.
QUIET := ATTENTION_COURSE_QUIET=1
# Two pytest workers on two cores: one thread each (torch's default of one per core per process
# oversubscribes the CPU and makes small-op code many times slower).
ONE_THREAD := OMP_NUM_THREADS=1

.PHONY: help install book lab test lint unit notebooks site clean doctor bench

help:
	@echo "make book | make test | make lab | make doctor | make bench | make clean"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[book,test,dev,apps]"
	touch $@

install: $(STAMP)

# Local builds reuse the execution cache (_build/.jupyter_cache): only changed notebooks re-run.
book: $(STAMP)
	$(QUIET) $(BIN)/jupyter-book build . $(BUILD_FLAGS)
	@echo "Open _build/html/index.html"

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

doctor: $(STAMP)
	$(BIN)/python -m attention_course doctor

# The chapter 7 benchmark table (minutes; not part of `make test`). Options after ARGS=, e.g.
#   make bench ARGS="--threads 2 --lengths 1024 2048 --json"
bench: $(STAMP)
	$(BIN)/python -m attention_course.bench $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

unit: $(STAMP)
	$(ONE_THREAD) $(BIN)/python -m pytest tests --ignore=tests/site -n $(JOBS) -q

notebooks: $(STAMP)
	$(QUIET) $(ONE_THREAD) $(BIN)/python -m pytest notebooks --nbval-lax --nbval-current-env -n $(JOBS) --dist loadscope \
		--durations=0 -q

# The test build starts from an empty execution cache: the cache keys on notebook code only and
# would not notice a change in the package.
site: $(STAMP)
	rm -rf _build/.jupyter_cache _build/jupyter_execute _build/html _build/.doctrees
	$(QUIET) $(BIN)/jupyter-book build . $(BUILD_FLAGS)
	$(BIN)/python -m pytest tests/site -q

test: lint unit notebooks site

clean:
	rm -rf _build
