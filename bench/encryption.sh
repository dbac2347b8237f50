#!/usr/bin/env bash
# bench/encryption.sh - the cost of client-side encryption (storage.encryption, issue 16):
# backup and restore throughput to a filesystem repository with and without encryption, on the
# same data in the same run, next to a plain librdkafka consumer and producer.
#
# Starts private noida-db brokers (source on --port, a fresh restore target on --port+1 for
# every repetition; never the shared test broker), fills one topic with MIB MiB of 1 KiB
# records (kbo_data.py gen-load), then REPS times: the plain consumer (kbo_data.py
# bench-consume) and producer (bench-produce), our backup plaintext and encrypted (the order
# alternates between repetitions), our restore of each. Every restored topic is read back and
# compared with the source (per-partition count and SHA-256 of key, value, timestamp, headers).
#
# Usage: bench/encryption.sh [--mib N] [--partitions P] [--reps R] [--port N] [--keep]
#   defaults: 512 MiB, 8 partitions, 3 repetitions, port 19392
# Env:   KBO_BIN=path   use this binary and skip `cargo build`
#        BENCH_IDLE_PCT (5), BENCH_IDLE_SECS (3), BENCH_IDLE_TIMEOUT (300): broker idleness
set -euo pipefail

MIB=512 PARTS=8 REPS=3 PORT=19392 KEEP=0
IDLE_PCT=${BENCH_IDLE_PCT:-5}
IDLE_SECS=${BENCH_IDLE_SECS:-3}
IDLE_TIMEOUT=${BENCH_IDLE_TIMEOUT:-300}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --mib) MIB=${2:?--mib needs a value}; shift 2 ;;
    --partitions) PARTS=${2:?--partitions needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
for v in MIB PARTS REPS PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$(tr 'A-Z' 'a-z' <<<"$v") must be a positive integer, got '${!v}'"
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTENV=$ROOT/testenv
PY=$TESTENV/.venv/bin/python
KBO_DATA=$TESTENV/kbo_data.py
NOIDA=$TESTENV/.venv/lib/python3.11/site-packages/noida_db/noida-db
[ -x "$PY" ] || die "$PY not found (run testenv/install.sh)"
[ -x "$NOIDA" ] || die "$NOIDA not found (run testenv/install.sh)"

if [ -n "${KBO_BIN:-}" ]; then
  BIN=$KBO_BIN
  [ -x "$BIN" ] || die "KBO_BIN=$BIN is not an executable file"
else
  BIN=$ROOT/target/release/kafka-backup-operator
  if [ ! -x "$BIN" ] || [ -n "$(find "$ROOT/src" "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -newer "$BIN" -print -quit 2>/dev/null)" ]; then
    log "building the release binary (cargo build --release --bins)"
    (cd "$ROOT" && cargo build --release --bins) || die "cargo build --release failed"
  fi
fi
case $BIN in *debug*) log "WARNING: $BIN looks like a debug build: its numbers mean nothing" ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbo-bench-enc.XXXXXX")
OK=0 PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"/repo-* "$WORK"/noida-* "$WORK/consume.bin"
  if [ "$KEEP" = 1 ] || [ "$OK" = 0 ]; then echo "bench: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
show_log() { [ -s "$1" ] && { echo "---- tail of $1 ----" >&2; tail -n 30 "$1" >&2; echo "----" >&2; }; return 0; }

# timed NAME CMD...: stdout/stderr -> $WORK/NAME.{out,err}; dies with the log tail on failure
timed() {
  local name=$1; shift
  local rc=0
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" != 0 ]; then
    show_log "$WORK/$name.out"; show_log "$WORK/$name.err"
    die "$name failed (exit $rc): $*"
  fi
}
# json FILE KEY: a top-level value of the last JSON line in FILE
json() { "$PY" -c 'import json,sys; print(json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])[sys.argv[2]])' "$1" "$2"; }
# ours NAME: the seconds of our closing line `...: N records, X in S s (M MB/s, R records/s)`
ours() {
  local re='^(backup|restore) .*: ([0-9]+) records, .* in ([0-9.]+) s \(' line
  line=$(grep -E "$re" "$WORK/$1.out" | tail -n 1) || die "$1: no summary line (see $WORK/$1.out)"
  [[ $line =~ $re ]]
  [ "${BASH_REMATCH[2]}" = "$RECORDS" ] || die "$1: ${BASH_REMATCH[2]} records, the topic holds $RECORDS"
  echo "${BASH_REMATCH[3]}"
}

