#!/usr/bin/env bash
# Runs every test: unit, golden and API tests, and the integration suite against real peers
# (noida-db Kafka broker, moto S3) that testenv/ installs (pinned) and starts on loopback.
# Then a bounded fuzzing run of the pure readers (scripts/fuzz.sh; KBO_FUZZ_SECS=0 skips it).
# Usage: scripts/test.sh [extra cargo-nextest args]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --version 0.9.143 --locked
# A full disk shows up as a linker crash (SIGBUS) far from its cause: say how much is free first.
echo "== free disk: $(df -h . | awk 'NR==2 {print $4}') available on $(df -h . | awk 'NR==2 {print $6}')"
echo "== checking formatting"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
echo "== lint (clippy, warnings are errors)"
cargo clippy --all-targets --quiet -- -D warnings
echo "== building"
cargo build --bins --tests
echo "== starting test peers"
testenv/start.sh
trap 'testenv/stop.sh >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
source testenv/env
echo "== running tests"
cargo nextest run --no-fail-fast "$@"
echo "== fuzzing (bounded: KBO_FUZZ_SECS per target, default 60)"
scripts/fuzz.sh
