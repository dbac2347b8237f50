#!/usr/bin/env bash
# bench/operator_scale.sh - the operator's cost at scale and its reaction time, on the test node.
#
# a) 1,000 scheduled KafkaBackups (yearly cron, nothing due during the measurement) and 1,000
#    KafkaRestores waiting on them (their backup has no complete run: phase Pending, each one's
#    run task looks again every 15 s), created by one `kubectl apply -f` of a multi-document
#    file (split into --parallel files applied at once): the operator Pod's CPU seconds (cgroup v1 cpuacct.usage) from the apply until every
#    object has a status.phase, then CPU per idle minute over --idle-secs, against the same
#    release idle with no objects (--base-secs); memory (the Pod's cgroup usage and total_rss,
#    the process's VmRSS and VmHWM); reconciles (the operator's kbo_reconciles metric); the
#    kube-apiserver process's CPU in the same intervals (shared with other sessions: context).
# b) `kubectl apply` of one KafkaBackup (a --mib topic, rate-limited to --rate-mib MiB/s so it
#    stays Running for seconds) to its first status and to status.phase Running (a kubectl watch
#    on it, timestamped as lines arrive), --runs times, with the 2,000 objects of a) present
#    ("loaded") and again after deleting them ("clean"); min/median/max. The operator's log
#    lines of each run (JSON) are kept in the work dir.
#
# Usage: bench/operator_scale.sh [--count N] [--idle-secs S] [--base-secs S] [--runs R]
#                                [--mib M] [--rate-mib M] [--image REPO:TAG] [--only a|b]
#                                [--parallel P] [--rust-log FILTER] [--keep]
#   --count 1000 (KafkaBackups, and as many KafkaRestores), --idle-secs 150, --base-secs 60,
#   --parallel 4 (kubectl apply processes; each file holds a range of backups and restores),
#   --runs 5, --mib 64, --rate-mib 8, --image kafka-backup-operator:local, --rust-log info.
# Needs: root on the node's host (the Pod's cgroups, the hostPath volume), the running test
# peers and node. Never restarts them: its own topic, namespace (kbo-opscale-<pid>), chart
# release (metrics port 18290), PersistentVolume and directory, removed at the end (also on
# failure). See bench/README.md, "Operator at scale".
set -euo pipefail

COUNT=1000 IDLE_SECS=150 BASE_SECS=60 RUNS=5 MIB=64 RATE_MIB=8 ONLY=ab PARALLEL=4
IMAGE=kafka-backup-operator:local RUST_LOG_FILTER=info KEEP=0
METRICS_PORT=18290

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "operator_scale: error: $*" >&2; exit 1; }
log() { echo "[opscale $(date +%H:%M:%S)] $*" >&2; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=${2:?}; shift 2 ;;
    --idle-secs) IDLE_SECS=${2:?}; shift 2 ;;
    --base-secs) BASE_SECS=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --parallel) PARALLEL=${2:?}; shift 2 ;;
    --mib) MIB=${2:?}; shift 2 ;;
    --rate-mib) RATE_MIB=${2:?}; shift 2 ;;
    --image) IMAGE=${2:?}; shift 2 ;;
    --only) ONLY=${2:?}; shift 2 ;;
    --rust-log) RUST_LOG_FILTER=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
for o in "--count $COUNT" "--idle-secs $IDLE_SECS" "--base-secs $BASE_SECS" "--runs $RUNS" \
         "--mib $MIB" "--rate-mib $RATE_MIB" "--parallel $PARALLEL"; do posint $o; done
case "$ONLY" in a|b|ab) ;; *) die "--only must be a or b, got '$ONLY'" ;; esac
[[ $IMAGE == *:* ]] || die "--image must be REPO:TAG, got '$IMAGE'"
[ "$(id -u)" = 0 ] || die "run as root on the node's host: the Pod's cgroups and the hostPath volume need it"
CG_MEM=/sys/fs/cgroup/memory/kubepods CG_CPU=/sys/fs/cgroup/cpuacct/kubepods
[ -d "$CG_MEM" ] && [ -d "$CG_CPU" ] || die "$CG_MEM or $CG_CPU not found: this script reads cgroup v1 (cgroupfs driver)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTENV=$ROOT/testenv
KBO_DATA=$TESTENV/kbo_data.py
[ -f "$TESTENV/env" ] || die "$TESTENV/env missing: the test peers are not started (testenv/start.sh)"
# shellcheck disable=SC1091
source "$TESTENV/env"
PY=${KBO_PYTHON:?testenv/env does not set KBO_PYTHON}
BOOT=${KBO_KAFKA_BOOTSTRAP:?testenv/env does not set KBO_KAFKA_BOOTSTRAP}
KC=${KBO_KUBECONFIG:-$TESTENV/kube/kubeconfig}
[ -f "$KC" ] || die "$KC missing: the test node is not running (testenv/kube/node-start.sh)"
k() { "${KBO_KUBECTL:?testenv/env does not set KBO_KUBECTL}" --kubeconfig "$KC" "$@"; }
h() { "${KBO_HELM:?testenv/env does not set KBO_HELM}" --kubeconfig "$KC" "$@"; }

