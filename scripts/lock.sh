#!/usr/bin/env bash
# Refresh requirements/lock.txt, the exact versions scripts/install.sh installs (pip -c).
#
#   bash scripts/lock.sh                           # after editing pyproject.toml's dependencies:
#                                                  # keeps every pin that still fits, adds the rest
#   bash scripts/lock.sh --upgrade-package duckdb  # move one package to its newest fitting release
#   bash scripts/lock.sh --upgrade                 # everything to the newest fitting releases
#
# uv resolves from PyPI alone (it reads no pip config, so not this machine's local wheel store).
# - torch is excluded from the resolution: PyPI's Linux torch is the CUDA build and would bring
#   the whole CUDA stack into the lock; install.sh pins the CPU build where there is no GPU, and
#   requirements/torch-cpu.in locks what that build requires.
# - resolved for what this project's machines run (Python 3.11, x86_64 Linux), whoever runs it;
#   a constraints file only limits versions, so elsewhere it still applies where it fits.
set -euo pipefail
cd "$(dirname "$0")/.."

# uv itself comes with the dev extra; elsewhere install the locked version
python -m uv --version >/dev/null 2>&1 \
  || python -m pip install --quiet --disable-pip-version-check -c requirements/lock.txt uv

# shellcheck disable=SC2046  # one word per flag
python -m uv pip compile --quiet pyproject.toml requirements/torch-cpu.in \
  $(python scripts/lockfile.py extras) --excludes <(echo torch) \
  --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
  --custom-compile-command "bash scripts/lock.sh" --output-file requirements/lock.txt "$@"
python scripts/lockfile.py stamp
echo "wrote requirements/lock.txt: $(grep -c '==' requirements/lock.txt) pins"
