# Every target creates (or reuses) the local virtual environment .venv from
# pyproject.toml, so on a fresh clone `make test` alone installs and tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The torch build the suite is tested with; override to pick another one.
TORCH ?= torch==2.13.0
BACKENDS ?= jax tensorflow torch
PYTEST_ARGS ?=

.PHONY: venv demo test test-slow bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[jax,tensorflow,torch,dev]"
	touch $(STAMP)

# Huge pages for glibc malloc cut the page faults of XLA's per-step buffers
# (about 20 % faster steps on CPU); older glibc ignores the setting.
demo: $(STAMP)
	GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
		KERAS_BACKEND=$${KERAS_BACKEND:-jax} $(BIN)/keras-vl demo

# The whole suite once per backend, the backends side by side (see
# tests/run_backends.py; --sequential runs one after another).
test: $(STAMP)
	$(BIN)/python tests/run_backends.py --backends $(BACKENDS) \
		--workers jax=2 -- -m "not slow" --durations=20 $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python tests/run_backends.py --backends $(BACKENDS) \
		--allow-no-tests -- -m slow $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[jax,tensorflow,torch,dev,bench]"
	touch $(BENCH_STAMP)

# Side-by-side benchmarks (each prints a ratio table), under 15 minutes on
# 2 CPUs. The train step runs ViT-S/16 at 224 px, batch 16: keras_vl's
# Clippo and LiT through `fit` next to big_vision's own models (JAX), then
# LiT under the PyTorch backend next to transformers' SiglipModel
# (`benchmarks/train_step.py` alone runs every row, keras-hub's included).
# big_vision's rows read its model code from $$BIG_VISION_PEER (default:
# ../shared/peers/big_vision beside the checkout).
bench: $(BENCH_STAMP)
	KERAS_BACKEND=jax $(BIN)/python benchmarks/render.py --repeats 3
	KERAS_BACKEND=jax $(BIN)/python benchmarks/lit_cached_features.py \
		--steps 3 --rounds 2
	KERAS_BACKEND=jax $(BIN)/python benchmarks/train_step.py \
		--rows a,e,f,g --batch-size 16 --warmup 1 --steps 4
	KERAS_BACKEND=torch $(BIN)/python benchmarks/train_step.py \
		--rows e,d --batch-size 16 --warmup 1 --steps 2
	KERAS_BACKEND=jax $(BIN)/python benchmarks/moe.py --batch 8 \
		--steps 1 --rounds 3
	KERAS_BACKEND=jax $(BIN)/python benchmarks/sigmoid_ring.py
	KERAS_BACKEND=jax $(BIN)/python benchmarks/generate.py \
		--lengths 16 256 --repeats 2
	KERAS_BACKEND=torch $(BIN)/python benchmarks/generate.py \
		--lengths 16 256 --repeats 2

lint: $(STAMP)
	$(BIN)/lint-imports --no-logo
	$(BIN)/ruff check keras_vl tools benchmarks tests guides
	$(BIN)/ruff format --check keras_vl tools benchmarks tests guides

clean:
	rm -rf $(VENV) demo_output .pytest_cache
