#!/usr/bin/env bash
# bench/run.sh - throughput and memory benchmark of kafka-backup-operator against the test peers.
#
# Compares our backup with a plain librdkafka consumer and our restore with a plain librdkafka
# producer (testenv/kbo_data.py bench-consume / bench-produce) on the same generated topic,
# then checks the restored data and prints a table. See bench/README.md.
#
# Usage: bench/run.sh [--mib N] [--partitions P] [--storage fs|s3|s3s|azure|gcs]
#                     [--compression none|zstd] [--verify full|counts] [--port N] [--keep]
#        s3 is testenv's moto; s3s is a private s3s-fs 0.14.1 (files in the work dir, on
#        --port+2 or a free port; installed into testenv/.bin by `cargo install` on first use);
#        azure and gcs go to testenv's Azurite and fake-gcs-server. A storage other than fs
#        also backs up and restores to the filesystem in the same run, for the ratio.
#        --port N: private noida-db brokers instead of restarting the shared peers: the source
#        on N, the plain producer's and our restore's targets on N+1 (a fresh broker each, so
#        the brokers hold at most one copy each; data dirs in the work dir; killed by PID).
# Env:   KBO_BIN=path   use this binary and skip `cargo build` (e.g. target/debug/...)
#        BENCH_IDLE_PCT (default 5), BENCH_IDLE_SECS (3), BENCH_IDLE_TIMEOUT (300):
#        the broker counts as idle after IDLE_SECS consecutive seconds below IDLE_PCT % of a core.
set -euo pipefail

MIB=1024 PARTS=8 STORAGE=fs COMPRESSION=none VERIFY=full KEEP=0 PORT=""
RECORD_BYTES=1024
IDLE_PCT=${BENCH_IDLE_PCT:-5}
IDLE_SECS=${BENCH_IDLE_SECS:-3}
IDLE_TIMEOUT=${BENCH_IDLE_TIMEOUT:-300}
RSS_GOAL_MIB=256

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --mib) MIB=${2:?--mib needs a value}; shift 2 ;;
    --partitions) PARTS=${2:?--partitions needs a value}; shift 2 ;;
    --storage) STORAGE=${2:?--storage needs a value}; shift 2 ;;
    --compression) COMPRESSION=${2:?--compression needs a value}; shift 2 ;;
    --verify) VERIFY=${2:?--verify needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
[[ $MIB =~ ^[1-9][0-9]*$ ]] || die "--mib must be a positive integer, got '$MIB'"
[[ $PARTS =~ ^[1-9][0-9]*$ ]] || die "--partitions must be a positive integer, got '$PARTS'"
case $STORAGE in fs|s3|s3s|azure|gcs) ;; *) die "--storage must be fs, s3, s3s, azure or gcs, got '$STORAGE'" ;; esac
case $COMPRESSION in none|zstd) ;; *) die "--compression must be none or zstd, got '$COMPRESSION'" ;; esac
case $VERIFY in full|counts) ;; *) die "--verify must be full or counts, got '$VERIFY'" ;; esac
[ -z "$PORT" ] || [[ $PORT =~ ^[1-9][0-9]*$ ]] || die "--port must be a positive integer, got '$PORT'"
[ -z "$PORT" ] || [ "$STORAGE" = fs ] || [ "$STORAGE" = s3s ] || die "--port works with --storage fs or s3s only"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTENV=$ROOT/testenv
KBO_DATA=$TESTENV/kbo_data.py
[ -n "$PORT" ] || [ -x "$TESTENV/start.sh" ] || die "$TESTENV/start.sh not found"
[ -f "$KBO_DATA" ] || die "$KBO_DATA not found"

# ---------------------------------------------------------------------------------------------
# Tools: /usr/bin/time (GNU, for peak RSS) and our binary
# ---------------------------------------------------------------------------------------------
if ! command -v /usr/bin/time >/dev/null 2>&1; then
  log "/usr/bin/time missing: installing the Debian package 'time'"
  command -v apt-get >/dev/null 2>&1 || die "/usr/bin/time is missing and apt-get is not available"
  apt-get install -y time >/dev/null || die "apt-get install -y time failed"
fi
/usr/bin/time -f %M -o /dev/null true 2>/dev/null || die "/usr/bin/time is not GNU time (need -f/-o)"

