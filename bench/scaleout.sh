#!/usr/bin/env bash
# bench/scaleout.sh - scale-out benchmark of sharded backups through the operator on the test node.
#
# One backup of one generated topic, run by the operator (a chart release of its own) on the
# testenv node: in process (spec.execution.mode in-process) and as 1, 2 and 4 shard Jobs
# (mode job), next to the plain librdkafka consumer (testenv/kbo_data.py bench-consume) on the
# same topic. Per run: seconds from `kubectl apply` to status.phase Completed, MB/s, records/s,
# peak memory of every shard Pod and of the operator Pod (cgroup v1 memory.max_usage_in_bytes,
# and the processes' VmHWM), then one table. See bench/README.md, "Scale-out".
#
# Usage: bench/scaleout.sh [--mib N] [--partitions P] [--shards "1 2 4"] [--runs R]
#                          [--image REPO:TAG] [--keep]
#   --mib 256, --partitions 12 (1 KiB records), --shards "1 2 4", --runs 1 (per configuration),
#   --image kafka-backup-operator:local (import it first: scripts/image.sh [--tag ...]).
# Env:   KBO_KUBECONFIG (default testenv/kube/kubeconfig); BENCH_IDLE_PCT (5),
#        BENCH_IDLE_SECS (3), BENCH_IDLE_TIMEOUT (60): the broker counts as idle after IDLE_SECS
#        consecutive seconds below IDLE_PCT % of a core; BENCH_TIMEOUT (900) per run.
# Needs: root on the node's host (the Pods' memory cgroups, the hostPath volume), the running
# test peers and node. Never restarts them: its own topic, namespace, chart release (metrics
# port 18190), PersistentVolume and directory, all removed at the end (also on failure).
set -euo pipefail

MIB=256 PARTS=12 SHARDS="1 2 4" RUNS=1 IMAGE=kafka-backup-operator:local KEEP=0
RECORD_BYTES=1024
IDLE_PCT=${BENCH_IDLE_PCT:-5}
IDLE_SECS=${BENCH_IDLE_SECS:-3}
IDLE_TIMEOUT=${BENCH_IDLE_TIMEOUT:-60}
RUN_TIMEOUT=${BENCH_TIMEOUT:-900}
METRICS_PORT=18190

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "scaleout: error: $*" >&2; exit 1; }
log() { echo "[scaleout $(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --mib) MIB=${2:?--mib needs a value}; shift 2 ;;
    --partitions) PARTS=${2:?--partitions needs a value}; shift 2 ;;
    --shards) SHARDS=${2:?--shards needs a value}; shift 2 ;;
    --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
    --image) IMAGE=${2:?--image needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $MIB =~ ^[1-9][0-9]*$ ]] || die "--mib must be a positive integer, got '$MIB'"
[[ $PARTS =~ ^[1-9][0-9]*$ ]] || die "--partitions must be a positive integer, got '$PARTS'"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
for s in $SHARDS; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "--shards must list positive integers, got '$SHARDS'"; done
[[ $IMAGE == *:* ]] || die "--image must be REPO:TAG, got '$IMAGE'"
[ "$(id -u)" = 0 ] || die "run as root on the node's host: the Pods' memory cgroups and the hostPath volume need it"
CG=/sys/fs/cgroup/memory/kubepods
[ -d "$CG" ] || die "$CG not found: this script reads cgroup v1 memory cgroups of the node (cgroupfs driver)"

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
NOIDA_PID=$(cat "$TESTENV/run/noida.pid" 2>/dev/null) || die "no $TESTENV/run/noida.pid: the broker is not running"
kill -0 "$NOIDA_PID" 2>/dev/null || die "noida-db (pid $NOIDA_PID) is not running: start the peers (testenv/start.sh)"

