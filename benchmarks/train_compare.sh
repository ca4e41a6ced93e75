#!/usr/bin/env bash
# Training throughput of the teacher (L6-H384) on SST-2: canao (burn, flex backend) against
# PyTorch eager on the same model, data, batching, optimizer and thread count, one after the
# other in one session.
#   bash benchmarks/train_compare.sh [STEPS] [LOG]
# Needs the Python venv of benchmarks/setup-python.sh and a release build of canao.
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${1:-60}"
log="${2:-/dev/null}"
py="${CANAO_PYENV:-$HOME/.cache/canao/pyenv}/bin/python"
teacher=$(bash scripts/fetch-teacher.sh)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
{
  echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) CPUs"
  canao=$(./target/release/canao train --phase teacher --task sst2 --batch-size 32 --steps $((steps + 10)) \
    --out "$out/run" --quiet --json | tail -n 1 | "$py" -c 'import json,sys; print(json.load(sys.stdin)["median_tokens_per_s"])')
  echo "canao train (burn flex): median $canao tokens/s"
  torch=$("$py" benchmarks/train_torch.py --teacher "$teacher" --steps "$steps" --threads "$(nproc)")
  echo "PyTorch eager:           median $torch tokens/s"
  "$py" -c "print(f'ratio canao / PyTorch: {$canao / $torch:.2f}')"
} | tee "$log"
