#!/usr/bin/env bash
# NSGA-II against random search with real objectives, from nothing, in one sitting: fine-tune the
# TREC teacher (phase one), train the TREC supernet (phase two), then `canao compare` with the
# accuracy of each arch on TREC-10 (weights inherited from that supernet) and its latency
# predicted from the committed 2-thread profile (experiments/searches/trec-accuracy-latency.ron).
#   [BUDGET=1500] [RANDOM_BUDGET=5200] bash benchmarks/compare_trec.sh [other `canao compare` flags]
# The defaults are the measurement of BENCHMARKS.md (issue 5): about three hours from nothing here.
# A stage whose output exists is skipped; an interrupted training resumes from its checkpoint,
# and an interrupted comparison continues from its score cache (runs/compare-trec/scores.json).
# The last line is compare's JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p experiments >&2
canao=target/release/canao
train() { # phase, out folder, extra flags
  local phase=$1 out=$2
  shift 2
  [ -d "$out/model" ] && return
  local resume=()
  [ -d "$out/checkpoint" ] && resume=(--resume)
  echo "$(date -u +%T) training the TREC $phase into $out" >&2
  "$canao" train --phase "$phase" --task trec --config "experiments/train/trec-$phase.ron" --out "$out" \
    --quiet "${resume[@]}" "$@" >&2
}
train teacher runs/trec-teacher
train supernet runs/trec-supernet --from runs/trec-teacher/model
mkdir -p runs/compare-trec
echo "$(date -u +%T) comparing" >&2
"$canao" compare --experiment experiments/searches/trec-accuracy-latency.ron --budget "${BUDGET:-1500}" \
  --random-budget "${RANDOM_BUDGET:-5200}" \
  --reference-budget 1000 --cache runs/compare-trec/scores.json --json "$@"