NS=kbo-opscale-$$ REL=kbo-opscale-$$ TOPIC=opscale-$$ CLAIM=repo
PV_NAME=$NS-repo PV_DIR=/var/lib/kbo-node/pv-$NS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbo-opscale.XXXXXX")
OK=0 WATCHER="" INSTALLED=0
cleanup() {
  set +e
  [ -n "$WATCHER" ] && kill "$WATCHER" 2>/dev/null
  log "cleanup: objects, release $REL, namespace $NS, PersistentVolume $PV_NAME, $PV_DIR, topic $TOPIC"
  if [ "$INSTALLED" = 1 ]; then
    # the operator removes its finalizers while it still runs
    k delete kr,kb --all -n "$NS" --wait=false >/dev/null 2>&1
    for _ in $(seq 90); do
      [ -z "$(k get kr,kb -n "$NS" -o name 2>/dev/null | head -1)" ] && break
      sleep 2
    done
    # whatever is left (operator gone or too slow): drop the finalizers, in this namespace only
    for o in $(k get kr,kb -n "$NS" -o name 2>/dev/null); do
      k patch -n "$NS" "$o" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
    done
  fi
  h uninstall "$REL" -n "$NS" --wait --timeout 120s >/dev/null 2>&1
  k delete namespace "$NS" --wait=true --timeout=180s >/dev/null 2>&1
  k delete pv "$PV_NAME" --wait=true --timeout=60s >/dev/null 2>&1
  rm -rf "$PV_DIR"
  "$PY" "$KBO_DATA" delete-topics --bootstrap "$BOOT" --prefix "$TOPIC" >/dev/null 2>&1
  if [ "$KEEP" = 1 ] || [ "$OK" = 0 ]; then echo "operator_scale: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_log() { [ -s "$1" ] && { echo "---- tail of $1 ----" >&2; tail -n 30 "$1" >&2; echo "----" >&2; }; return 0; }
now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------------------------------------
# readings: the operator Pod's CPU (ns) and memory, its process's RSS, the apiserver's CPU, the
# operator's reconcile counters
# ---------------------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
APISERVER_PID=$(pgrep -x kube-apiserver | head -1 || true)
pod_dir() { # root uid
  local d
  for d in "$1/pod$2" "$1"/*/"pod$2"; do [ -d "$d" ] && { echo "$d"; return 0; }; done
  return 1
}
op_cpu_ns() { cat "$OP_CPU/cpuacct.usage"; }
api_ticks() { # the kube-apiserver process's utime+stime ticks (0 when not found)
  local s
  [ -n "$APISERVER_PID" ] && s=$(cat "/proc/$APISERVER_PID/stat" 2>/dev/null) || { echo 0; return; }
  s=${s##*) }; awk '{print $12 + $13}' <<<"$s"
}
op_pid() { local p; for p in $(cat "$OP_MEM"/*/cgroup.procs 2>/dev/null); do grep -q '^Name:.*kafka-backup' "/proc/$p/status" 2>/dev/null && { echo "$p"; return; }; done; }
mem_line() { # "usage MiB, total_rss MiB, peak MiB; process VmRSS, VmHWM MiB"
  local pid; pid=$(op_pid)
  awk -v u="$(cat "$OP_MEM/memory.usage_in_bytes")" -v m="$(cat "$OP_MEM/memory.max_usage_in_bytes")" \
      -v r="$(awk '/^total_rss /{print $2}' "$OP_MEM/memory.stat")" \
      -v vr="$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status" 2>/dev/null)" \
      -v vh="$(awk '/^VmHWM:/{print $2}' "/proc/$pid/status" 2>/dev/null)" \
      'BEGIN { printf "cgroup usage %.0f MiB, total_rss %.0f MiB, peak %.0f MiB; process VmRSS %.0f MiB, VmHWM %.0f MiB",
               u/1048576, r/1048576, m/1048576, vr/1024, vh/1024 }'
}
reconciles() { # kind -> the sum of kbo_reconciles_total for it (0 when unreadable)
  curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null \
    | awk -v k="$1" '/^kbo_reconciles_total/ && index($0, "\"" k "\"") { s += $NF } END { printf "%d", s }'
}
# one interval: "<wall s> <operator cpu s> <apiserver cpu s>" since the mark
mark() { M_T=$(now); M_CPU=$(op_cpu_ns); M_API=$(api_ticks); }
since() {
  awk -v t0="$M_T" -v t1="$(now)" -v c0="$M_CPU" -v c1="$(op_cpu_ns)" -v a0="$M_API" -v a1="$(api_ticks)" -v hz="$HZ" \
    'BEGIN { printf "%.1f %.2f %.2f", t1 - t0, (c1 - c0) / 1e9, (a1 - a0) / hz }'
}