if [ -n "${KBO_BIN:-}" ]; then
  BIN=$KBO_BIN
  [ -x "$BIN" ] || die "KBO_BIN=$BIN is not an executable file"
  log "using KBO_BIN=$BIN (no cargo build)"
else
  BIN=$ROOT/target/release/kafka-backup-operator
  if [ ! -x "$BIN" ] || [ -n "$(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$BIN" -print -quit 2>/dev/null)" ]; then
    log "building the release binary (cargo build --release --bins)"
    (cd "$ROOT" && cargo build --release --bins) || die "cargo build --release failed"
  fi
  [ -x "$BIN" ] || die "$BIN missing after the build"
fi
case $BIN in *debug*) log "WARNING: $BIN looks like a debug build: its numbers mean nothing" ;; esac

# ---------------------------------------------------------------------------------------------
# Work dir
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbo-bench.XXXXXX")
OK=0 PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK/consume.bin" "$WORK/repo" "$WORK"/noida-* "$WORK/s3s"
  if [ "$KEEP" = 1 ] || [ "$OK" = 0 ]; then
    echo "bench: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

show_log() { # file: print its tail on stderr
  [ -s "$1" ] && { echo "---- tail of $1 ----" >&2; tail -n 30 "$1" >&2; echo "----" >&2; }
  return 0
}

# timed NAME CMD...: runs CMD under /usr/bin/time; stdout -> $WORK/NAME.out, stderr ->
# $WORK/NAME.err, "peakKiB wallSecs" -> $WORK/NAME.time. Dies with the log tail on failure.
timed() {
  local name=$1; shift
  local rc=0
  /usr/bin/time -f '%M %e' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" != 0 ]; then
    show_log "$WORK/$name.out"; show_log "$WORK/$name.err"
    if grep -q SignatureDoesNotMatch "$WORK/$name.err"; then
      echo "bench: hint: testenv's moto checks signatures and computes them over the raw query" \
        "string; a ListObjectsV2 sent with an unescaped '/' in prefix=/delimiter= (as opendal" \
        "sends it) is rejected although correctly signed. See bench/README.md." >&2
    fi
    die "$name failed (exit $rc): $*"
  fi
}
peak_mib() { awk '{printf "%.1f", $1 / 1024}' "$WORK/$1.time"; }
wall_s() { awk '{print $2}' "$WORK/$1.time"; }
# json FILE KEY: a top-level value of the last JSON line in FILE
json() { "$PY" -c 'import json,sys; print(json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])[sys.argv[2]])' "$1" "$2"; }

