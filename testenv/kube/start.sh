#!/usr/bin/env bash
# Starts etcd (apt etcd-server) and the kube-apiserver built by build.sh on loopback, and
# writes testenv/kube/kubeconfig (token auth, Node + RBAC authorization, a test CA that signs
# the serving certificate for 127.0.0.1 and the `kubernetes` Service names).
# An API server only: node-start.sh adds the kubelet, scheduler and controller manager (a real
# one-node cluster) on top of it. Ports: KBO_ETCD_PORT (23790), KBO_KUBE_PORT (16443).
# The 1.20 API server would open an unauthenticated 127.0.0.1:8080: --insecure-port=0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); run="$here/run"; mkdir -p "$run"; cd "$run"
bin="$here/.bin/kube-apiserver"
[ -x "$bin" ] || { echo "kube: build it first: testenv/kube/build.sh" >&2; exit 1; }
command -v etcd >/dev/null || { echo "kube: etcd is missing (apt-get install etcd-server; build.sh installs it)" >&2; exit 1; }
ep=${KBO_ETCD_PORT:-23790}; kp=${KBO_KUBE_PORT:-16443}
for f in apiserver etcd; do
  [ -f "$f.pid" ] && kill -0 "$(cat "$f.pid")" 2>/dev/null && { echo "kube: $f already running (pid $(cat "$f.pid")): testenv/kube/stop.sh first" >&2; exit 1; }
done
[ -f sa.key ] || { openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null; }
# The test CA: signs the API server's serving certificate (Pods verify it with the
# kube-root-ca.crt / service-account ca.crt the controller manager publishes) and the API
# server's client certificate towards the kubelet.
if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 -subj /CN=kbo-test-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n' > apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout kubelet-client.key -out kubelet-client.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > client.ext
  openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out kubelet-client.crt 2>/dev/null
  rm -f ./*.csr ./*.ext
fi
tok() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
token=$(tok); node=${KBO_NODE_NAME:-kbo-node}
{
  echo "$token,kbo-e2e,kbo-e2e,system:masters"
  echo "$(tok),system:node:$node,kbo-kubelet,system:nodes"
  echo "$(tok),system:kube-scheduler,kbo-scheduler"
  echo "$(tok),system:kube-controller-manager,kbo-controller-manager"
} > tokens.csv
# kubeconfig <file> <token>
kubeconfig() {
  cat > "$1" <<K
apiVersion: v1
kind: Config
clusters:
- name: kbo-e2e
  cluster: {server: "https://127.0.0.1:$kp", certificate-authority-data: "$(base64 -w0 ca.crt)"}
users:
- name: kbo-e2e
  user: {token: "$2"}
contexts:
- name: kbo-e2e
  context: {cluster: kbo-e2e, user: kbo-e2e, namespace: default}
current-context: kbo-e2e
K
}
kubeconfig "$here/kubeconfig" "$token"
kubeconfig kubelet.kubeconfig "$(sed -n 2p tokens.csv | cut -d, -f1)"
kubeconfig scheduler.kubeconfig "$(sed -n 3p tokens.csv | cut -d, -f1)"
kubeconfig controller-manager.kubeconfig "$(sed -n 4p tokens.csv | cut -d, -f1)"
rm -rf etcd-data
etcd --name kbo --data-dir ./etcd-data \
  --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
  --listen-peer-urls "http://127.0.0.1:$((ep + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ep + 10))" \
  --initial-cluster "kbo=http://127.0.0.1:$((ep + 10))" > etcd.log 2>&1 & echo $! > etcd.pid
"$bin" --etcd-servers="http://127.0.0.1:$ep" --insecure-port=0 \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$kp" \
  --tls-cert-file=./apiserver.crt --tls-private-key-file=./apiserver.key --client-ca-file=./ca.crt \
  --token-auth-file=./tokens.csv --authorization-mode=Node,RBAC \
  --kubelet-client-certificate=./kubelet-client.crt --kubelet-client-key=./kubelet-client.key \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file=./sa.pub --service-account-signing-key-file=./sa.key \
  --service-cluster-ip-range=10.96.0.0/24 --endpoint-reconciler-type=none > apiserver.log 2>&1 & echo $! > apiserver.pid
for i in $(seq 60); do
  curl -sf --cacert ca.crt -H "Authorization: Bearer $token" "https://127.0.0.1:$kp/readyz" >/dev/null \
    && { echo "kube: API server ready after ${i}s; KBO_E2E_KUBECONFIG=$here/kubeconfig"; exit 0; }
  sleep 1
done
echo "kube: not ready; see $run/apiserver.log" >&2; exit 1
