#!/usr/bin/env bash
# bench/decode.sh - restores that decode and re-encode record batches (issue 19, item 3), each
# next to a plain librdkafka producer (kbo_data.py bench-produce) writing the same records in the
# same run.
#
# Starts a private noida-db broker on --port (never the shared test broker; data dir in the work
# dir; killed by PID at the end), fills one topic with MIB MiB of 1 KiB records (gen-load), reads
# it once with the plain consumer into a file, backs it up once (filesystem, compression none),
# then for each case, REPS times: the plain producer writes the case's records from the file,
# our restore writes them from the backup. Cases:
#   full    a plain restore (batches passed through; the reference)
#   pitr    pitr {startTimestamp, endTimestamp} at the 30th and 70th percentile of the record
#           timestamps (both fall inside record batches: see bench/README.md); producer: the
#           same window filtered from the file
#   repart  repartitioning {strategy: murmur2, targetPartitions: --target-partitions}: every
#           record decoded and re-encoded; producer: librdkafka's murmur2_random partitioner
#   batch   repart with produceBatchSize --batch-size; producer: batch.num.messages the same
# Every restored topic is compared with the producer's copy (per partition: record count and an
# order-independent digest of timestamp, key, value, headers).
# --verify-cost: also time the integrity chain's functions on the backup (bench/verify_cost.sh,
# built before anything is timed) and relate them to the full restore's and producer's seconds.
#
# Usage: bench/decode.sh [--mib N] [--partitions P] [--target-partitions N] [--batch-size B]
#                        [--reps R] [--cases "full pitr repart batch"] [--port N]
#                        [--verify-cost] [--keep]
#   defaults: 256 MiB, 8 partitions, 5 target partitions, batch size 100, 1 repetition,
#   port 19592
# Env:   KBO_BIN=path   use this binary and skip `cargo build`
#        BENCH_IDLE_PCT (5), BENCH_IDLE_SECS (3), BENCH_IDLE_TIMEOUT (300): broker idleness
set -euo pipefail

MIB=256 PARTS=8 TPARTS=5 BATCH=100 REPS=1 PORT=19592 KEEP=0 VCOST=0 CASES="full pitr repart batch"
IDLE_PCT=${BENCH_IDLE_PCT:-5}
IDLE_SECS=${BENCH_IDLE_SECS:-3}
IDLE_TIMEOUT=${BENCH_IDLE_TIMEOUT:-300}

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --mib) MIB=${2:?--mib needs a value}; shift 2 ;;
    --partitions) PARTS=${2:?--partitions needs a value}; shift 2 ;;
    --target-partitions) TPARTS=${2:?--target-partitions needs a value}; shift 2 ;;
    --batch-size) BATCH=${2:?--batch-size needs a value}; shift 2 ;;
    --reps) REPS=${2:?--reps needs a value}; shift 2 ;;
    --cases) CASES=${2:?--cases needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --verify-cost) VCOST=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
for v in MIB PARTS TPARTS BATCH REPS PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
for c in $CASES; do case $c in full|pitr|repart|batch) ;; *) die "unknown case '$c'" ;; esac; done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTENV=$ROOT/testenv
PY=$TESTENV/.venv/bin/python
KBO_DATA=$TESTENV/kbo_data.py
NOIDA=$TESTENV/.venv/lib/python3.11/site-packages/noida_db/noida-db
[ -x "$PY" ] || die "$PY not found (run testenv/install.sh)"
[ -x "$NOIDA" ] || die "$NOIDA not found (run testenv/install.sh)"
"$PY" "$KBO_DATA" bench-produce --help | grep -q -- --ts-start || die "$KBO_DATA lacks bench-produce --ts-start"
/usr/bin/time -f %M -o /dev/null true 2>/dev/null || die "/usr/bin/time is not GNU time (apt-get install time)"

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
if [ "$VCOST" = 1 ]; then
  log "building bench/verify_cost.rs"
  VC_BIN=$("$ROOT/bench/verify_cost.sh" --build) || die "bench/verify_cost.sh --build failed"
fi
case $BIN in *debug*) log "WARNING: $BIN looks like a debug build: its numbers mean nothing" ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbo-bench-decode.XXXXXX")
OK=0 PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK/repo" "$WORK"/noida-* "$WORK/consume.bin"
  if [ "$KEEP" = 1 ] || [ "$OK" = 0 ]; then echo "bench: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
show_log() { [ -s "$1" ] && { echo "---- tail of $1 ----" >&2; tail -n 30 "$1" >&2; echo "----" >&2; }; return 0; }

