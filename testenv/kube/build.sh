#!/usr/bin/env bash
# Builds a real kube-apiserver (Kubernetes v1.20.2) offline, from Debian bookworm's
# `kubernetes` source package (the one behind apt's kubernetes-client), for the e2e suite on a
# machine without Docker or a cluster. Opt-in: ~10-15 min and ~3.5 GB of build tree and Go
# cache (deleted at the end; the binary is 110 MB). Needs only the Debian mirror apt is configured
# with (read from the apt sources, never written down here).
#   Output: testenv/kube/.bin/kube-apiserver. Idempotent.
# Two changes to the upstream tree: upstream `make` (it runs the code generators plain
# `go build` lacks), and vendored reflect2 1.0.1 / json-iterator replaced by Debian's 1.0.2 /
# 1.1.12 (1.0.1 crashes under Go >= 1.18 on the first custom resource).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/.bin/kube-apiserver"
[ -x "$out" ] && "$out" --version 2>/dev/null | grep -q v1.20.2 && { echo "kube: $out present"; exit 0; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq golang-go make rsync curl ca-certificates openssl etcd-server \
  golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null
work="$here/.build"; mkdir -p "$work" "$here/.bin"; cd "$work"
orig=kubernetes_1.20.5+really1.20.2.orig.tar.gz
sha=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc
# The Debian archive apt uses: the first URIs/deb line of the main (non-security) sources.
mirror=$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
  | grep -oE 'https?://[^ ]+' | grep -v security | head -1)
[ -n "$mirror" ] || { echo "kube: no Debian archive found in the apt sources" >&2; exit 1; }
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
env GOPROXY=off CGO_ENABLED=0 HOME="$work/home" GOCACHE="$work/gocache" \
  KUBE_GIT_VERSION_FILE="$work/version.env" make WHAT=cmd/kube-apiserver
install -m 755 _output/bin/kube-apiserver "$out"
cd "$here" && rm -rf "$work"
"$out" --version
