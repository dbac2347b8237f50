#!/usr/bin/env bash
# Builds the Kubernetes v1.20.2 pieces of a one-node test cluster offline, from Debian
# bookworm's `kubernetes` source package (the one behind apt's kubernetes-client), in ONE make
# invocation: kube-apiserver, kubelet, kube-scheduler, kube-controller-manager and kubectl.
# Needs only the Debian mirror apt is configured with (read from apt's active configuration,
# never written down here). ~3.5 GB of build tree and Go cache while it runs, deleted at the end.
#   Output: $KBO_KUBE_CACHE (default ~/.cache/kafka-backup-operator/kube-v1.20.2), outside the
#   work tree so that a fresh clone on the same machine (CI) reuses it; testenv/kube/.bin/<name>
#   are symlinks to it. Idempotent: nothing is built when every binary is there at v1.20.2.
# Two changes to the upstream tree: upstream `make` (it runs the code generators plain
# `go build` lacks), and vendored reflect2 1.0.1 / json-iterator replaced by Debian's 1.0.2 /
# 1.1.12 (1.0.1 crashes under Go >= 1.18 on the first custom resource).
# Heavy: wrap it in `flock /tmp/kbo-build.lock` when other builds may run (scripts/test.sh does).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KBO_KUBE_CACHE:-$HOME/.cache/kafka-backup-operator/kube-v1.20.2}
bins="kube-apiserver kubelet kube-scheduler kube-controller-manager kubectl"
present() {
  for b in $bins; do
    [ -x "$cache/$b" ] || return 1
    if [ "$b" = kubectl ]; then "$cache/$b" version --client --short 2>/dev/null | grep -q v1.20.2 || return 1
    else "$cache/$b" --version 2>/dev/null | grep -q v1.20.2 || return 1; fi
  done
}
link() {
  mkdir -p "$here/.bin"
  for b in $bins; do ln -sfn "$cache/$b" "$here/.bin/$b"; done
  echo "kube: v1.20.2 $bins in $cache (linked from $here/.bin)"
}
if present; then link; exit 0; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq golang-go make rsync curl ca-certificates openssl etcd-server \
  golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null
work="$here/.build"; mkdir -p "$work" "$cache"; cd "$work"
orig=kubernetes_1.20.5+really1.20.2.orig.tar.gz
sha=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc
# The Debian archive apt uses: from apt's active configuration (apt-cache policy), the
# bookworm main archive (not -security, not -updates, not a third-party repository).
mirror=$(apt-cache policy 2>/dev/null | awk '$3 ~ /^bookworm\/main$/ {print $2; exit}')
[ -n "$mirror" ] || { echo "kube: no Debian bookworm/main archive in apt's configuration (apt-cache policy)" >&2; exit 1; }
[ -f "$orig" ] || curl -fsS -m 600 -O "${mirror%/}/pool/main/k/kubernetes/$orig"
echo "$sha  $orig" | sha256sum -c - >/dev/null
rm -rf kubernetes-1.20.2 && tar xzf "$orig"
v=kubernetes-1.20.2/vendor/github.com
rm -rf "$v/modern-go/reflect2" "$v/json-iterator/go"
cp -rL /usr/share/gocode/src/github.com/modern-go/reflect2 "$v/modern-go/reflect2"
cp -rL /usr/share/gocode/src/github.com/json-iterator/go "$v/json-iterator/go"
find "$v/modern-go/reflect2" "$v/json-iterator/go" -name '*_test.go' -delete
cat > version.env <<'V'
KUBE_GIT_COMMIT='faecb196815e248d3ecfb03c680a4507229c2a56'
KUBE_GIT_TREE_STATE='archive'
KUBE_GIT_VERSION='v1.20.2'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
V
cd kubernetes-1.20.2
t0=$(date +%s)
what=""; for b in $bins; do what="$what cmd/$b"; done
# -s -w: no DWARF or symbol table (the binaries are test fixtures; 40% smaller).
env GOPROXY=off CGO_ENABLED=0 HOME="$work/home" GOCACHE="$work/gocache" GOLDFLAGS="-s -w" \
  KUBE_GIT_VERSION_FILE="$work/version.env" make WHAT="${what# }"
echo "kube: make took $(( $(date +%s) - t0 )) s"
for b in $bins; do install -m 755 "_output/bin/$b" "$cache/$b"; done
cd "$here" && rm -rf "$work"
present || { echo "kube: the built binaries do not report v1.20.2" >&2; exit 1; }
link