# timed NAME CMD...: under GNU time; stdout/stderr -> $WORK/NAME.{out,err}, "peakKiB wall" -> .time
timed() {
  local name=$1; shift
  local rc=0
  /usr/bin/time -f '%M %e' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" != 0 ]; then
    show_log "$WORK/$name.out"; show_log "$WORK/$name.err"
    die "$name failed (exit $rc): $*"
  fi
}
peak_mib() { awk '{printf "%.0f", $1 / 1024}' "$WORK/$1.time"; }
json() { "$PY" -c 'import json,sys; print(json.loads([l for l in open(sys.argv[1]) if l.startswith("{")][-1])[sys.argv[2]])' "$1" "$2"; }
# ours NAME RECORDS: the seconds of our closing line `...: N records, X in S s (...)`
ours() {
  local re='^(backup|restore) .*: ([0-9]+) records, .* in ([0-9.]+) s \(' line
  line=$(grep -E "$re" "$WORK/$1.out" | tail -n 1) || die "$1: no summary line (see $WORK/$1.out)"
  [[ $line =~ $re ]]
  [ "${BASH_REMATCH[2]}" = "$2" ] || die "$1: ${BASH_REMATCH[2]} records, expected $2"
  echo "${BASH_REMATCH[3]}"
}

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && { exec 3>&- 3<&-; return 0; }
    sleep 0.1
  done
  return 1
}
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then die "port $PORT is in use: choose another --port"; fi
mkdir -p "$WORK/noida-data"
"$NOIDA" start --only kafka --host 127.0.0.1 --kafka-port "$PORT" --data-dir "$WORK/noida-data" >"$WORK/noida.log" 2>&1 &
NOIDA_PID=$!
PIDS+=("$NOIDA_PID")
wait_port "$PORT" || { show_log "$WORK/noida.log"; die "noida-db does not listen on $PORT"; }
cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; awk '{print $12 + $13}' <<<"$s"; }
HZ=$(getconf CLK_TCK)
wait_idle() { # label: noida rewrites a snapshot after writes, using a core for a while
  local prev now quiet=0 t0=$SECONDS
  prev=$(cpu_ticks "$NOIDA_PID") || die "noida-db died before $1"
  while :; do
    sleep 1
    now=$(cpu_ticks "$NOIDA_PID") || die "noida-db died before $1"
    if [ $(( (now - prev) * 100 )) -lt $(( HZ * IDLE_PCT )) ]; then quiet=$((quiet + 1)); else quiet=0; fi
    prev=$now
    [ "$quiet" -ge "$IDLE_SECS" ] && break
    if [ $((SECONDS - t0)) -ge "$IDLE_TIMEOUT" ]; then log "WARNING: broker still busy after ${IDLE_TIMEOUT}s ($1)"; return 0; fi
  done
}

read -r LOAD1 _ < /proc/loadavg
log "load average at start: $LOAD1 on $(nproc) cores; $MIB MiB, $PARTS partitions, cases: $CASES"
BOOT=127.0.0.1:$PORT TOPIC=bench-dec
timed genload "$PY" "$KBO_DATA" gen-load --bootstrap "$BOOT" --topic "$TOPIC" \
  --partitions "$PARTS" --mib "$MIB" --record-bytes 1024
RECORDS=$(json "$WORK/genload.out" records)
wait_idle "plain consumer"
timed consume "$PY" "$KBO_DATA" bench-consume --bootstrap "$BOOT" --topics "$TOPIC" --out "$WORK/consume.bin"
[ "$(json "$WORK/consume.out" records)" = "$RECORDS" ] || die "the plain consumer read $(json "$WORK/consume.out" records) records, expected $RECORDS"

