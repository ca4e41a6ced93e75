#!/usr/bin/env bash
# The test suite: fetches the pretrained teacher into canao's cache (so that the tests that need
# it run), then runs every test of the workspace. Needs cargo and python3 with pip; as root it
# installs Chromium for the report test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-teacher.sh >/dev/null
# The report test renders report.html in headless Chromium (Debian's `chromium`); install it where
# we can (as root with apt-get). Under CI=true the test fails without it.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the report test…" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
        || echo "could not install chromium: the browser test is skipped (and fails under CI=true)" >&2
fi
cargo test --workspace --locked "$@"