# ---------------------------------------------------------------------------------------------
# Broker idleness (noida rewrites a snapshot after writes, using a full core for a while)
# ---------------------------------------------------------------------------------------------
cpu_ticks() { # pid -> utime+stime in clock ticks (fields 14+15; comm may contain spaces)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  awk '{print $12 + $13}' <<<"$s"
}
HZ=$(getconf CLK_TCK)
NOIDA_LOG=$TESTENV/run/noida.log DST_PID=""
broker_ticks() { # the source broker's ticks plus the private target's (--port), if running
  local a b=0
  a=$(cpu_ticks "$NOIDA_PID") || return 1
  if [ -n "$DST_PID" ]; then b=$(cpu_ticks "$DST_PID") || return 1; fi
  echo $((a + b))
}
wait_idle() { # label
  local prev now quiet=0 t0=$SECONDS busy=0
  prev=$(broker_ticks) || { show_log "$NOIDA_LOG"; die "noida-db (pid $NOIDA_PID) is not running (before $1)"; }
  while :; do
    sleep 1
    now=$(broker_ticks) || { show_log "$NOIDA_LOG"; die "noida-db (pid $NOIDA_PID) died (before $1)"; }
    if [ $(( (now - prev) * 100 )) -lt $(( HZ * IDLE_PCT )) ]; then
      quiet=$((quiet + 1))
    else
      quiet=0; busy=$((busy + 1))
    fi
    prev=$now
    [ "$quiet" -ge "$IDLE_SECS" ] && break
    if [ $((SECONDS - t0)) -ge "$IDLE_TIMEOUT" ]; then
      log "WARNING: broker still busy after ${IDLE_TIMEOUT}s ($1); timing anyway"
      return 0
    fi
  done
  log "broker idle before $1 (waited $((SECONDS - t0)) s, $busy busy s)"
}
noida_rss_mib() { awk '/^VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$NOIDA_PID/status" 2>/dev/null || echo "?"; }

# ---------------------------------------------------------------------------------------------
# 1) clean peers
# ---------------------------------------------------------------------------------------------
read -r LOAD1 _ < /proc/loadavg
log "load average at start: $LOAD1 on $(nproc) cores"
if awk -v l="$LOAD1" 'BEGIN { exit !(l > 0.5) }'; then
  log "WARNING: the machine is not idle (load $LOAD1): other processes skew the numbers"
fi
# start.sh can report success while the new noida-db failed to bind (the old one, or another
# session's, still holding the port): check that the recorded pid is alive and serving, retry.
start_peers() {
  local attempt
  for attempt in 1 2 3; do
    log "restarting the test peers (testenv/start.sh, attempt $attempt)"
    "$TESTENV/start.sh" >"$WORK/start.log" 2>&1 || { show_log "$WORK/start.log"; die "testenv/start.sh failed"; }
    sleep 1
    NOIDA_PID=$(cat "$TESTENV/run/noida.pid")
    if kill -0 "$NOIDA_PID" 2>/dev/null && ! grep -q '^error' "$TESTENV/run/noida.log"; then
      return 0
    fi
    log "WARNING: noida-db (pid $NOIDA_PID) did not stay up: $(grep -m1 '^error' "$TESTENV/run/noida.log" || echo 'exited')"
    sleep 10
  done
  show_log "$TESTENV/run/noida.log"
  die "noida-db does not start (is another session using port ${KBO_KAFKA_PORT:-19092}?)"
}
# --port: private brokers (start_noida NAME PORT -> NEW_PID, the new broker's pid)
NOIDA_BIN=$TESTENV/.venv/lib/python3.11/site-packages/noida_db/noida-db
start_noida() {
  local name=$1 port=$2 pid
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is in use: choose another --port"; fi
  mkdir -p "$WORK/noida-$name"
  "$NOIDA_BIN" start --only kafka --host 127.0.0.1 --kafka-port "$port" --data-dir "$WORK/noida-$name" \
    >"$WORK/noida-$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  NEW_PID=$pid
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  show_log "$WORK/noida-$name.log"; die "noida-db ($name) does not listen on $port"
}
stop_noida() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
if [ -n "$PORT" ]; then
  [ -x "$NOIDA_BIN" ] || die "$NOIDA_BIN not found (run testenv/install.sh)"
  PY=$TESTENV/.venv/bin/python
  start_noida src "$PORT"; NOIDA_PID=$NEW_PID
  NOIDA_LOG=$WORK/noida-src.log
  BOOT=127.0.0.1:$PORT DST_BOOT=127.0.0.1:$((PORT + 1))
  log "private noida-db brokers: source $BOOT (pid $NOIDA_PID), targets on $DST_BOOT"
else
  start_peers
  # shellcheck disable=SC1091
  source "$TESTENV/env"
  PY=${KBO_PYTHON:?testenv/env does not set KBO_PYTHON}
  BOOT=$KBO_KAFKA_BOOTSTRAP DST_BOOT=$KBO_KAFKA_BOOTSTRAP
fi
"$PY" "$KBO_DATA" gen-load --help >/dev/null 2>&1 || die "$KBO_DATA does not run with $PY"

SRC=bench-load BASE=bench-load-baseline DST=bench-load-restored

# --storage s3s: a private s3s-fs (bench/s3s.sh), bucket "bench", objects under $WORK/s3s
if [ "$STORAGE" = s3s ]; then
  # shellcheck source=bench/s3s.sh
  source "$ROOT/bench/s3s.sh"
  S3S_PORT=${PORT:+$((PORT + 2))}
  S3S_PORT=${S3S_PORT:-$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  s3s_start "$WORK/s3s" "$S3S_PORT" bench
  KBO_S3_BUCKET=bench
fi

# ---------------------------------------------------------------------------------------------
# 2) load
# ---------------------------------------------------------------------------------------------
wait_idle "gen-load"
log "gen-load: $MIB MiB into $SRC ($PARTS partitions, $RECORD_BYTES-byte records)"
timed genload "$PY" "$KBO_DATA" gen-load --bootstrap "$BOOT" --topic "$SRC" \
  --partitions "$PARTS" --mib "$MIB" --record-bytes "$RECORD_BYTES"
GEN_RECORDS=$(json "$WORK/genload.out" records)
log "gen-load: $GEN_RECORDS records, $(json "$WORK/genload.out" mb_per_s) MB/s"

# ---------------------------------------------------------------------------------------------
# 3) baseline: plain consumer, plain producer
# ---------------------------------------------------------------------------------------------
wait_idle "plain consumer"
log "plain consumer: $SRC -> file"
timed consume "$PY" "$KBO_DATA" bench-consume --bootstrap "$BOOT" --topics "$SRC" --out "$WORK/consume.bin"
C_RECORDS=$(json "$WORK/consume.out" records)
PAYLOAD=$(json "$WORK/consume.out" bytes)   # key+value bytes of the topic, used for every MB/s
[ "$C_RECORDS" = "$GEN_RECORDS" ] || die "plain consumer read $C_RECORDS records, gen-load wrote $GEN_RECORDS"

if [ -n "$PORT" ]; then start_noida dst1 $((PORT + 1)); DST_PID=$NEW_PID; fi
wait_idle "plain producer"
log "plain producer: file -> $BASE"
timed produce "$PY" "$KBO_DATA" bench-produce --bootstrap "$DST_BOOT" --in "$WORK/consume.bin" --topic-suffix=-baseline
if [ -n "$PORT" ]; then  # a fresh target for our restore: noida's memory only grows
  stop_noida "$DST_PID"; rm -rf "$WORK/noida-dst1"; DST_PID=""
fi
rm -f "$WORK/consume.bin"
P_RECORDS=$(json "$WORK/produce.out" records)
[ "$P_RECORDS" = "$GEN_RECORDS" ] || die "plain producer wrote $P_RECORDS records, expected $GEN_RECORDS"

# ---------------------------------------------------------------------------------------------
# 4) our backup, 5) our restore
# ---------------------------------------------------------------------------------------------
# storage_yaml KIND: sets STORAGE_YAML (the spec's storage block) and SECRET_YAML
storage_yaml() {
  SECRET_YAML=""
  case $1 in
    fs) STORAGE_YAML="  storage: {storageType: filesystem, filesystem: {path: \"$WORK/repo\"}}" ;;
    s3|s3s)
      STORAGE_YAML="  storage:
    storageType: s3
    s3:
      bucket: \"$KBO_S3_BUCKET\"
      region: \"$KBO_S3_REGION\"
      endpoint: \"$KBO_S3_ENDPOINT\"
      prefix: \"bench-$(date +%s)\"
      pathStyle: true
      allowHttp: true
      credentialsSecret: {name: bench-s3}"
      SECRET_YAML="---
apiVersion: v1
kind: Secret
metadata: {name: bench-s3}
stringData:
  AWS_ACCESS_KEY_ID: \"$KBO_S3_ACCESS_KEY\"
  AWS_SECRET_ACCESS_KEY: \"$KBO_S3_SECRET_KEY\"" ;;
    azure)
      STORAGE_YAML="  storage:
    storageType: azure
    azure:
      container: \"${KBO_AZURE_CONTAINER:?testenv/env has no Azurite}\"
      accountName: \"$KBO_AZURE_ACCOUNT\"
      endpoint: \"$KBO_AZURE_ENDPOINT\"
      prefix: \"bench-$(date +%s)\"
      credentialsSecret: {name: bench-azure}"
      SECRET_YAML="---
