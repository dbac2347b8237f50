#!/usr/bin/env bash
# A real one-node Kubernetes v1.20.2 cluster on this machine, for the e2e suite: the API server
# of start.sh (started here unless it runs), containerd + runc + CNI bridge (Debian packages),
# dockerd with its own data root and socket (to build the test images; no registry is
# reachable, so images are built locally and imported into containerd), the kubelet, the
# scheduler and the controller manager built by build.sh. Everything by PID (stop with
# node-stop.sh, which also removes the pods' processes, mounts and network devices).
# No systemd needed. Ready in ~25-30 s once built (measured here), teardown ~17 s. Root only.
#   KBO_NODE_NAME (kbo-node)   KBO_NODE_IP (10.250.0.1, on a bridge kbo0 with no ports: the
#   kubelet refuses a loopback node IP and the machine's own address is not for tests)
#   Docker: DOCKER_HOST=unix:///run/kbo-node/docker.sock (written to testenv/kube/run/node.env).
# Facts behind the settings: the sandbox has no CAP_SYS_RESOURCE, so containerd must not
# raise oom_score_adj (restrict_oom_score_adj); swap is tolerated (failSwapOn: false); the
# 1.20 kubelet takes the CRI endpoints as flags, the 1.20 controller manager needs
# --root-ca-file and the service-account key so Pods get kube-root-ca.crt and tokens.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); run="$here/run"; mkdir -p "$run"
node=${KBO_NODE_NAME:-kbo-node}; ip=${KBO_NODE_IP:-10.250.0.1}
state=/var/lib/kbo-node; rt=/run/kbo-node
kp=${KBO_KUBE_PORT:-16443}
die() { echo "kube-node: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (containerd, kubelet, network devices)"

# --- the pieces: Kubernetes binaries from build.sh, the runtime from Debian (installed here)
for b in kube-apiserver kubelet kube-scheduler kube-controller-manager kubectl; do
  [ -x "$here/.bin/$b" ] || die "$here/.bin/$b is missing: run testenv/kube/build.sh"
done
need_apt=""
command -v containerd >/dev/null || need_apt="$need_apt containerd"
command -v runc >/dev/null || need_apt="$need_apt runc"
[ -x /usr/lib/cni/bridge ] || need_apt="$need_apt containernetworking-plugins"
command -v dockerd >/dev/null || need_apt="$need_apt docker.io"
command -v iptables >/dev/null || need_apt="$need_apt iptables"
command -v gcc >/dev/null || need_apt="$need_apt gcc libc6-dev"
if [ -n "$need_apt" ]; then
  echo "kube-node: installing$need_apt (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need_apt >/dev/null; } \
    || die "apt-get install$need_apt failed"
fi
# The versions this was made with (containerd 1.6, dockerd 20.10 of bookworm): others may work,
# but say so.
containerd --version | grep -q ' 1\.6\.' || echo "kube-node: warning: containerd is not 1.6: $(containerd --version)" >&2
for b in containerd runc dockerd /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback; do
  command -v "$b" >/dev/null || die "$b is missing after the install"
done
docker=/usr/bin/docker   # Debian's client, matching the daemon (a newer one on PATH may want buildx)
[ -x "$docker" ] || die "$docker (Debian docker.io) is missing"

running() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }
for p in containerd dockerd kubelet scheduler controller-manager; do
  running "$p" && die "$p already runs (pid $(cat "$run/$p.pid")): testenv/kube/node-stop.sh first"
done
# one node per machine (two kubelets delete each other's pods): another work tree's node?
if [ -S "$rt/containerd.sock" ] && ctr --address "$rt/containerd.sock" version >/dev/null 2>&1; then
  die "a node already runs on this machine ($rt/containerd.sock answers; another work tree's?): stop it with its node-stop.sh"
fi
t0=$(date +%s)
running apiserver || "$here/start.sh"

mkdir -p "$state" "$rt" "$state/cni/net.d"
# --- the node's address: on a bridge with no ports (no dummy driver in this kernel)
ip link show kbo0 >/dev/null 2>&1 || ip link add kbo0 type bridge
ip addr show dev kbo0 | grep -q "inet $ip/" || ip addr add "$ip/32" dev kbo0
ip link set kbo0 up

# --- containerd (its own root, state and socket; the CRI plugin on for the kubelet)
cat > "$state/containerd.toml" <<T
version = 2
root = "$state/containerd"
state = "$rt/containerd"
[grpc]
  address = "$rt/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "kbo.local/pause:1"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
T
# the pod network: one bridge, host-local addresses, no masquerading (tests stay local)
cat > "$state/cni/net.d/10-kbo.conflist" <<J
{"cniVersion": "0.4.0", "name": "kbo", "plugins": [
  {"type": "bridge", "bridge": "kbo-cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$state/cni/ipam"}}]}
