#!/usr/bin/env bash
# Starts etcd (apt etcd-server) and the kube-apiserver built by build.sh on loopback, and
# writes testenv/kube/kubeconfig (token auth, RBAC, self-signed serving certificate).
# An API server only: no scheduler, controller-manager or kubelet (the operator runs as a
# local process in the e2e suite, so none is needed). Ports: KBO_ETCD_PORT (23790),
# KBO_KUBE_PORT (16443).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); run="$here/run"; mkdir -p "$run"; cd "$run"
bin="$here/.bin/kube-apiserver"
[ -x "$bin" ] || { echo "kube: build it first: testenv/kube/build.sh" >&2; exit 1; }
ep=${KBO_ETCD_PORT:-23790}; kp=${KBO_KUBE_PORT:-16443}
[ -f sa.key ] || { openssl genrsa -out sa.key 2048 2>/dev/null; openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null; }
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$token,kbo-e2e,kbo-e2e,system:masters" > tokens.csv
rm -rf etcd-data
etcd --name kbo --data-dir ./etcd-data \
  --listen-client-urls "http://127.0.0.1:$ep" --advertise-client-urls "http://127.0.0.1:$ep" \
  --listen-peer-urls "http://127.0.0.1:$((ep + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ep + 10))" \
  --initial-cluster "kbo=http://127.0.0.1:$((ep + 10))" > etcd.log 2>&1 & echo $! > etcd.pid
"$bin" --etcd-servers="http://127.0.0.1:$ep" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$kp" --cert-dir=./certs \
  --token-auth-file=./tokens.csv --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file=./sa.pub --service-account-signing-key-file=./sa.key \
  --service-cluster-ip-range=10.96.0.0/24 --endpoint-reconciler-type=none > apiserver.log 2>&1 & echo $! > apiserver.pid
cat > "$here/kubeconfig" <<K
apiVersion: v1
kind: Config
clusters:
- name: kbo-e2e
  cluster: {server: "https://127.0.0.1:$kp", insecure-skip-tls-verify: true}
users:
- name: kbo-e2e
  user: {token: "$token"}
contexts:
- name: kbo-e2e
  context: {cluster: kbo-e2e, user: kbo-e2e, namespace: default}
current-context: kbo-e2e
K
for i in $(seq 60); do
  curl -sfk -H "Authorization: Bearer $token" "https://127.0.0.1:$kp/readyz" >/dev/null \
    && { echo "kube: API server ready after ${i}s; KBO_E2E_KUBECONFIG=$here/kubeconfig"; exit 0; }
  sleep 1
done
echo "kube: not ready; see $run/apiserver.log" >&2; exit 1