apiVersion: v1
kind: Secret
metadata: {name: bench-azure}
stringData:
  AZURE_STORAGE_KEY: \"$KBO_AZURE_KEY\"" ;;
    gcs)
      STORAGE_YAML="  storage:
    storageType: gcs
    gcs:
      bucket: \"${KBO_GCS_BUCKET:?testenv/env has no fake-gcs-server}\"
      endpoint: \"$KBO_GCS_ENDPOINT\"
      prefix: \"bench-$(date +%s)\"
      allowHttp: true
      allowAnonymous: true"
      # fake-gcs-server lacks the XML API multipart upload opendal uses for an object written
      # in more than one 8 MiB chunk: segments stay under it (the fs ratio run uses the same)
      SEGMENT_YAML="  segmentMaxBytes: 4194304" ;;
  esac
}
storage_yaml "$STORAGE"
cat >"$WORK/backup.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata: {name: bench}
spec:
  kafkaCluster: {bootstrapServers: ["$BOOT"]}
  topics: ["$SRC"]
  stopAtCurrentOffsets: true
  compression: $COMPRESSION
${SEGMENT_YAML:-}
$STORAGE_YAML
$SECRET_YAML
YAML
cat >"$WORK/restore.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata: {name: bench-restore}
spec:
  backupRef: {name: bench}
  kafkaCluster: {bootstrapServers: ["$DST_BOOT"]}
  createTopics: true
  topicMapping: {"$SRC": "$DST"}
