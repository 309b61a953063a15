# One entry point per habit. Each target builds the virtual environment it needs.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
STAMP   = $(VENV)/.installed

.PHONY: demo test test-slow lint bench bench-env data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# The CPU build of torch; a plain `torch` requirement may pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --only-binary=pythia8mc -e '.[generate,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/otus demo --out demo_output

# The tests, the `>>>` examples in the docstrings (an explicit path overrides testpaths),
# then the type check.
test: $(STAMP)
	$(PY) -m pytest -q
	$(PY) -m pytest -q --doctest-modules otus
	$(VENV)/bin/mypy otus

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check otus tests experiments
	$(VENV)/bin/ruff format --check otus tests experiments
	$(VENV)/bin/mypy otus

# The peers of experiments/unfold_bench.py (OmniFold on TensorFlow, pyunfold) in their own
# environment: never in otus's own or in CI.
bench-env: .venv-bench/.installed
.venv-bench/.installed:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install -q omnifold==0.1.36 tensorflow-cpu pyunfold==0.5.0 numpy
	touch $@

# Speed, memory and I/O benchmarks (pytest-benchmark, a few minutes; not part of `make test`).
# The tables of experiments/results/ come from `python -m experiments.NAME` (experiments/README.md).
bench: $(STAMP)
	$(PY) -m pytest experiments/test_benchmarks.py -m bench -p no:cacheprovider \
		--benchmark-columns=min,mean,rounds --benchmark-sort=name

# Re-make the committed samples (data/README.md).
data: $(STAMP)
	cd data && ../$(VENV)/bin/otus generate zee --events 10000 --seed 1 --out zee.new && rm -rf zee && mv zee.new zee
	cd data && ../$(VENV)/bin/otus generate ttbar --events 2000 --seed 2 --out ttbar.new && rm -rf ttbar && mv ttbar.new ttbar
	cd data && ../$(VENV)/bin/otus generate ../examples/cards/zmumu.yaml --events 10000 --seed 5 --out zmumu.new && rm -rf zmumu && mv zmumu.new zmumu
	cd data && ../$(VENV)/bin/otus generate ../examples/cards/wenu.yaml --events 10000 --seed 6 --out wenu.new && rm -rf wenu && mv wenu.new wenu

clean:
	rm -rf $(VENV) demo_output .pytest_cache
