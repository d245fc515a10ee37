# The two commands of the README are `make demo` and `make test`; both set up .venv first.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-dev demo demo-quick pretrained test test-slow lint bench clean
setup:
	@bash scripts/bootstrap.sh
setup-dev:
	@bash scripts/bootstrap.sh dev

demo: setup
	$(PY) -m coopmap demo

demo-quick: setup
	$(PY) -m coopmap demo --quick

# rebuilds the shipped pretrained start (src/coopmap/pretrained/tiny_synth.{pt,json}); see docs/ablation.md
pretrained: setup
	$(PY) -m coopmap pretrain --out runs/pretrain --install

test: setup-dev lint
	$(PY) -m pytest -q -n 2 $(PYTEST_ARGS)

test-slow: setup-dev
	$(PY) -m pytest -q -m slow $(PYTEST_ARGS)

lint: setup-dev
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy

bench: setup
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf .venv build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