# The PITR window: the 30th and 70th percentile of the record timestamps
"$PY" - "$TESTENV" "$WORK/consume.bin" >"$WORK/window.out" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import kbo_data
_, recs = kbo_data.read_bench_file(sys.argv[2])
ts = sorted(r[2] for r in recs)
lo, hi = ts[len(ts) * 3 // 10], ts[len(ts) * 7 // 10]
print(lo, hi, sum(1 for t in ts if lo <= t <= hi), ts[0], ts[-1])
PY
read -r PITR_START PITR_END PITR_RECORDS TS_MIN TS_MAX <"$WORK/window.out"
log "PITR window [$PITR_START, $PITR_END] ms: $PITR_RECORDS records (timestamps span $TS_MIN..$TS_MAX)"

cat >"$WORK/backup.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata: {name: bench-dec}
spec:
  kafkaCluster: {bootstrapServers: ["$BOOT"]}
  topics: ["$TOPIC"]
  stopAtCurrentOffsets: true
  compression: none
  storage: {storageType: filesystem, filesystem: {path: "$WORK/repo"}}
YAML
wait_idle "our backup"
timed backup "$BIN" run --no-progress -f "$WORK/backup.yaml"
B_SECS=$(ours backup "$RECORDS")
log "backup: $B_SECS s"

# Where the PITR window's ends fall: the stored record batches (segment files of the repository,
# codec 0 blocks) whose timestamps straddle the start or the end (those the restore decodes;
# batches wholly inside are passed through, wholly outside skipped)
"$PY" - "$WORK/repo" "$PITR_START" "$PITR_END" >"$WORK/straddle.out" <<'PY'
import os, struct, sys
root, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
total = inside = at_start = at_end = 0
for d, _, files in os.walk(root):
    for f in files:
        path = os.path.join(d, f)
        with open(path, "rb") as fh:
            data = fh.read(8)
            if data != b"KBOSEG1\n":
                continue
            data = fh.read()
        pos = 0
        while pos < len(data):
            codec, stored = data[pos + 4], struct.unpack_from(">I", data, pos + 8)[0]
            if codec != 0:
                sys.exit(f"{path}: compressed block; run with compression none")
            pl, q = data[pos + 20:pos + 20 + stored], 0
            while q < len(pl):
                blen = struct.unpack_from(">i", pl, q + 8)[0]
                first_ts, max_ts = struct.unpack_from(">qq", pl, q + 27)
                total += 1
                if first_ts < lo <= max_ts: at_start += 1
                elif first_ts <= hi < max_ts: at_end += 1
                elif lo <= first_ts and max_ts <= hi: inside += 1
                q += 12 + blen
            pos += 20 + stored
print(total, inside, at_start, at_end)
PY
read -r BATCHES B_INSIDE B_AT_START B_AT_END <"$WORK/straddle.out"
log "stored batches: $BATCHES; PITR window: $B_INSIDE inside, $B_AT_START straddle its start, $B_AT_END its end"

restore_yaml() { # case target
  local extra=""
  case $1 in
    full) ;;
    pitr) extra="  pitr: {startTimestamp: $PITR_START, endTimestamp: $PITR_END}" ;;
    repart) extra="  repartitioning: {\"$2\": {strategy: murmur2, targetPartitions: $TPARTS}}" ;;
    batch) extra="  produceBatchSize: $BATCH
  repartitioning: {\"$2\": {strategy: murmur2, targetPartitions: $TPARTS}}" ;;
  esac
  cat <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata: {name: r-$2}
spec:
  backupRef: {name: bench-dec}
  kafkaCluster: {bootstrapServers: ["$BOOT"]}
  createTopics: true
  topicMapping: {"$TOPIC": "$2"}
$extra
YAML
}
producer_args() { # case
  case $1 in
    full) ;;
    pitr) echo "--ts-start $PITR_START --ts-end $PITR_END" ;;
    repart) echo "--partitions $TPARTS" ;;
    batch) echo "--partitions $TPARTS --batch-records $BATCH" ;;
  esac
}

# Per partition: count and an order-independent digest (sum of SHA-256s mod 2^256)
cat >"$WORK/digest.py" <<'PY'
import hashlib, json, struct, sys
sys.path.insert(0, sys.argv[1])
import kbo_data
boot, topics = sys.argv[2], sys.argv[3:]
out = {}
pk = struct.Struct("<qii").pack
for t in topics:
    n, s = {}, {}
    _, batches = kbo_data.consume_to_end(boot, [t], "read_committed", timeout=3600)
    for msgs in batches:
        for m in msgs:
            k, v, p = m.key(), m.value(), m.partition()
            d = hashlib.sha256(pk(m.timestamp()[1], -1 if k is None else len(k), -1 if v is None else len(v)))
            if k: d.update(k)
            if v: d.update(v)
            for name, hv in m.headers() or ():
                d.update(repr((name, hv)).encode())
            s[p] = (s.get(p, 0) + int.from_bytes(d.digest(), "big")) % (1 << 256)
            n[p] = n.get(p, 0) + 1
    out[t] = {str(p): [n[p], "%064x" % s[p]] for p in sorted(n)}
print(json.dumps(out))
PY

