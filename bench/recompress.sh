#!/usr/bin/env bash
# bench/recompress.sh - what a backup of producer-compressed batches costs to keep (issue 19,
# item 1): stored bytes / payload and throughput of `compression: zstd` (batches of a weaker
# producer codec re-compressed with zstd) and `compression: keep` (stored as fetched), next to
# a plain librdkafka consumer and producer, on the same data in the same run.
#
# Starts private noida-db brokers (source on --port, a fresh restore target on --port+1 for
# every repetition; never the shared test broker), fills one topic with MIB MiB of
# compressible 1 KiB records compressed by the producer with --codec (bench/gen_compressible.py),
# then REPS times: the plain consumer (kbo_data.py bench-consume) and producer (bench-produce,
# into the target broker), our backup with zstd and with keep (the order alternates), our
# restore of each. Every restored topic is read back and compared with the source
# (per-partition count and SHA-256 of key, value, timestamp, headers).
#
# With --s3s every repetition also backs up both ways to a private s3s-fs (bench/s3s.sh, on
# --port+2) and restores from it, and prints the filesystem / s3s-fs time ratios (issue 19,
# item 2, on this dataset).
#
# Usage: bench/recompress.sh [--mib N] [--partitions P] [--codec lz4|gzip|snappy|none|zstd]
#                            [--level L] [--reps R] [--port N] [--s3s] [--keep]
#   defaults: 256 MiB, 8 partitions, lz4, compressionLevel 3, 3 repetitions, port 19492
# Env:   KBO_BIN=path   use this binary and skip `cargo build`
#        BENCH_IDLE_PCT (5), BENCH_IDLE_SECS (3), BENCH_IDLE_TIMEOUT (300): broker idleness
set -euo pipefail

MIB=256 PARTS=8 CODEC=lz4 LEVEL=3 REPS=3 PORT=19492 KEEP=0 S3S=0
IDLE_PCT=${BENCH_IDLE_PCT:-5}
IDLE_SECS=${BENCH_IDLE_SECS:-3}
IDLE_TIMEOUT=${BENCH_IDLE_TIMEOUT:-300}

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --mib) MIB=${2:?--mib needs a value}; shift 2 ;;
    --partitions) PARTS=${2:?--partitions needs a value}; shift 2 ;;
    --codec) CODEC=${2:?--codec needs a value}; shift 2 ;;
    --level) LEVEL=${2:?--level needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --s3s) S3S=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
for v in MIB PARTS LEVEL REPS PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$(tr 'A-Z' 'a-z' <<<"$v") must be a positive integer, got '${!v}'"
done
case $CODEC in none|gzip|snappy|lz4|zstd) ;; *) die "--codec must be none, gzip, snappy, lz4 or zstd, got '$CODEC'" ;; esac

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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbo-bench-rc.XXXXXX")
OK=0 PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"/repo-* "$WORK"/noida-* "$WORK/consume.bin" "$WORK/s3s"
  if [ "$KEEP" = 1 ] || [ "$OK" = 0 ]; then echo "bench: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
show_log() { [ -s "$1" ] && { echo "---- tail of $1 ----" >&2; tail -n 30 "$1" >&2; echo "----" >&2; }; return 0; }

# timed NAME CMD...: stdout/stderr -> $WORK/NAME.{out,err}, "peakKiB wall user sys" -> NAME.time;
# dies with the log tail on failure
timed() {
  local name=$1; shift
  local rc=0
  /usr/bin/time -f '%M %e %U %S' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" != 0 ]; then
    show_log "$WORK/$name.out"; show_log "$WORK/$name.err"
    die "$name failed (exit $rc): $*"
  fi
}
peak_mib() { awk '{printf "%.1f", $1 / 1024}' "$WORK/$1.time"; }
cpu_s() { awk '{printf "%.2f", $3 + $4}' "$WORK/$1.time"; }   # user + system seconds, whole process
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
log "load average at start: $LOAD1 on $(nproc) cores; $MIB MiB, $PARTS partitions, producer codec $CODEC, $REPS repetitions"
start_noida src "$PORT"
SRC_PID=$NOIDA_PID SRC=127.0.0.1:$PORT DST=127.0.0.1:$((PORT + 1))
TOPIC=bench-rc
log "gen-compressible: $MIB MiB into $TOPIC ($CODEC from the producer)"
timed genload "$PY" "$ROOT/bench/gen_compressible.py" --bootstrap "$SRC" --topic "$TOPIC" \
  --partitions "$PARTS" --mib "$MIB" --codec "$CODEC"
RECORDS=$(json "$WORK/genload.out" records)
if [ "$S3S" = 1 ]; then
  # shellcheck source=bench/s3s.sh
  source "$ROOT/bench/s3s.sh"
  s3s_start "$WORK/s3s" $((PORT + 2))
fi
S3ROWS=()