# ---------------------------------------------------------------------------------------------
# 1) namespace, volume (hostPath), release
# ---------------------------------------------------------------------------------------------
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); work dir $WORK"
k get nodes >/dev/null || die "the node's API server does not answer ($KC)"
[ -n "$APISERVER_PID" ] || log "WARNING: no kube-apiserver process on this host: its CPU is not reported"
k create namespace "$NS" >/dev/null
mkdir -p "$PV_DIR" && chown 65532:65532 "$PV_DIR"
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: $PV_NAME}
spec:
  capacity: {storage: 100Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: kbo-opscale
  hostPath: {path: $PV_DIR, type: Directory}
  claimRef: {namespace: $NS, name: $CLAIM}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $CLAIM, namespace: $NS}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: kbo-opscale
  resources: {requests: {storage: 100Gi}}
YAML
for _ in $(seq 120); do
  [ "$(k get pvc -n "$NS" "$CLAIM" -o jsonpath='{.status.phase}')" = Bound ] && break
  sleep 0.5
done
[ "$(k get pvc -n "$NS" "$CLAIM" -o jsonpath='{.status.phase}')" = Bound ] || die "claim $CLAIM never bound"

SERVER=$(k config view -o 'jsonpath={.clusters[0].cluster.server}')
log "helm install $REL ($IMAGE) into $NS, metrics port $METRICS_PORT, RUST_LOG=$RUST_LOG_FILTER"
INSTALLED=1
h install "$REL" "$ROOT/charts/kafka-backup-operator" -n "$NS" --wait --timeout 180s \
  --set "image.repository=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}" --set image.pullPolicy=Never \
  --set hostNetwork=true --set "metrics.port=$METRICS_PORT" --set "watchNamespaces[0]=$NS" \
  --set "pvcClaims[0]=$CLAIM" \
  --set-string extraEnv[0].name=KUBERNETES_SERVICE_HOST --set-string extraEnv[0].value=127.0.0.1 \
  --set-string extraEnv[1].name=KUBERNETES_SERVICE_PORT --set-string "extraEnv[1].value=${SERVER##*:}" \
  --set-string extraEnv[2].name=RUST_LOG --set-string "extraEnv[2].value=$RUST_LOG_FILTER" \
  >"$WORK/helm.log" 2>&1 || { show_log "$WORK/helm.log"; k describe pods -n "$NS" >&2; die "helm install failed (is $IMAGE imported? scripts/image.sh)"; }
OP_POD=$(k get pods -n "$NS" -l app.kubernetes.io/name=kafka-backup-operator -o 'jsonpath={.items[0].metadata.name}')
OP_UID=$(k get pods -n "$NS" "$OP_POD" -o 'jsonpath={.metadata.uid}')
OP_MEM=$(pod_dir "$CG_MEM" "$OP_UID") || die "no memory cgroup for the operator Pod (uid $OP_UID)"
OP_CPU=$(pod_dir "$CG_CPU" "$OP_UID") || die "no cpuacct cgroup for the operator Pod (uid $OP_UID)"
for _ in $(seq 60); do curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null 2>&1 && break; sleep 1; done
REPORT=$WORK/report.txt
: >"$REPORT"
out() { echo "$*" | tee -a "$REPORT"; }