YAML

# parse_summary NAME: sets S_RECORDS S_SECS S_MBS S_RPS from our closing line
# `...: N records, X in S s (M MB/s, R records/s)`
parse_summary() {
  local line re='^(backup|restore) .*: ([0-9]+) records, .* in ([0-9.]+) s \(([0-9.]+) MB/s, ([0-9]+) records/s\)$'
  line=$(grep -E "$re" "$WORK/$1.out" | tail -n 1) || true
  if [ -z "$line" ]; then
    show_log "$WORK/$1.out"; show_log "$WORK/$1.err"
    die "$1: no summary line found in the output of $BIN"
  fi
  [[ $line =~ $re ]]
  S_RECORDS=${BASH_REMATCH[2]} S_SECS=${BASH_REMATCH[3]} S_MBS=${BASH_REMATCH[4]} S_RPS=${BASH_REMATCH[5]}
  log "$1: $line"
}

wait_idle "our backup"
log "our backup: $SRC -> $STORAGE (compression $COMPRESSION)"
timed backup "$BIN" run --no-progress -f "$WORK/backup.yaml"
parse_summary backup
B_RECORDS=$S_RECORDS B_SECS=$S_SECS B_TOOL_MBS=$S_MBS B_RPS=$S_RPS
[ "$B_RECORDS" = "$GEN_RECORDS" ] || die "our backup reports $B_RECORDS records, the topic holds $GEN_RECORDS"
REPO_BYTES=""
if [ "$STORAGE" = fs ]; then
  REPO_BYTES=$(du -sb "$WORK/repo" | awk '{print $1}')
elif [ "$STORAGE" = s3s ]; then
  REPO_BYTES=$(du -sb "$WORK/s3s/bench" | awk '{print $1}')
fi

