# Two commands: `make demo` and `make test`. Each creates .venv when missing and installs
# what it needs. torch is installed first, pinned, so the CPU build present on the machine
# is used instead of pulling gigabytes of CUDA packages through an unpinned requirement.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: demo test test-fast install bench bench-ued bench-suite lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	@$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[students,interestingness,dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/autocurriculum demo $(DEMO_ARGS)

test: install
	$(PY) -m ruff check .
	bash scripts/run_tests.sh $(PYTEST_ARGS)

# The edit loop: unit and service layers without the slow end-to-end runs (a few minutes).
test-fast: install
	$(PY) -m ruff check .
	bash scripts/run_tests.sh tests/unit tests/service -m "not slow" -n 2 --dist loadscope $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/service_load.py
	$(PY) benchmarks/gmm_fit.py
	$(PY) benchmarks/judging_load.py
	$(PY) benchmarks/wrapper_overhead.py
	$(PY) benchmarks/ray_scaling.py
	$(PY) -m teacher_service bench teachers --seeds 8
	$(PY) -m teacher_service bench discrete --seeds 5

# DR vs PLR vs ACCEL with the Ray students (about 22 minutes on 2 cores; see docs/results/minigrid-ued.md).
UED_ARGS ?= --steps 600000 --seeds 0 1 2
bench-ued: install
	$(PY) benchmarks/minigrid_ued.py $(UED_ARGS)

# lp vs omni vs sec vs random on a MiniGrid suite (about 21 minutes on 2 cores; see
# docs/results/minigrid-suite.md).
SUITE_ARGS ?=
bench-suite: install
	$(PY) benchmarks/minigrid_suite.py $(SUITE_ARGS)

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