# "<with a status.phase> <total>" of the KafkaBackups and KafkaRestores in the namespace (a
# waiting KafkaRestore is marked Running first, then Pending once its run finds no complete
# backup run: the phases are counted in the report)
phases() {
  k get kb,kr -n "$NS" -o 'jsonpath={range .items[*]}{.kind}={.status.phase}{"\n"}{end}' 2>/dev/null \
    | awk -F= 'NF { n++; if ($2 != "") p++ } END { printf "%d %d", p, n }'
}
# leadership changes in the operator's log so far (the Lease renewal can lapse under load)
leader_changes() { k logs -n "$NS" "$OP_POD" 2>/dev/null | grep -c '"leadership changed"' || true; }

# ---------------------------------------------------------------------------------------------
# 2) part a: 1,000 scheduled KafkaBackups + 1,000 waiting KafkaRestores
# ---------------------------------------------------------------------------------------------
part_a() {
  local total=$((COUNT * 2)) i
  # every backup its own repository directory (as a real setup has), created beforehand
  for i in $(seq -f %04g "$COUNT"); do mkdir -p "$PV_DIR/s-$i"; done
  chown -R 65532:65532 "$PV_DIR"
  gen_objects() { # first last: the backups, then the restores, of that range
    local i
    for i in $(seq -f %04g "$1" "$2"); do cat <<YAML
---
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata: {name: s-$i, namespace: $NS}
spec:
  schedule: "0 0 1 1 *"
  kafkaCluster: {bootstrapServers: ["$BOOT"]}
  topics: ["$TOPIC-s-$i"]
  storage: {storageType: pvc, pvc: {claimName: $CLAIM, subPath: s-$i}}
YAML
    done
    for i in $(seq -f %04g "$1" "$2"); do cat <<YAML
---
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata: {name: r-$i, namespace: $NS}
spec:
  backupRef: {name: s-$i}
  kafkaCluster: {bootstrapServers: ["$BOOT"]}
  topicMapping: {"$TOPIC-s-$i": "$TOPIC-r-$i"}
YAML
    done
  }
  local f first last
  for f in $(seq "$PARALLEL"); do
    first=$(( (f - 1) * COUNT / PARALLEL + 1 )) last=$(( f * COUNT / PARALLEL ))
    [ "$first" -le "$last" ] && gen_objects "$first" "$last" >"$WORK/objects-$f.yaml"
  done
  log "a) idle baseline: the release with no objects, $BASE_SECS s"
  sleep 10
  local base_mem; base_mem=$(mem_line)
  mark; sleep "$BASE_SECS"
  local base; base=$(since)
  read -r b_wall b_cpu b_api <<<"$base"
  local rk0 rr0; rk0=$(reconciles KafkaBackup) rr0=$(reconciles KafkaRestore)
  log "a) baseline: $b_cpu s operator CPU, $b_api s apiserver CPU in $b_wall s; $base_mem"

  # the peaks from here on: cgroup v1 resets max_usage on a write, VmHWM on clear_refs 5
  echo 0 >"$OP_MEM/memory.max_usage_in_bytes"
  local pid; pid=$(op_pid); [ -n "$pid" ] && echo 5 >"/proc/$pid/clear_refs"
  log "a) kubectl apply of $COUNT KafkaBackups + $COUNT KafkaRestores ($(cat "$WORK"/objects-*.yaml | wc -c) bytes, $PARALLEL files at once)"
  local lc0; lc0=$(leader_changes)
  mark
  local t0=$M_T t_apply t_all p n=0 pids=() pid
  for f in "$WORK"/objects-*.yaml; do
    k apply -f "$f" >"$f.out" 2>"$f.err" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { cat "$WORK"/objects-*.err >&2; die "kubectl apply failed"; }; done
  t_apply=$(now)
  local applied; applied=$(since)
  log "a) kubectl apply returned after $(sub "$t0" "$t_apply") s"
  local deadline=$((SECONDS + 1200))
  while :; do
    read -r p n <<<"$(phases)"
    [ "$p" -ge "$total" ] && break
    [ $SECONDS -ge $deadline ] && die "only $p of $total objects have a status after 1200 s"
    sleep 5
  done
  t_all=$(now)
  local intake; intake=$(since)
  read -r i_wall i_cpu i_api <<<"$intake"
  local intake_mem; intake_mem=$(mem_line)
  local rk1 rr1 lc1; rk1=$(reconciles KafkaBackup) rr1=$(reconciles KafkaRestore) lc1=$(leader_changes)
  k get kb,kr -n "$NS" -o 'jsonpath={range .items[*]}{.kind} {.status.phase}{"\n"}{end}' | sort | uniq -c >"$WORK/phases.txt"
  k get kr -n "$NS" r-0001 -o 'jsonpath={.status.message}' >"$WORK/r-0001.message" 2>/dev/null || true
  log "a) all $total have a status after $i_wall s: operator $i_cpu s CPU; $intake_mem"
  # settle (the restores' first re-checks), then the idle interval
  sleep 20
  local rk2 rr2; rk2=$(reconciles KafkaBackup) rr2=$(reconciles KafkaRestore)
  mark; sleep "$IDLE_SECS"
  local idle; idle=$(since)
  read -r d_wall d_cpu d_api <<<"$idle"
  local rk3 rr3 lc3; rk3=$(reconciles KafkaBackup) rr3=$(reconciles KafkaRestore) lc3=$(leader_changes)
  k get kb,kr -n "$NS" -o 'jsonpath={range .items[*]}{.kind} {.status.phase}{"\n"}{end}' | sort | uniq -c >"$WORK/phases-idle.txt"
  local idle_mem; idle_mem=$(mem_line)
  read -r p n <<<"$(phases)"
  log "a) idle $d_wall s: operator $d_cpu s CPU; $idle_mem"
  local per_min base_per_min
  per_min=$(awk -v c="$d_cpu" -v w="$d_wall" 'BEGIN { printf "%.2f", c / w * 60 }')
  base_per_min=$(awk -v c="$b_cpu" -v w="$b_wall" 'BEGIN { printf "%.2f", c / w * 60 }')
  {
    echo
    echo "a) $COUNT scheduled KafkaBackups (cron \"0 0 1 1 *\") + $COUNT KafkaRestores waiting on them, image $IMAGE"
    echo "   kubectl apply ($PARALLEL files at once, $total documents): $(sub "$t0" "$t_apply") s; apiserver CPU during it $(awk '{print $3}' <<<"$applied") s"
    echo "   intake (apply start .. every object has a status.phase, polled every 5 s): $i_wall s"
    echo "     operator CPU $i_cpu s = $(awk -v c="$i_cpu" -v n="$total" 'BEGIN { printf "%.2f", c / n * 1000 }') ms per object; apiserver CPU $i_api s"
    echo "     reconciles: KafkaBackup $((rk1 - rk0)), KafkaRestore $((rr1 - rr0))"
    echo "     phases: $(awk '{printf "%s %s %s; ", $1, $2, $3}' "$WORK/phases.txt")"
    echo "     operator leadership changes during intake: $((lc1 - lc0)) (\"leadership changed\" log lines)"
    echo "     memory after intake: $intake_mem (peak/VmHWM since the apply)"
    echo "   idle with the $total objects, $d_wall s (after 20 s settling): operator CPU $d_cpu s = $per_min s per minute"
    echo "     ($(awk -v c="$d_cpu" -v w="$d_wall" 'BEGIN { printf "%.1f", c / w * 100 }') % of one core); apiserver CPU $d_api s = $(awk -v c="$d_api" -v w="$d_wall" 'BEGIN { printf "%.2f", c / w * 60 }') s per minute"
    echo "     reconciles in it: KafkaBackup $((rk3 - rk2)), KafkaRestore $((rr3 - rr2)); with a phase: $p of $n"
    echo "     phases after idle: $(awk '{printf "%s %s %s; ", $1, $2, $3}' "$WORK/phases-idle.txt")"
    echo "     leadership changes in settling + idle: $((lc3 - lc1))"
    echo "     memory after idle: $idle_mem"
    echo "   idle with no objects, $b_wall s: operator CPU $b_cpu s = $base_per_min s per minute; apiserver CPU $b_api s"
    echo "     memory then: $base_mem"
    echo "   a waiting restore's message: $(cat "$WORK/r-0001.message")"
  } | tee -a "$REPORT"
}