J
containerd --config "$state/containerd.toml" > "$run/containerd.log" 2>&1 & echo $! > "$run/containerd.pid"
ctr() { command ctr --address "$rt/containerd.sock" "$@"; }
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version >/dev/null 2>&1 || die "containerd did not start; see $run/containerd.log"

# --- dockerd: own data root, exec root and socket, on our containerd; no networking of its own
dockerd --data-root "$state/docker" --exec-root "$rt/docker" --pidfile "$rt/docker.pid" \
  -H "unix://$rt/docker.sock" --containerd "$rt/containerd.sock" \
  --bridge=none --iptables=false --ip-masq=false > "$run/dockerd.log" 2>&1 & echo $! > "$run/dockerd.pid"
export DOCKER_HOST="unix://$rt/docker.sock" DOCKER_BUILDKIT=0
for _ in $(seq 100); do "$docker" version >/dev/null 2>&1 && break; sleep 0.2; done
"$docker" version >/dev/null 2>&1 || die "dockerd did not start; see $run/dockerd.log"
echo "export DOCKER_HOST=$DOCKER_HOST DOCKER_BUILDKIT=0 KBO_DOCKER=$docker KBO_CTR_ADDRESS=$rt/containerd.sock" > "$run/node.env"

# --- the pause image (the pod sandbox), built here: FROM scratch + a static binary
pb="$state/pause-build"; mkdir -p "$pb"
gcc -static -Os -o "$pb/pause" "$here/../../docker/pause.c" && strip "$pb/pause"
printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' > "$pb/Dockerfile"
"$docker" build -q -t kbo.local/pause:1 "$pb" >/dev/null
"$docker" save kbo.local/pause:1 | ctr -n k8s.io images import - >/dev/null
ctr -n k8s.io images ls -q | grep -q '^kbo.local/pause:1$' || die "the pause image did not import into containerd"

# --- kubelet: cgroupfs, swap tolerated, x509 from the API server only (the test CA)
mkdir -p "$state/kubelet"
cat > "$state/kubelet.yaml" <<Y
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $run/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
Y
"$here/.bin/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$run/kubelet.kubeconfig" \
  --root-dir "$state/kubelet" --cert-dir "$state/kubelet/pki" \
  --hostname-override "$node" --node-ip "$ip" \
  --container-runtime=remote --container-runtime-endpoint="unix://$rt/containerd.sock" \
  --image-service-endpoint="unix://$rt/containerd.sock" --pod-infra-container-image=kbo.local/pause:1 \
  --v=1 > "$run/kubelet.log" 2>&1 & echo $! > "$run/kubelet.pid"

# --- scheduler and controller manager (one of each: no leader election), loopback only
"$here/.bin/kube-scheduler" --kubeconfig "$run/scheduler.kubeconfig" \
  --authentication-kubeconfig "$run/scheduler.kubeconfig" --authorization-kubeconfig "$run/scheduler.kubeconfig" \
  --leader-elect=false --port=0 --bind-address=127.0.0.1 > "$run/scheduler.log" 2>&1 & echo $! > "$run/scheduler.pid"
"$here/.bin/kube-controller-manager" --kubeconfig "$run/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$run/controller-manager.kubeconfig" --authorization-kubeconfig "$run/controller-manager.kubeconfig" \
  --leader-elect=false --port=0 --bind-address=127.0.0.1 --use-service-account-credentials \
  --service-account-private-key-file="$run/sa.key" --root-ca-file="$run/ca.crt" \
  --service-cluster-ip-range=10.96.0.0/24 > "$run/controller-manager.log" 2>&1 & echo $! > "$run/controller-manager.pid"

# --- wait for the node to be Ready and schedulable
k() { "$here/.bin/kubectl" --kubeconfig "$here/kubeconfig" "$@"; }
ready=""
for _ in $(seq 120); do
  for p in kubelet scheduler controller-manager containerd dockerd; do
    running "$p" || die "$p exited; see $run/$p.log"
  done
  if [ "$(k get node "$node" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; then
    ready=1; break
  fi
  sleep 0.5
done
[ -n "$ready" ] || die "node $node not Ready after 60 s; see $run/kubelet.log"
# the node-lifecycle controller lifts the not-ready taint; if it has not yet, lift it here
for _ in $(seq 20); do
  k get node "$node" -o 'jsonpath={.spec.taints}' | grep -q not-ready || break
  sleep 0.5
done
k taint node "$node" node.kubernetes.io/not-ready- >/dev/null 2>&1 || true
# the default ServiceAccount (the controller manager makes it) before any Pod is created
for _ in $(seq 60); do k get serviceaccount default -n default >/dev/null 2>&1 && break; sleep 0.5; done
echo "kube-node: node $node ($ip) Ready after $(( $(date +%s) - t0 )) s; KUBECONFIG=$here/kubeconfig; images: source $run/node.env"
