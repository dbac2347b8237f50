#!/usr/bin/env bash
# Bounded coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the pure readers: the record-batch
# codec, segment blocks, segment indexes against their segments, the repository's JSON
# documents, YAML -> validated resources -> plan, and the envelope of an encrypted repository
# (key documents, wrapped data keys, sealed segment blocks). Each target runs KBO_FUZZ_SECS seconds
# (default 30; the CI budget with the cluster stages) from the corpus in fuzz/corpus/<target> (read only; new inputs go to a
# temporary directory). A crash, an out-of-memory or a timeout fails the run and leaves the
# input in target/fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [target...]      KBO_FUZZ_SECS=0 skips (and says so).
#
# Built without a sanitizer: the crate has no `unsafe`, so what fuzzing can find is a panic,
# an abort, an unbounded allocation or a hang, which libFuzzer catches as it is. libFuzzer
# needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the pinned stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${KBO_FUZZ_SECS:-30}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(batch_codec segment_blocks index_verify repo_json yaml_plan envelope)
if [ "$secs" = 0 ]; then
  echo "== fuzzing SKIPPED (KBO_FUZZ_SECS=0): ${targets[*]}"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.1 --locked
export RUSTC_BOOTSTRAP=1
tdir="$PWD/target/fuzz"
flags=(-O -a --sanitizer none --target-dir "$tdir" --fuzz-dir fuzz)
echo "== fuzz: building ${#targets[@]} targets"
cargo fuzz build "${flags[@]}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "$tdir/artifacts/$t"
  log="$work/$t.log"
  if cargo fuzz run "${flags[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
      -artifact_prefix="$tdir/artifacts/$t/" >"$log" 2>&1; then
    echo "== fuzz $t: $(grep -E '^Done' "$log" | tail -1) ($(ls "$work/$t" | wc -l) new inputs)"
  else
    echo "== fuzz $t: FAILED"; grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -10
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: ${#failed[@]} target(s) failed: ${failed[*]} (inputs in $tdir/artifacts)"
  exit 1
fi
echo "== fuzz: ${#targets[@]} targets, ${secs} s each, no failure"