# ---------------------------------------------------------------------------------------------
# 3) part b: kubectl apply -> first status, -> Running of one KafkaBackup, --runs times
# ---------------------------------------------------------------------------------------------
B_TOPIC_DONE=0
b_topic() {
  [ "$B_TOPIC_DONE" = 1 ] && return 0
  log "b) gen-load: $MIB MiB into $TOPIC (4 partitions, 1 KiB records)"
  "$PY" "$KBO_DATA" gen-load --bootstrap "$BOOT" --topic "$TOPIC" --partitions 4 \
    --mib "$MIB" --record-bytes 1024 >"$WORK/genload.out" 2>"$WORK/genload.err" \
    || { show_log "$WORK/genload.err"; die "gen-load failed"; }
  B_TOPIC_DONE=1
}
part_b() { # label
  local label=$1 i name t0 t_ret t_first t_run since_time phase firsts=() runs=()
  b_topic
  for i in $(seq "$RUNS"); do
    name=b-$label-$i
    mkdir -p "$PV_DIR/$name" && chown 65532:65532 "$PV_DIR/$name"
    cat >"$WORK/$name.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata: {name: $name, namespace: $NS}
spec:
  kafkaCluster: {bootstrapServers: ["$BOOT"]}
  topics: ["$TOPIC"]
  stopAtCurrentOffsets: true
  compression: none
  rateLimiting: {bytesPerSec: $((RATE_MIB * 1048576))}
  storage: {storageType: pvc, pvc: {claimName: $CLAIM, subPath: $name}}
YAML
    # a watch on this one object, every line timestamped as it arrives
    # ($! is kubectl's pid: killing it ends the reader too)
    "$KBO_KUBECTL" --kubeconfig "$KC" get kb -n "$NS" --field-selector "metadata.name=$name" --watch \
        -o 'jsonpath={.metadata.name} {.status.phase}{"\n"}' 2>"$WORK/$name.watch.err" \
      > >(while IFS= read -r l; do echo "$(date +%s.%N) $l"; done >"$WORK/$name.watch") &
    WATCHER=$!
    sleep 1.5
    since_time=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    t0=$(now)
    k apply -f "$WORK/$name.yaml" >/dev/null
    t_ret=$(now)
    local deadline=$((SECONDS + 300))
    while :; do
      phase=$(k get kb -n "$NS" "$name" -o 'jsonpath={.status.phase}' 2>/dev/null || true)
      [ "$phase" = Completed ] || [ "$phase" = Failed ] && break
      [ $SECONDS -ge $deadline ] && break
      sleep 0.5
    done
    sleep 0.5
    kill "$WATCHER" 2>/dev/null; wait "$WATCHER" 2>/dev/null || true; WATCHER=""
    [ "$phase" = Completed ] || { k get kb -n "$NS" "$name" -o yaml >&2; die "$name: phase '${phase:-none}'"; }
    t_first=$(awk '$3 != "" { print $1; exit }' "$WORK/$name.watch")
    t_run=$(awk '$3 == "Running" { print $1; exit }' "$WORK/$name.watch")
    [ -n "$t_run" ] || { cat "$WORK/$name.watch" >&2; die "$name: the watch never saw phase Running"; }
    firsts+=("$(sub "$t0" "$t_first")") runs+=("$(sub "$t0" "$t_run")")
    k logs -n "$NS" "$OP_POD" --since-time="$since_time" 2>/dev/null | grep -F "$name" >"$WORK/$name.oplog" || true
    log "b) $label run $i: apply returned +$(sub "$t0" "$t_ret") s, first status ($(awk '$3 != "" { print $3; exit }' "$WORK/$name.watch")) +${firsts[-1]} s, Running +${runs[-1]} s; phases seen: $(awk '{print $3}' "$WORK/$name.watch" | uniq | paste -sd' ')"
    k delete kb -n "$NS" "$name" --wait=true --timeout=120s >/dev/null
    rm -rf "${PV_DIR:?}/$name"
    sleep 2
  done
  stats() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "min %.2f / median %.2f / max %.2f s", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR] }'; }
  {
    echo
    echo "b) kubectl apply -> status of one KafkaBackup ($MIB MiB topic, rateLimiting $RATE_MIB MiB/s, in-process), $label, $RUNS runs"
    echo "   to first status: $(stats "${firsts[@]}")   (each: ${firsts[*]})"
    echo "   to Running:      $(stats "${runs[@]}")   (each: ${runs[*]})"
  } | tee -a "$REPORT"
}

case "$ONLY" in
  a) part_a ;;
  b) part_b clean ;;
  ab)
    part_a
    part_b loaded
    log "deleting the $((COUNT * 2)) objects of a)"
    t0=$(now)
    k delete kr,kb --all -n "$NS" --wait=false >/dev/null
    while [ -n "$(k get kr,kb -n "$NS" -o name 2>/dev/null | head -1)" ]; do sleep 2; done
    out ""
    out "   deleting the $((COUNT * 2)) objects of a) (kubectl delete --all, until none is left): $(sub "$t0" "$(now)") s"
    sleep 10
    part_b clean
    ;;
esac
out ""
out "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
OK=1