if [ -n "$PORT" ]; then start_noida dst2 $((PORT + 1)); DST_PID=$NEW_PID; fi
wait_idle "our restore"
log "our restore: $STORAGE -> $DST"
timed restore "$BIN" run --no-progress -f "$WORK/restore.yaml" -f "$WORK/backup.yaml"
parse_summary restore
R_RECORDS=$S_RECORDS R_SECS=$S_SECS R_TOOL_MBS=$S_MBS R_RPS=$S_RPS
[ "$R_RECORDS" = "$GEN_RECORDS" ] || die "our restore reports $R_RECORDS records, the backup holds $GEN_RECORDS"
rm -rf "$WORK/repo" "$WORK/s3s/bench"/*

# 5b) the same backup and restore to the filesystem, for the ratio (another storage only)
FS_RATIO=""
if [ "$STORAGE" != fs ]; then
  storage_yaml fs
  sed -e '/^  storage:/,$d' -e 's/{name: bench}/{name: bench-fs}/' "$WORK/backup.yaml" >"$WORK/backup-fs.yaml"
  echo "$STORAGE_YAML" >>"$WORK/backup-fs.yaml"
  sed -e 's/{name: bench}/{name: bench-fs}/' -e 's/{name: bench-restore}/{name: bench-restore-fs}/' \
    -e "s/\"$DST\"}/\"$DST-fs\"}/" "$WORK/restore.yaml" >"$WORK/restore-fs.yaml"
  wait_idle "our filesystem backup"
  timed backup_fs "$BIN" run --no-progress -f "$WORK/backup-fs.yaml"
  parse_summary backup_fs
  FS_B_SECS=$S_SECS
  wait_idle "our filesystem restore"
  timed restore_fs "$BIN" run --no-progress -f "$WORK/restore-fs.yaml" -f "$WORK/backup-fs.yaml"
  parse_summary restore_fs
  FS_R_SECS=$S_SECS
  [ "$S_RECORDS" = "$GEN_RECORDS" ] || die "the filesystem restore reports $S_RECORDS records, expected $GEN_RECORDS"
  rm -rf "$WORK/repo"
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
  FS_RATIO="$STORAGE vs filesystem in this run (throughput ratio = fs seconds / $STORAGE seconds): backup $B_SECS s vs $FS_B_SECS s ($(ratio "$FS_B_SECS" "$B_SECS")), restore $R_SECS s vs $FS_R_SECS s ($(ratio "$FS_R_SECS" "$R_SECS"))"
fi

# ---------------------------------------------------------------------------------------------
# 6) verify: per-partition record counts (watermarks) and, with --verify full, a digest of
#    every partition's (timestamp, key, value, headers) sequence, source vs both copies
# ---------------------------------------------------------------------------------------------
wait_idle "verification"
log "verify ($VERIFY): $SRC vs $BASE and $DST"
VERIFY_RC=0
# topics as TOPIC@BOOTSTRAP; with --port the plain producer's copy is gone (its broker was
# stopped after its count was checked) and the restored copy is on the target broker
if [ -n "$PORT" ]; then COPIES=("$DST@$DST_BOOT"); else COPIES=("$BASE@$BOOT" "$DST@$BOOT"); fi
"$PY" - "$TESTENV" "$VERIFY" "$SRC@$BOOT" "${COPIES[@]}" >"$WORK/verify.out" 2>"$WORK/verify.err" <<'PY' || VERIFY_RC=$?
import hashlib, struct, sys
sys.path.insert(0, sys.argv[1])
import kbo_data
from confluent_kafka import Consumer, TopicPartition

mode = sys.argv[2]
boots = dict(a.rsplit("@", 1) for a in sys.argv[3:])
src, copies = sys.argv[3].rsplit("@", 1)[0], [a.rsplit("@", 1)[0] for a in sys.argv[4:]]
cons = {b: Consumer(kbo_data.consumer_conf(b, "read_committed")) for b in set(boots.values())}
parts = {}
for t, b in boots.items():
    parts.update(kbo_data.topic_partitions(cons[b], [t]))

def counts(t):
    out = []
    for p in range(parts[t]):
        lo, hi = cons[boots[t]].get_watermark_offsets(TopicPartition(t, p), timeout=10, cached=False)
        out.append(hi - lo)
    return out

def digests(t):
    h = {p: hashlib.sha256() for p in range(parts[t])}
    n = {p: 0 for p in range(parts[t])}
    _, batches = kbo_data.consume_to_end(boots[t], [t], "read_committed", timeout=3600)
    pk = struct.Struct("<qii").pack
    for msgs in batches:
        for m in msgs:
            k, v, hd = m.key(), m.value(), m.headers()
            d = h[m.partition()]
            d.update(pk(m.timestamp()[1], -1 if k is None else len(k), -1 if v is None else len(v)))
            if k: d.update(k)
            if v: d.update(v)
            for name, hv in hd or ():
                d.update(repr((name, hv)).encode())
            n[m.partition()] += 1
    return [n[p] for p in range(parts[t])], [h[p].hexdigest()[:16] for p in range(parts[t])]

ok = True
want = counts(src)
print(f"{src}: {sum(want)} records, per partition {want}")
for t in copies:
    if parts[t] != parts[src]:
        print(f"MISMATCH {t}: {parts[t]} partitions, source has {parts[src]}"); ok = False; continue
    got = counts(t)
    if got != want:
        print(f"MISMATCH {t}: per-partition counts {got}"); ok = False
    else:
        print(f"{t}: counts match")
for c in cons.values():
    c.close()
if mode == "full" and ok:
    sn, sd = digests(src)
    if sn != want:
        print(f"MISMATCH {src}: read {sn} records per partition, watermarks say {want}"); ok = False
    for t in copies:
        tn, td = digests(t)
        bad = [p for p in range(parts[src]) if (tn[p], td[p]) != (sn[p], sd[p])]
        if bad:
            print(f"MISMATCH {t}: content differs in partitions {bad}"); ok = False
        else:
            print(f"{t}: content digests match")
print("VERIFY " + ("OK" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
cat "$WORK/verify.out" >&2
if [ "$VERIFY_RC" != 0 ]; then
  show_log "$WORK/verify.err"
  VERIFY_RESULT="FAILED"
else
  VERIFY_RESULT="OK ($VERIFY)"
fi

# ---------------------------------------------------------------------------------------------
# 7) report
# ---------------------------------------------------------------------------------------------
C_SECS=$(json "$WORK/consume.out" seconds)
P_SECS=$(json "$WORK/produce.out" seconds)
C_MBS=$(json "$WORK/consume.out" mb_per_s) C_RPS=$(json "$WORK/consume.out" records_per_s)
P_MBS=$(json "$WORK/produce.out" mb_per_s) P_RPS=$(json "$WORK/produce.out" records_per_s)
# Our MB/s over the same payload bytes as the baseline (our own summary counts record-batch bytes)
B_MBS=$(awk -v b="$PAYLOAD" -v s="$B_SECS" 'BEGIN { printf "%.2f", b / 1e6 / (s > 0 ? s : 1e-9) }')
R_MBS=$(awk -v b="$PAYLOAD" -v s="$R_SECS" 'BEGIN { printf "%.2f", b / 1e6 / (s > 0 ? s : 1e-9) }')
C_RSS=$(peak_mib consume) P_RSS=$(peak_mib produce) B_RSS=$(peak_mib backup) R_RSS=$(peak_mib restore)

goal() { # description, awk condition over a b
  if awk -v a="$2" -v b="$3" "BEGIN { exit !($4) }"; then echo "  [MET]     $1"; else echo "  [NOT MET] $1"; fi
}

{
  echo
  echo "kafka-backup-operator benchmark: $MIB MiB, $PARTS partitions, $GEN_RECORDS records of $RECORD_BYTES B,"
  echo "storage $STORAGE, compression $COMPRESSION, binary $BIN"
  echo "payload $PAYLOAD bytes (key+value); MB/s = payload / the tool's own timed seconds (1 MB = 10^6 B)"
  echo
  printf '%-16s | %9s | %11s | %12s | %8s | %8s\n' tool "MB/s" "records/s" "peak RSS MiB" "secs" "wall s"
  printf '%-16s-+-%9s-+-%11s-+-%12s-+-%8s-+-%8s\n' ---------------- --------- ----------- ------------ -------- --------
  printf '%-16s | %9s | %11s | %12s | %8s | %8s\n' "plain consumer" "$C_MBS" "$C_RPS" "$C_RSS" "$C_SECS" "$(wall_s consume)"
  printf '%-16s | %9s | %11s | %12s | %8s | %8s\n' "our backup" "$B_MBS" "$B_RPS" "$B_RSS" "$B_SECS" "$(wall_s backup)"
  printf '%-16s | %9s | %11s | %12s | %8s | %8s\n' "plain producer" "$P_MBS" "$P_RPS" "$P_RSS" "$P_SECS" "$(wall_s produce)"
  printf '%-16s | %9s | %11s | %12s | %8s | %8s\n' "our restore" "$R_MBS" "$R_RPS" "$R_RSS" "$R_SECS" "$(wall_s restore)"
  echo
  echo "our own summary lines (MB/s over record-batch bytes): backup $B_TOOL_MBS MB/s, restore $R_TOOL_MBS MB/s"
  [ -n "$REPO_BYTES" ] && echo "backup repository size: $REPO_BYTES bytes ($(awk -v r="$REPO_BYTES" -v p="$PAYLOAD" 'BEGIN { printf "%.3f", r / p }') x payload)"
  echo "noida-db RSS at the end: $(noida_rss_mib) MiB; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -n "$FS_RATIO" ] && echo "$FS_RATIO"
  echo "verification: $VERIFY_RESULT"
  echo
  echo "goals:"
  goal "backup MB/s ($B_MBS) >= plain consumer MB/s ($C_MBS)" "$B_MBS" "$C_MBS" "a >= b"
  goal "restore MB/s ($R_MBS) >= plain producer MB/s ($P_MBS)" "$R_MBS" "$P_MBS" "a >= b"
  goal "backup peak RSS ($B_RSS MiB) < $RSS_GOAL_MIB MiB" "$B_RSS" "$RSS_GOAL_MIB" "a < b"
  goal "restore peak RSS ($R_RSS MiB) < $RSS_GOAL_MIB MiB" "$R_RSS" "$RSS_GOAL_MIB" "a < b"
  echo "(memory figures against noida-db include its oversized Fetch responses: see bench/README.md)"
}

[ "$VERIFY_RC" = 0 ] || die "verification failed: the restored data differs (see above)"
OK=1