NS=kbo-scaleout-$$ REL=kbo-scaleout TOPIC=scaleout-$$ CLAIM=repo
PV_NAME=$NS-repo PV_DIR=/var/lib/kbo-node/pv-$NS
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbo-scaleout.XXXXXX")
OK=0 SAMPLER=""
cleanup() {
  set +e
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null
  log "cleanup: release $REL, namespace $NS, PersistentVolume $PV_NAME, $PV_DIR, topic $TOPIC"
  h uninstall "$REL" -n "$NS" --wait --timeout 120s >/dev/null 2>&1
  k delete namespace "$NS" --wait=true --timeout=120s >/dev/null 2>&1
  k delete pv "$PV_NAME" --wait=true --timeout=60s >/dev/null 2>&1
  rm -rf "$PV_DIR"
  "$PY" "$KBO_DATA" delete-topics --bootstrap "$BOOT" --prefix "$TOPIC" >/dev/null 2>&1
  if [ "$KEEP" = 1 ] || [ "$OK" = 0 ]; then
    echo "scaleout: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_log() { [ -s "$1" ] && { echo "---- tail of $1 ----" >&2; tail -n 30 "$1" >&2; echo "----" >&2; }; return 0; }
json() { "$PY" -c 'import json,sys; print(json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])[sys.argv[2]])' "$1" "$2"; }
now() { date +%s.%N; }
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

# ---------------------------------------------------------------------------------------------
# Broker idleness (noida rewrites a snapshot after writes using a full core; see bench/run.sh)
# ---------------------------------------------------------------------------------------------
cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; awk '{print $12 + $13}' <<<"$s"; }
HZ=$(getconf CLK_TCK)
wait_idle() { # label
  local prev now quiet=0 t0=$SECONDS
  prev=$(cpu_ticks "$NOIDA_PID") || die "noida-db (pid $NOIDA_PID) is not running (before $1)"
  while :; do
    sleep 1
    now=$(cpu_ticks "$NOIDA_PID") || die "noida-db (pid $NOIDA_PID) died (before $1)"
    if [ $(( (now - prev) * 100 )) -lt $(( HZ * IDLE_PCT )) ]; then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$now
    [ "$quiet" -ge "$IDLE_SECS" ] && break
    if [ $((SECONDS - t0)) -ge "$IDLE_TIMEOUT" ]; then
      log "WARNING: broker still busy after ${IDLE_TIMEOUT}s (others use it too); timing $1 anyway"
      return 0
    fi
  done
  log "broker idle before $1 (waited $((SECONDS - t0)) s); load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# ---------------------------------------------------------------------------------------------
# Memory sampler: every 0.2 s, for every Pod memory cgroup under kubepods/ (cgroupfs layout
# kubepods[/<qos>]/pod<uid>), the highest memory.max_usage_in_bytes and memory.stat total_rss
# seen, and the highest VmHWM of the processes in its containers' cgroups. A Pod's cgroup goes
# when the Pod ends, so the figures are the last sample's (at most 0.2 s before the end).
# Prints one JSON object {uid: {max_usage, rss, hwm}} on SIGTERM.
# ---------------------------------------------------------------------------------------------
cat >"$WORK/sampler.py" <<'PY'
import glob, json, os, signal, sys, time
root = sys.argv[1]
peak = {}
def rd(p):
    try:
        with open(p) as f: return f.read()
    except OSError: return None
def sample():
    for d in glob.glob(root + "/pod*") + glob.glob(root + "/*/pod*"):
        uid = os.path.basename(d)[3:]
        p = peak.setdefault(uid, {"max_usage": 0, "rss": 0, "hwm": 0})
        mu = rd(d + "/memory.max_usage_in_bytes")
        if mu: p["max_usage"] = max(p["max_usage"], int(mu))
        st = rd(d + "/memory.stat") or ""
        for line in st.splitlines():
            if line.startswith("total_rss "): p["rss"] = max(p["rss"], int(line.split()[1]))
        for procs in glob.glob(d + "/*/cgroup.procs"):
            for pid in (rd(procs) or "").split():
                s = rd(f"/proc/{pid}/status") or ""
                for line in s.splitlines():
                    if line.startswith("VmHWM:"): p["hwm"] = max(p["hwm"], int(line.split()[1]) * 1024)
def done(*_):
    sample()
    print(json.dumps(peak)); sys.stdout.flush(); os._exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    sample(); time.sleep(0.2)
PY
pod_cgroup() { # uid -> the Pod's memory cgroup dir
  local d
  for d in "$CG/pod$1" "$CG"/*/"pod$1"; do [ -d "$d" ] && { echo "$d"; return 0; }; done
  return 1
}

# ---------------------------------------------------------------------------------------------
# 1) namespace, volume (hostPath, ReadWriteMany: several shard Pods on the one node), release
# ---------------------------------------------------------------------------------------------
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); work dir $WORK"
k get nodes >/dev/null || die "the node's API server does not answer ($KC)"
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
  storageClassName: kbo-scaleout
  hostPath: {path: $PV_DIR, type: Directory}
  claimRef: {namespace: $NS, name: $CLAIM}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $CLAIM, namespace: $NS}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: kbo-scaleout
  resources: {requests: {storage: 100Gi}}
YAML
for _ in $(seq 120); do
  [ "$(k get pvc -n "$NS" "$CLAIM" -o jsonpath='{.status.phase}')" = Bound ] && break
  sleep 0.5
done
[ "$(k get pvc -n "$NS" "$CLAIM" -o jsonpath='{.status.phase}')" = Bound ] || die "claim $CLAIM never bound"

SERVER=$(k config view -o 'jsonpath={.clusters[0].cluster.server}')
log "helm install $REL ($IMAGE) into $NS, metrics port $METRICS_PORT"
h install "$REL" "$ROOT/charts/kafka-backup-operator" -n "$NS" --wait --timeout 180s \
  --set "image.repository=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}" --set image.pullPolicy=Never \
  --set hostNetwork=true --set "metrics.port=$METRICS_PORT" --set "watchNamespaces[0]=$NS" \
  --set "pvcClaims[0]=$CLAIM" \
  --set-string extraEnv[0].name=KUBERNETES_SERVICE_HOST --set-string extraEnv[0].value=127.0.0.1 \
  --set-string extraEnv[1].name=KUBERNETES_SERVICE_PORT --set-string "extraEnv[1].value=${SERVER##*:}" \
  >"$WORK/helm.log" 2>&1 || { show_log "$WORK/helm.log"; k describe pods -n "$NS" >&2; die "helm install failed (is $IMAGE imported? scripts/image.sh)"; }
OP_UID=$(k get pods -n "$NS" -l app.kubernetes.io/name=kafka-backup-operator -o 'jsonpath={.items[0].metadata.uid}')
OP_CG=$(pod_cgroup "$OP_UID") || die "no memory cgroup for the operator Pod (uid $OP_UID) under $CG"

# ---------------------------------------------------------------------------------------------
# 2) load, 3) the plain consumer
# ---------------------------------------------------------------------------------------------
log "gen-load: $MIB MiB into $TOPIC ($PARTS partitions, $RECORD_BYTES-byte records)"
"$PY" "$KBO_DATA" gen-load --bootstrap "$BOOT" --topic "$TOPIC" --partitions "$PARTS" \
  --mib "$MIB" --record-bytes "$RECORD_BYTES" >"$WORK/genload.out" 2>"$WORK/genload.err" \
  || { show_log "$WORK/genload.err"; die "gen-load failed"; }
RECORDS=$(json "$WORK/genload.out" records)

ROWS=()
consumer_run() { # run number
  wait_idle "plain consumer"
  /usr/bin/time -f '%M %e' -o "$WORK/consume-$1.time" "$PY" "$KBO_DATA" bench-consume --bootstrap "$BOOT" \
    --topics "$TOPIC" --out /dev/null >"$WORK/consume-$1.out" 2>"$WORK/consume-$1.err" \
    || { show_log "$WORK/consume-$1.err"; die "plain consumer failed"; }
  local n secs rss
  n=$(json "$WORK/consume-$1.out" records) secs=$(json "$WORK/consume-$1.out" seconds)
  [ "$n" = "$RECORDS" ] || die "plain consumer read $n records, gen-load wrote $RECORDS"
  PAYLOAD=$(json "$WORK/consume-$1.out" bytes)
  rss=$(awk '{printf "%.0f", $1 / 1024}' "$WORK/consume-$1.time")
  C_SECS+=("$secs")
  log "plain consumer: $n records in $secs s, peak RSS $rss MiB"
  ROWS+=("plain consumer|$1|$secs|$secs|-|-|-|$rss")
}

# ---------------------------------------------------------------------------------------------
# 4) one operator run: apply, wait for Completed, read the figures
# ---------------------------------------------------------------------------------------------
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
operator_run() { # mode shards run
  local mode=$1 shards=$2 run=$3 name exec phase t0 t1 secs
  name=so-${mode%%-*}-$shards-$run
  [ "$mode" = in-process ] && name=so-inproc-$run
  exec="mode: $mode"
  [ "$mode" = job ] && exec="mode: job
    shards: $shards
    backoffLimit: 0"
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
  execution:
    $exec
  storage: {storageType: pvc, pvc: {claimName: $CLAIM, subPath: $name}}
YAML
  wait_idle "$name"
  # the operator's peaks from here on: cgroup v1 resets max_usage on a write, VmHWM on
  # clear_refs 5
  echo 0 >"$OP_CG/memory.max_usage_in_bytes"
  local pid
  for pid in $(cat "$OP_CG"/*/cgroup.procs 2>/dev/null); do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done
  "$PY" "$WORK/sampler.py" "$CG" >"$WORK/$name.mem" &
  SAMPLER=$!
  t0=$(now)
  k apply -f "$WORK/$name.yaml" >/dev/null
  while :; do
    phase=$(k get kb -n "$NS" "$name" -o 'jsonpath={.status.phase}' 2>/dev/null || true)
    [ "$phase" = Completed ] || [ "$phase" = Failed ] && break
    awk -v a="$t0" -v b="$(now)" -v m="$RUN_TIMEOUT" 'BEGIN { exit !(b - a > m) }' && break
    sleep 0.25
  done
  t1=$(now)
  kill -TERM "$SAMPLER"; wait "$SAMPLER" || true; SAMPLER=""
  k get kb -n "$NS" "$name" -o json >"$WORK/$name.status.json"
  k get pods -n "$NS" -l "kafka.oso.sh/name=$name" -o json >"$WORK/$name.pods.json"
  if [ "$phase" != Completed ]; then
    k get kb -n "$NS" "$name" -o 'jsonpath={.status}' >&2; echo >&2
    k logs -n "$NS" -l app.kubernetes.io/name=kafka-backup-operator --tail=40 >&2 || true
    die "$name: phase '${phase:-none}' after $(fmt "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" %.0f) s"
  fi
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  # records, the run's own seconds (status.history: startTime to completionTime, 1 s
  # resolution), each shard Pod's peaks and container seconds, the operator's peaks
  "$PY" - "$WORK/$name.status.json" "$WORK/$name.pods.json" "$WORK/$name.mem" "$OP_UID" \
    >"$WORK/$name.fig" <<'PY'
import json, sys
from datetime import datetime
kb = json.load(open(sys.argv[1])); pods = json.load(open(sys.argv[2]))["items"]
mem = json.load(open(sys.argv[3])); op = sys.argv[4]
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
st = kb["status"]; h = (st.get("history") or [{}])[-1]
own = t(h["completionTime"]) - t(h["startTime"]) if h.get("startTime") and h.get("completionTime") else -1
M = lambda b: f"{b / 1048576:.0f}"
shards = []
for p in sorted(pods, key=lambda p: int(p["metadata"]["labels"].get("kafka.oso.sh/shard", 0))):
    m = mem.get(p["metadata"]["uid"], {"max_usage": 0, "rss": 0, "hwm": 0})
    term = ((p["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("terminated") or {}
    run = t(term["finishedAt"]) - t(term["startedAt"]) if term.get("startedAt") else -1
    shards.append((M(m["max_usage"]), M(m["hwm"]), f"{run:.0f}"))
o = mem.get(op, {"max_usage": 0, "rss": 0, "hwm": 0})
print(st.get("recordsProcessed") or 0, f"{own:.0f}", M(o["max_usage"]), M(o["hwm"]),
      "/".join(s[0] for s in shards) or "-", "/".join(s[1] for s in shards) or "-",
      "/".join(s[2] for s in shards) or "-", len(pods))
PY
  local recs own opmu ophwm smu shwm srun npods label
  read -r recs own opmu ophwm smu shwm srun npods <"$WORK/$name.fig"
  [ "$recs" = "$RECORDS" ] || die "$name: status.recordsProcessed $recs, the topic holds $RECORDS"
  [ "$mode" = job ] && [ "$npods" != "$shards" ] && die "$name: $npods shard Pods, expected $shards"
  label="in-process"
  [ "$mode" = job ] && label="job, $shards shard(s)"
  log "$name: Completed $secs s after apply (run's own $own s); operator peak $opmu MiB (VmHWM $ophwm);" \
    "shard Pods peak $smu MiB (VmHWM $shwm), container s $srun"
  ROWS+=("$label|$run|$secs|$own|$srun|$opmu ($ophwm)|$smu|$shwm")
  # the repository is not needed any more (the next run writes its own)
  k delete kb -n "$NS" "$name" --wait=true --timeout=120s >/dev/null
  rm -rf "${PV_DIR:?}/$name"
}

C_SECS=()
for run in $(seq "$RUNS"); do
  consumer_run "$run"
  operator_run in-process 1 "$run"
  for s in $SHARDS; do operator_run job "$s" "$run"; done
done

# ---------------------------------------------------------------------------------------------
# 5) report
# ---------------------------------------------------------------------------------------------
C_MEAN=$(printf '%s\n' "${C_SECS[@]}" | awk '{ s += $1 } END { printf "%.3f", s / NR }')
{
  echo
  echo "kafka-backup-operator scale-out: $MIB MiB, $PARTS partitions, $RECORDS records of $RECORD_BYTES B,"
  echo "topic $TOPIC on $BOOT, storage pvc (hostPath on the node), compression none, image $IMAGE"
  echo "payload $PAYLOAD bytes (key+value); MB/s and records/s over the seconds from kubectl apply to"
  echo "status.phase Completed (the consumer: its own timed seconds); x consumer = consumer s / row s"
  echo "(the consumer's mean over $RUNS run(s) in this invocation: $C_MEAN s)"
  echo
  hdr='%-20s | %3s | %8s | %6s | %6s | %9s | %6s | %-13s | %-13s | %-15s | %-13s\n'
  # shellcheck disable=SC2059
  printf "$hdr" configuration run "apply s" "own s" "MB/s" "records/s" "x cons" "shard cont. s" \
    "shard peak" "shard VmHWM" "operator peak"
  for r in "${ROWS[@]}"; do
    IFS='|' read -r label run secs own srun op smu shwm <<<"$r"
    mbs=$(awk -v b="$PAYLOAD" -v s="$secs" 'BEGIN { printf "%.1f", b / 1e6 / s }')
    rps=$(awk -v n="$RECORDS" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    x=$(awk -v c="$C_MEAN" -v s="$secs" 'BEGIN { printf "%.2f", c / s }')
    # shellcheck disable=SC2059
    printf "$hdr" "$label" "$run" "$secs" "$own" "$mbs" "$rps" "$x" "$srun" "$smu" "$shwm" "$op"
  done
  echo
  echo "apply s: kubectl apply to status.phase Completed, measured here; own s: the run's"
  echo "status.history startTime..completionTime (1 s resolution); shard cont. s: each shard"
  echo "container's startedAt..finishedAt. MiB: peak = the Pod's cgroup memory.max_usage_in_bytes"
  echo "(anonymous memory plus the page cache of the segments it wrote), VmHWM = the process's peak"
  echo "RSS (the consumer: GNU time's max RSS); shards listed 0/1/2/...; operator: peak (VmHWM)."
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
} | tee "$WORK/table.txt"
OK=1
