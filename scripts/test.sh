#!/usr/bin/env bash
# Runs every test: unit, golden and API tests, and the integration suite against real peers
# (noida-db Kafka broker, moto S3) that testenv/ installs (pinned) and starts on loopback; the
# e2e suites on a real one-node Kubernetes v1.20.2 cluster (testenv/kube: built once from
# Debian's source, cached in ~/.cache; the operator image built offline by scripts/image.sh
# and the chart installed with helm); then a bounded fuzzing run of the pure readers
# (scripts/fuzz.sh; KBO_FUZZ_SECS=0 skips it).
# Usage: scripts/test.sh [--no-cluster] [extra cargo-nextest args]
#   --no-cluster: the fast path for developers: no Kubernetes build, node or image, and the
#   e2e suites (tests/e2e.rs, tests/e2e_node.rs) are left out (said so, not counted as passed).
# Without --no-cluster a missing piece fails the run (KBO_E2E_REQUIRED=1), it does not skip.
set -euo pipefail
cd "$(dirname "$0")/.."
cluster=1
if [ "${1:-}" = --no-cluster ]; then cluster=0; shift; fi
stage() { echo "== $1 ($(date +%T); previous stage $(( SECONDS - ${stage_t:-0} )) s)"; stage_t=$SECONDS; }
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --version 0.9.143 --locked
# A full disk shows up as a linker crash (SIGBUS) far from its cause: say how much is free first.
echo "== free disk: $(df -h . | awk 'NR==2 {print $4}') available on $(df -h . | awk 'NR==2 {print $6}')"
stage "checking formatting"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
stage "import rules (scripts/check_layers.py: docs/architecture.md, 'Layering')"
python3 scripts/check_layers.py
stage "lint (clippy, warnings are errors)"
cargo clippy --all-targets --quiet -- -D warnings
stage "building"
cargo build --bins --tests
cleanup() {
  [ "$cluster" = 1 ] && { testenv/kube/node-stop.sh >/dev/null 2>&1 || true; }
  testenv/stop.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT
if [ "$cluster" = 1 ]; then
  stage "Kubernetes v1.20.2 pieces (testenv/kube/build.sh; reused from its cache when built)"
  testenv/kube/build.sh
  stage "starting the one-node cluster (testenv/kube/node-start.sh)"
  testenv/kube/node-stop.sh >/dev/null 2>&1 || true
  testenv/kube/node-start.sh
  stage "operator image (scripts/image.sh, from the dev binaries just built)"
  scripts/image.sh
  export KBO_E2E_REQUIRED=1 KBO_E2E_KUBECONFIG="$PWD/testenv/kube/kubeconfig" KBO_E2E_NODE_KUBECONFIG="$PWD/testenv/kube/kubeconfig"
else
  echo "== SKIPPED (--no-cluster): Kubernetes build, node, image; tests/e2e.rs and tests/e2e_node.rs are not run"
fi
stage "starting test peers"
testenv/start.sh
# shellcheck disable=SC1091
source testenv/env
stage "running tests"
cargo nextest run --no-fail-fast -E 'not binary(e2e) and not binary(e2e_node)' "$@"
if [ "$cluster" = 1 ]; then
  stage "e2e on the node (tests/e2e.rs: local operators against its API server; tests/e2e_node.rs: helm install, the operator as a Pod)"
  cargo nextest run --no-fail-fast --test e2e --test e2e_node
fi
stage "fuzzing (bounded: KBO_FUZZ_SECS per target, default 30)"
scripts/fuzz.sh
stage "done"