# ---------------------------------------------------------------------------------------------
# Private brokers
# ---------------------------------------------------------------------------------------------
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && { exec 3>&- 3<&-; return 0; }
    sleep 0.1
  done
  return 1
}
start_noida() { # name port -> pid in NOIDA_PID
  local name=$1 port=$2
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is in use: choose another --port"; fi
  mkdir -p "$WORK/noida-$name"
  "$NOIDA" start --only kafka --host 127.0.0.1 --kafka-port "$port" --data-dir "$WORK/noida-$name" \
    >"$WORK/noida-$name.log" 2>&1 &
  NOIDA_PID=$!
  PIDS+=("$NOIDA_PID")
  wait_port "$port" || { show_log "$WORK/noida-$name.log"; die "noida-db ($name) does not listen on $port"; }
}
stop_noida() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; awk '{print $12 + $13}' <<<"$s"; }
HZ=$(getconf CLK_TCK)
wait_idle() { # label pid...: noida rewrites a snapshot after writes, using a core for a while
  local label=$1; shift
  local prev now quiet=0 t0=$SECONDS p
  prev=0; for p in "$@"; do prev=$((prev + $(cpu_ticks "$p"))); done
  while :; do
    sleep 1
    now=0; for p in "$@"; do now=$((now + $(cpu_ticks "$p" || die "noida-db $p died before $label"))); done
    if [ $(( (now - prev) * 100 )) -lt $(( HZ * IDLE_PCT )) ]; then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$now
    [ "$quiet" -ge "$IDLE_SECS" ] && break
    if [ $((SECONDS - t0)) -ge "$IDLE_TIMEOUT" ]; then log "WARNING: brokers still busy after ${IDLE_TIMEOUT}s ($label)"; return 0; fi
  done
}

read -r LOAD1 _ < /proc/loadavg
log "load average at start: $LOAD1 on $(nproc) cores; $MIB MiB, $PARTS partitions, $REPS repetitions"
start_noida src "$PORT"
SRC_PID=$NOIDA_PID SRC=127.0.0.1:$PORT DST=127.0.0.1:$((PORT + 1))
TOPIC=bench-enc
log "gen-load: $MIB MiB into $TOPIC"
timed genload "$PY" "$KBO_DATA" gen-load --bootstrap "$SRC" --topic "$TOPIC" \
  --partitions "$PARTS" --mib "$MIB" --record-bytes 1024
RECORDS=$(json "$WORK/genload.out" records)

# The key-encryption key: a Secret with one 32-byte key (docs/security.md)
cat >"$WORK/secret.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata: {name: bench-keys}
data:
  k1: $(head -c 32 /dev/urandom | base64 -w0)
YAML
backup_yaml() { # name repo encrypted(0|1)
  local enc=""
  [ "$3" = 1 ] && enc=", encryption: {keySecret: {name: bench-keys}, activeKeyId: k1}"
  cat <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata: {name: $1}
spec:
  kafkaCluster: {bootstrapServers: ["$SRC"]}
  topics: ["$TOPIC"]
  stopAtCurrentOffsets: true
  compression: none
  storage: {storageType: filesystem, filesystem: {path: "$2"}$enc}
YAML
}
restore_yaml() { # name backup target-topic
  cat <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata: {name: $1}
spec:
  backupRef: {name: $2}
  kafkaCluster: {bootstrapServers: ["$DST"]}
  createTopics: true
  topicMapping: {"$TOPIC": "$3"}
YAML
}

# Per-partition count and content digest of topics on a broker, as JSON {topic: [[n, sha]...]}
cat >"$WORK/digest.py" <<'PY'
import hashlib, json, struct, sys
sys.path.insert(0, sys.argv[1])
import kbo_data
boot, topics = sys.argv[2], sys.argv[3:]
out = {}
for t in topics:
    h, n = {}, {}
    _, batches = kbo_data.consume_to_end(boot, [t], "read_committed", timeout=3600)
    pk = struct.Struct("<qii").pack
    for msgs in batches:
        for m in msgs:
            k, v, p = m.key(), m.value(), m.partition()
            d = h.setdefault(p, hashlib.sha256())
            d.update(pk(m.timestamp()[1], -1 if k is None else len(k), -1 if v is None else len(v)))
            if k: d.update(k)
            if v: d.update(v)
            for name, hv in m.headers() or ():
                d.update(repr((name, hv)).encode())
            n[p] = n.get(p, 0) + 1
    out[t] = [[n[p], h[p].hexdigest()] for p in sorted(n)]
print(json.dumps(out))
PY
wait_idle "source digest" "$SRC_PID"
timed digest-src "$PY" "$WORK/digest.py" "$TESTENV" "$SRC" "$TOPIC"
SRC_DIGEST=$("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$WORK/digest-src.out" "$TOPIC")

