#!/usr/bin/env bash
# The teacher-recipe sweep of benchmarks/sweep_teacher.py on a lent GPU machine (the `device` tool).
#   bash benchmarks/sweep_device.sh prepare   # here: the teacher (as FP16) and SST-2 into .sweep/
#   bash benchmarks/sweep_device.sh run       # there, with `.sweep` carried: the sweep, into $OUT
# The teacher's FP32 file (91 MB) is over what the tool carries (64 MiB), so it travels as FP16 and
# each run reads it back as FP32. PAR (runs at a time, default 14), BUDGET (seconds, default 470),
# RECIPES and SEEDS (comma-separated, default: all of sweep_teacher.py's, 17,18,19) tune the run.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
prepare)
  py="${CANAO_PYENV:-$HOME/.cache/canao/pyenv}/bin/python"
  teacher=$(bash scripts/fetch-teacher.sh)
  data="${CANAO_DATA:-../shared/data}"
  grep -qx '/.sweep/' .git/info/exclude 2>/dev/null || echo '/.sweep/' >> .git/info/exclude
  mkdir -p .sweep/teacher .sweep/data/glue/SST-2
  cp "$teacher"/{config.json,tokenizer.json,vocab.txt,tokenizer_config.json,special_tokens_map.json} .sweep/teacher/
  cp "$data"/glue/SST-2/{train,dev}.tsv .sweep/data/glue/SST-2/
  "$py" - "$teacher/model.safetensors" .sweep/teacher/model.safetensors <<'PY'
import sys
from safetensors.torch import load_file, save_file
tensors = load_file(sys.argv[1])
save_file({k: v.half().contiguous() for k, v in tensors.items()}, sys.argv[2], metadata={"format": "pt"})
PY
  du -sh .sweep ;;
run)
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  # MPS lets the runs' small kernels share the GPU at once rather than by turns.
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p /tmp/mps /tmp/mps-log
  if nvidia-cuda-mps-control -d && timeout 60 python3 -c "import torch; torch.ones(4).cuda().sum().item()"; then
    echo "MPS started"
  else
    echo quit | nvidia-cuda-mps-control 2>/dev/null || true
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    echo "no MPS"
  fi
  export PYTHONUNBUFFERED=1
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 benchmarks/sweep_teacher.py --teacher .sweep/teacher --data .sweep/data --out "$OUT/sweep.jsonl" \
    --parallel "${PAR:-14}" --budget "${BUDGET:-470}" ${RECIPES:+--recipes "$RECIPES"} ${SEEDS:+--seeds "$SEEDS"} 2>&1 | tee "$OUT/sweep.log" ;;
*)
  echo "usage: bash benchmarks/sweep_device.sh prepare|run" >&2
  exit 2 ;;
esac
