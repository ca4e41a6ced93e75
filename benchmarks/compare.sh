#!/usr/bin/env bash
# canao's compiled latency and ONNX Runtime's on the issue's benchmark table, in one session on
# this machine, one after the other (never together: they would steal each other's cores).
#   bash benchmarks/compare.sh [LOG]
# Needs the Python venv of benchmarks/setup-python.sh. Prints both tables; LOG keeps a copy.
set -euo pipefail
cd "$(dirname "$0")/.."
log="${1:-/dev/null}"
py="${CANAO_PYENV:-$HOME/.cache/canao/pyenv}/bin/python"
{
  echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
  echo "## canao: cargo bench -p compiler --bench compiled"
  cargo bench -q -p compiler --bench compiled 2>/dev/null
  echo "## ONNX Runtime: benchmarks/peers.py --skip-torch"
  "$py" benchmarks/peers.py --threads 1 2 --skip-torch
} | tee "$log"
