#!/usr/bin/env bash
# bench/verify_cost.sh - the integrity chain's cost, measured on a backup's filesystem
# repository by bench/verify_cost.rs (see its header for what it times).
#
# There is no switch that turns a restore's verification off, so the verification functions
# (format::segment_io / segment / batch) are timed directly: bench/verify_cost.rs is the
# crate's example `verify_cost` (Cargo.toml), built with `cargo build --release --example
# verify_cost`, which reuses the library of a release build of the binaries, under
# `flock /tmp/kbo-build.lock` (set KBO_BUILD_LOCK to another lock file, or to "" for none).
#
# Usage: bench/verify_cost.sh REPO_DIR BACKUP_NAME [REPS]   run on a filesystem repository
#        bench/verify_cost.sh --build                      only build; prints the binary's path
# Prints the program's JSON line on stdout. bench/decode.sh --verify-cost runs it on its backup.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "verify_cost: error: $*" >&2; exit 1; }
case "${1:-}" in -h|--help|"") usage; [ -n "${1:-}" ] && exit 0; exit 1 ;; esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCK=${KBO_BUILD_LOCK-/tmp/kbo-build.lock}
build=(cargo build --release --example verify_cost --manifest-path "$ROOT/Cargo.toml")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
echo "verify_cost: building (${build[*]}, target dir $CARGO_TARGET_DIR)" >&2
if [ -n "$LOCK" ]; then flock "$LOCK" "${build[@]}" >&2; else "${build[@]}" >&2; fi
BIN=$CARGO_TARGET_DIR/release/examples/verify_cost
[ -x "$BIN" ] || die "$BIN missing after the build"

if [ "$1" = --build ]; then echo "$BIN"; exit 0; fi
[ -d "$1" ] || die "$1 is not a directory"
"$BIN" "$1" "$2" "${3:-3}"