backup_yaml() { # name repo compression [s3s-bucket]: a filesystem repo, or the s3s bucket
  cat <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata: {name: $1}
spec:
  kafkaCluster: {bootstrapServers: ["$SRC"]}
  topics: ["$TOPIC"]
  stopAtCurrentOffsets: true
  compression: $3
  compressionLevel: $LEVEL
YAML
  if [ -n "${4:-}" ]; then
    s3s_storage_yaml "$4" "$1" "s3-$1"
  else
    echo "  storage: {storageType: filesystem, filesystem: {path: \"$2\"}}"
  fi
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

# Per-partition count and content digest of topics on a broker, as JSON {topic: [[n, sha]...]};
# also the codecs of the first batches of the first partition, as the target stores them
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
  CC=$(cpu_s "consume$r")
  wait_idle "plain producer" "$SRC_PID" "$DST_PID"
  timed "produce$r" "$PY" "$KBO_DATA" bench-produce --bootstrap "$DST" --in "$WORK/consume.bin" --topic-suffix=-p
  rm -f "$WORK/consume.bin"
  P=$(json "$WORK/produce$r.out" seconds)
  # odd repetitions back up with zstd first, even ones with keep first
  if [ $((r % 2)) = 1 ]; then order="zstd keep"; else order="keep zstd"; fi
  declare -A B=() R=() S=() BR=() RR=() BC=()
  for c in $order; do
    backup_yaml "b$c-$r" "$WORK/repo-$c-$r" "$c" >"$WORK/backup-$c-$r.yaml"
    wait_idle "backup $c" "$SRC_PID" "$DST_PID"
    timed "backup-$c-$r" "$BIN" run --no-progress -f "$WORK/backup-$c-$r.yaml"
    B[$c]=$(ours "backup-$c-$r")
    BR[$c]=$(peak_mib "backup-$c-$r")
    BC[$c]=$(cpu_s "backup-$c-$r")
    S[$c]=$(du -sb "$WORK/repo-$c-$r" | awk '{print $1}')
  done
  for c in $order; do
    restore_yaml "r$c-$r" "b$c-$r" "$TOPIC-$c" >"$WORK/restore-$c-$r.yaml"
    wait_idle "restore $c" "$SRC_PID" "$DST_PID"
    timed "restore-$c-$r" "$BIN" run --no-progress -f "$WORK/restore-$c-$r.yaml" -f "$WORK/backup-$c-$r.yaml"
    R[$c]=$(ours "restore-$c-$r")
    RR[$c]=$(peak_mib "restore-$c-$r")
  done
  COPIES=("$TOPIC-p" "$TOPIC-zstd" "$TOPIC-keep")
  if [ "$S3S" = 1 ]; then
    declare -A B3=() R3=()
    for c in $order; do
      mkdir -p "$WORK/s3s/repo-s3-$c-$r"
      backup_yaml "bs3$c-$r" "" "$c" "repo-s3-$c-$r" >"$WORK/backup-s3-$c-$r.yaml"
      wait_idle "s3s backup $c" "$SRC_PID" "$DST_PID"
      timed "backup-s3-$c-$r" "$BIN" run --no-progress -f "$WORK/backup-s3-$c-$r.yaml"
      B3[$c]=$(ours "backup-s3-$c-$r")
    done
    for c in $order; do
      restore_yaml "rs3$c-$r" "bs3$c-$r" "$TOPIC-s3-$c" >"$WORK/restore-s3-$c-$r.yaml"
      wait_idle "s3s restore $c" "$SRC_PID" "$DST_PID"
      timed "restore-s3-$c-$r" "$BIN" run --no-progress -f "$WORK/restore-s3-$c-$r.yaml" -f "$WORK/backup-s3-$c-$r.yaml"
      R3[$c]=$(ours "restore-s3-$c-$r")
      COPIES+=("$TOPIC-s3-$c")
    done
    rm -rf "$WORK/s3s"/repo-s3-*-"$r"
    S3ROWS+=("$r ${B[zstd]} ${B3[zstd]} ${B[keep]} ${B3[keep]} ${R[zstd]} ${R3[zstd]} ${R[keep]} ${R3[keep]}")
    log "repetition $r, s3s-fs: zstd backup ${B3[zstd]}s, restore ${R3[zstd]}s; keep backup ${B3[keep]}s, restore ${R3[keep]}s"
  fi
  wait_idle "verification" "$DST_PID"
  timed "digest$r" "$PY" "$WORK/digest.py" "$TESTENV" "$DST" "${COPIES[@]}"
  "$PY" - "$WORK/digest$r.out" "$SRC_DIGEST" <<'PY' || die "repetition $r: a copy differs from the source (see $WORK/digest$r.out)"
import json, sys
got, want = json.load(open(sys.argv[1])), json.loads(sys.argv[2])
bad = [t for t, d in got.items() if d != want]
sys.exit(f"differs: {bad}" if bad else 0)
PY
  stop_noida "$DST_PID"
  rm -rf "$WORK"/repo-*-"$r" "$WORK/noida-dst$r"
  ROWS+=("$r $C $P ${B[zstd]} ${B[keep]} ${R[zstd]} ${R[keep]} ${S[zstd]} ${S[keep]} ${BR[zstd]} ${BR[keep]} ${RR[zstd]} ${RR[keep]} $CC ${BC[zstd]} ${BC[keep]}")
  log "repetition $r: consumer ${C}s, producer ${P}s; zstd: backup ${B[zstd]}s, restore ${R[zstd]}s, ${S[zstd]} B; keep: backup ${B[keep]}s, restore ${R[keep]}s, ${S[keep]} B"
done

# ---------------------------------------------------------------------------------------------
# Report: MB/s = payload (key + value bytes) / the tool's own seconds; stored = the
# repository's bytes on disk (du -sb: segments, indexes, manifest) / payload; ratios per
# repetition, then their median
# ---------------------------------------------------------------------------------------------
{
  echo
  echo "kafka-backup-operator re-compression: $MIB MiB, $PARTS partitions, $RECORDS compressible records of 1 KiB,"
  echo "$CODEC from the producer, compressionLevel $LEVEL, filesystem; payload $PAYLOAD bytes; binary $BIN"
  echo
  printf '%-3s | %9s | %9s | %11s | %11s | %9s | %9s | %11s | %11s | %9s | %9s\n' rep "consumer" "producer" "backup zstd" "backup keep" "restore z" "restore k" "stored zstd" "stored keep" "RSS b z/k" "RSS r z/k"
  for row in "${ROWS[@]}"; do
    read -r r c p bz bk rz rk sz sk brz brk rrz rrk _ <<<"$row"
    awk -v r="$r" -v pl="$PAYLOAD" -v c="$c" -v p="$p" -v bz="$bz" -v bk="$bk" -v rz="$rz" -v rk="$rk" -v sz="$sz" -v sk="$sk" \
      -v b="$brz/$brk" -v rr="$rrz/$rrk" \
      'BEGIN { f = pl / 1e6; printf "%-3s | %9.1f | %9.1f | %11.1f | %11.1f | %9.1f | %9.1f | %11.3f | %11.3f | %9s | %9s\n", r, f/c, f/p, f/bz, f/bk, f/rz, f/rk, sz/pl, sk/pl, b, rr }'
  done
  echo "(MB/s; stored = repository bytes / payload; RSS = peak MiB of our backup and restore, zstd/keep)"
  echo "CPU seconds (user + system, whole process) per repetition: consumer / backup zstd / backup keep:"
  for row in "${ROWS[@]}"; do read -r r _ _ _ _ _ _ _ _ _ _ _ _ cc bcz bck <<<"$row"; echo "  $r: $cc / $bcz / $bck"; done
  echo
  printf '%s\n' "${ROWS[@]}" | awk -v pl="$PAYLOAD" '
    function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
    { n++; bz[n] = $2 / $4; bk[n] = $2 / $5; rz[n] = $3 / $6; rk[n] = $3 / $7; sz[n] = $8 / pl; sk[n] = $9 / pl; zk[n] = $5 / $4 }
    END {
      printf "median of %d repetitions (throughput ratios; 1.00 = as fast):\n", n
      printf "  stored / payload: zstd %.3f, keep %.3f\n", median(sz, n), median(sk, n)
      printf "  backup / librdkafka consumer: zstd %.2f, keep %.2f (zstd / keep %.2f)\n", median(bz, n), median(bk, n), median(zk, n)
      printf "  restore / librdkafka producer: zstd %.2f, keep %.2f\n", median(rz, n), median(rk, n)
      printf "goal (issue 19): stored <= 0.31 of the payload with the backup >= 1.2x the consumer: %s\n",
        (median(sz, n) <= 0.31 && median(bz, n) >= 1.2) ? "MET" : "NOT MET"
    }'
  if [ "$S3S" = 1 ]; then
    echo
    echo "s3s-fs against the filesystem (ratio = filesystem seconds / s3s-fs seconds; issue 19 goal >= 0.9):"
    for row in "${S3ROWS[@]}"; do
      read -r r bz bz3 bk bk3 rz rz3 rk rk3 <<<"$row"
      awk -v r="$r" -v bz="$bz" -v bz3="$bz3" -v bk="$bk" -v bk3="$bk3" -v rz="$rz" -v rz3="$rz3" -v rk="$rk" -v rk3="$rk3" \
        'BEGIN { printf "  %s: backup zstd %.2f (%s s vs %s s), keep %.2f; restore zstd %.2f, keep %.2f\n", r, bz/bz3, bz, bz3, bk/bk3, rz/rz3, rk/rk3 }'
    done
  fi
  echo "verification: every copy (plain producer, both restores, and with --s3s both s3s-fs restores) has the source's per-partition count and digest"
  echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
}
OK=1
