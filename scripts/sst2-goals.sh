#!/usr/bin/env bash
# Issue 3's accuracy goals on SST-2, end to end and unattended: build canao, fine-tune the teacher
# (experiments/train/sst2-teacher.ron, 90.48 % dev), train the three-epoch supernet
# (experiments/train/sst2-supernet-3ep.ron) from it and score the goal sizes with inherited weights.
# About two and a third hours on a 2-core machine (2026-11-29: build 11 min, teacher 31, supernet 95).
# Each stage that has finished is reused and an interrupted one resumes, so running it again after
# a stop continues where it was. Logs and results go under runs/ (override with OUT=...).
#   bash scripts/sst2-goals.sh            # then: tail -f runs/sst2-goals/log
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-runs/sst2-goals}
mkdir -p "$out"
exec > >(tee -a "$out/log") 2>&1

stamp() { echo "== $(date -u '+%F %T') UTC: $*"; }

stamp "building canao (release)"
cargo build --release -p experiments --quiet
canao=target/release/canao

# train PHASE CONFIG [ARGS...]: one training phase into $out/PHASE, reused when its model is there
# and resumed when a run of it was interrupted.
train() {
    local phase=$1 config=$2 dir=$out/$1; shift 2
    if [[ -f $dir/model/config.json ]]; then
        stamp "$phase done before: $dir/model"
        return
    fi
    local resume=(); [[ -d $dir ]] && resume=(--resume)
    stamp "$phase phase -> $dir"
    "$canao" train --phase "$phase" --task sst2 --config "$config" --out "$dir" --quiet "$@" "${resume[@]}"
}

train teacher experiments/train/sst2-teacher.ron
train supernet experiments/train/sst2-supernet-3ep.ron --from "$out/teacher/model"
supernet=$out/supernet

stamp "scoring the goal sizes with inherited weights"
archs=(L6-H384-A12-F1536-D32 L4-H384-A12-F1536-D32 L6-H256-A8-F1024-D32 L4-H256-A8-F1024-D32
    L4-H256-A4-F1024-D32 L2-H256-A4-F1024-D32 L3-H192-A6-F768-D32 L2-H128-A4-F512-D32
    L2-H128-A2-F512-D32 L1-H128-A2-F256-D32 L4-H128-A2-F256-D32 L3-H128-A2-F256-D32)
"$canao" eval --task sst2 --supernet "$supernet/model" "${archs[@]/#/--arch=}" --json \
    | tee "$out/eval.txt"
stamp "done"