ROWS=()
for r in $(seq 1 "$REPS"); do
  for c in $CASES; do
    PT=$TOPIC-$c-p$r RT=$TOPIC-$c-r$r
    wait_idle "plain producer ($c)"
    # shellcheck disable=SC2046
    timed "produce-$c-$r" "$PY" "$KBO_DATA" bench-produce --bootstrap "$BOOT" --in "$WORK/consume.bin" \
      "--topic-suffix=-$c-p$r" $(producer_args "$c")
    N=$(json "$WORK/produce-$c-$r.out" records) PAYLOAD=$(json "$WORK/produce-$c-$r.out" bytes)
    P_SECS=$(json "$WORK/produce-$c-$r.out" seconds)
    restore_yaml "$c" "$RT" >"$WORK/restore-$c-$r.yaml"
    wait_idle "our restore ($c)"
    timed "restore-$c-$r" "$BIN" run --no-progress -f "$WORK/restore-$c-$r.yaml" -f "$WORK/backup.yaml"
    R_SECS=$(ours "restore-$c-$r" "$N")
    wait_idle "verification ($c)"
    timed "digest-$c-$r" "$PY" "$WORK/digest.py" "$TESTENV" "$BOOT" "$PT" "$RT"
    "$PY" - "$WORK/digest-$c-$r.out" "$PT" "$RT" <<'PY' || die "$c: our restore differs from the plain producer's copy (see $WORK/digest-$c-$r.out)"
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d[sys.argv[2]] == d[sys.argv[3]] else f"{sys.argv[3]} != {sys.argv[2]}")
PY
    ROWS+=("$r $c $N $PAYLOAD $P_SECS $R_SECS $(peak_mib "produce-$c-$r") $(peak_mib "restore-$c-$r")")
    log "rep $r $c: $N records; plain producer $P_SECS s, our restore $R_SECS s"
  done
done

VC=""
if [ "$VCOST" = 1 ]; then
  wait_idle "verify_cost"
  timed verify_cost "$VC_BIN" "$WORK/repo" bench-dec 3
  VC=$(grep '^{' "$WORK/verify_cost.out" | tail -n 1)
fi

{
  echo
  echo "kafka-backup-operator decode paths: $MIB MiB, $PARTS partitions, $RECORDS records of 1 KiB, filesystem, compression none"
  echo "PITR window [$PITR_START, $PITR_END] ($PITR_RECORDS records); repartitioned to $TPARTS partitions (murmur2);"
  echo "  stored batches $BATCHES: $B_INSIDE wholly inside the window, $B_AT_START straddle its start, $B_AT_END its end"
  echo "batch = repart with produceBatchSize $BATCH; binary $BIN"
  echo "MB/s = key+value bytes of the records written / the tool's own seconds; verified = our copy equals the producer's"
  echo
  printf '%-3s | %-6s | %9s | %13s | %12s | %10s | %13s | %12s\n' rep case records "producer MB/s" "restore MB/s" "x producer" "producer RSS" "restore RSS"
  for row in "${ROWS[@]}"; do
    read -r r c n pl p rs pm rm <<<"$row"
    awk -v r="$r" -v c="$c" -v n="$n" -v pl="$pl" -v p="$p" -v rs="$rs" -v pm="$pm" -v rm="$rm" \
      'BEGIN { printf "%-3s | %-6s | %9d | %13.1f | %12.1f | %10.2f | %10s MiB | %8s MiB\n", r, c, n, pl/1e6/p, pl/1e6/rs, p/rs, pm, rm }'
  done
  echo
  echo "our backup: $B_SECS s ($(awk -v b="$(json "$WORK/consume.out" bytes)" -v s="$B_SECS" 'BEGIN { printf "%.1f", b/1e6/s }') MB/s); plain consumer $(json "$WORK/consume.out" mb_per_s) MB/s"
  if [ -n "$VC" ]; then
    echo
    echo "integrity chain (bench/verify_cost.rs, best of 3, seconds): $VC"
    for row in "${ROWS[@]}"; do
      read -r r c n pl p rs pm rm <<<"$row"
      [ "$c" = full ] || continue
      "$PY" - "$VC" "$rs" "$p" "$r" <<'PY'
import json, sys
v, rs, p, r = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
pre = v["index_s"] + v["objects_s"]
print(f"rep {r}: pre-check (indexes + objects) {pre:.3f} s = {100 * pre / rs:.1f} % of our full restore ({rs} s), "
      f"{100 * pre / p:.1f} % of the plain producer's time ({p} s)")
if v["read_split_s"] is not None:
    d = v["read_checked_s"] - v["read_split_s"]
    print(f"  checks while reading (read_checked - read_split) {d:.3f} s = {100 * d / rs:.1f} % of the restore; "
          f"in memory (CRC-32C of every payload + batch CRCs) {v['crc_mem_s']:.3f} s = {100 * v['crc_mem_s'] / rs:.1f} %")
print(f"  validation full read {v['full_s']:.3f} s vs raw read {v['read_raw_s']:.3f} s")
PY
    done
  fi
  echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
}
OK=1