ROWS=()
for r in $(seq 1 "$REPS"); do
  log "repetition $r of $REPS"
  start_noida "dst$r" "$((PORT + 1))"
  DST_PID=$NOIDA_PID
  wait_idle "plain consumer" "$SRC_PID" "$DST_PID"
  timed "consume$r" "$PY" "$KBO_DATA" bench-consume --bootstrap "$SRC" --topics "$TOPIC" --out "$WORK/consume.bin"
  PAYLOAD=$(json "$WORK/consume$r.out" bytes)
  C=$(json "$WORK/consume$r.out" seconds)
  timed "produce$r" "$PY" "$KBO_DATA" bench-produce --bootstrap "$DST" --in "$WORK/consume.bin" --topic-suffix=-p
  rm -f "$WORK/consume.bin"
  P=$(json "$WORK/produce$r.out" seconds)
  # odd repetitions back up plaintext first, even ones encrypted first
  if [ $((r % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
  declare -A B=() R=()
  for e in $order; do
    backup_yaml "b$e-$r" "$WORK/repo-$e-$r" "$e" >"$WORK/backup-$e-$r.yaml"
    wait_idle "backup enc=$e" "$SRC_PID" "$DST_PID"
    timed "backup-$e-$r" "$BIN" run --no-progress -f "$WORK/backup-$e-$r.yaml" -f "$WORK/secret.yaml"
    B[$e]=$(ours "backup-$e-$r")
  done
  for e in $order; do
    restore_yaml "r$e-$r" "b$e-$r" "$TOPIC-r$e" >"$WORK/restore-$e-$r.yaml"
    wait_idle "restore enc=$e" "$SRC_PID" "$DST_PID"
    timed "restore-$e-$r" "$BIN" run --no-progress -f "$WORK/restore-$e-$r.yaml" -f "$WORK/backup-$e-$r.yaml" -f "$WORK/secret.yaml"
    R[$e]=$(ours "restore-$e-$r")
  done
  # the encrypted repository is encrypted: a key document and sealed segments
  [ -n "$(ls "$WORK/repo-1-$r/b1-$r/keys/" 2>/dev/null)" ] || die "repetition $r: the encrypted backup wrote no key document"
  wait_idle "verification" "$DST_PID"
  timed "digest$r" "$PY" "$WORK/digest.py" "$TESTENV" "$DST" "$TOPIC-p" "$TOPIC-r0" "$TOPIC-r1"
  "$PY" - "$WORK/digest$r.out" "$SRC_DIGEST" <<'PY' || die "repetition $r: a copy differs from the source (see $WORK/digest$r.out)"
import json, sys
got, want = json.load(open(sys.argv[1])), json.loads(sys.argv[2])
bad = [t for t, d in got.items() if d != want]
sys.exit(f"differs: {bad}" if bad else 0)
PY
  stop_noida "$DST_PID"
  rm -rf "$WORK"/repo-*-"$r" "$WORK/noida-dst$r"
  ROWS+=("$r $C ${B[0]} ${B[1]} $P ${R[0]} ${R[1]}")
  log "repetition $r: consumer ${C}s, backup ${B[0]}s / encrypted ${B[1]}s, producer ${P}s, restore ${R[0]}s / encrypted ${R[1]}s"
done

# ---------------------------------------------------------------------------------------------
# Report: MB/s = payload (key + value bytes) / the tool's own seconds; ratios per repetition,
# then their median
# ---------------------------------------------------------------------------------------------
{
  echo
  echo "kafka-backup-operator encryption cost: $MIB MiB, $PARTS partitions, $RECORDS records of 1 KiB, filesystem,"
  echo "compression none, AES-256-GCM (storage.encryption keySecret); payload $PAYLOAD bytes; binary $BIN"
  echo
  printf '%-3s | %14s | %14s | %14s | %14s | %14s | %14s\n' rep "consumer MB/s" "backup MB/s" "backup enc" "producer MB/s" "restore MB/s" "restore enc"
  for row in "${ROWS[@]}"; do
    read -r r c b0 b1 p r0 r1 <<<"$row"
    awk -v r="$r" -v pl="$PAYLOAD" -v c="$c" -v b0="$b0" -v b1="$b1" -v p="$p" -v r0="$r0" -v r1="$r1" \
      'BEGIN { f = pl / 1e6; printf "%-3s | %14.1f | %14.1f | %14.1f | %14.1f | %14.1f | %14.1f\n", r, f/c, f/b0, f/b1, f/p, f/r0, f/r1 }'
  done
  echo
  printf '%s\n' "${ROWS[@]}" | awk '
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    { n++; be[n] = $3 / $4; re[n] = $6 / $7; bp[n] = $2 / $3; bx[n] = $2 / $4; rp[n] = $5 / $6; rx[n] = $5 / $7 }
    END {
      printf "median of %d repetitions (throughput ratios; 1.00 = as fast):\n", n
      printf "  backup:  encrypted / plaintext %.3f; plaintext / librdkafka consumer %.2f; encrypted / librdkafka consumer %.2f\n", median(be, n), median(bp, n), median(bx, n)
      printf "  restore: encrypted / plaintext %.3f; plaintext / librdkafka producer %.2f; encrypted / librdkafka producer %.2f\n", median(re, n), median(rp, n), median(rx, n)
    }'
  echo "verification: every copy (plain producer, both restores) has the source's per-partition count and digest"
  echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
}
OK=1
