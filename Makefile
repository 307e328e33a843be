# The whole set-up on a fresh machine: `make train` or `make test`.
# .venv is (re)built when missing or older than pyproject.toml; torch is
# installed first, pinned, so that no other (CUDA) build is downloaded.
PY      := .venv/bin/python
STAMP   := .venv/.installed
PIP     := $(PY) -m pip install -q -c constraints.txt

.PHONY: train test lint format bench study compare clean notebook

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PIP) torch
	$(PIP) -e '.[lesson,keras,onnx,safetensors,notebook,dev]'
	$(PIP) --no-deps tf-keras
	touch $(STAMP)

train: $(STAMP)
	$(PY) train.py $(ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

compare: $(STAMP)
	$(PY) -m torch_rnnsin compare $(ARGS)

study: $(STAMP)
	$(PY) -m torch_rnnsin study $(ARGS)

# docs/lesson.ipynb from docs/lesson.py, executed with outputs (as the test runs it)
notebook: $(STAMP)
	$(PY) tests/test_notebook.py

clean:
	rm -rf .venv runs build *.egg-info .pytest_cache .ruff_cache
