#!/usr/bin/env bash
# bench/partitions.sh - many small partitions: plan, backup and restore time and peak RSS of
# kafka-backup-operator against a plain librdkafka consumer reading the same partitions.
#
# Starts two private noida-db brokers (source and restore target) on their own ports with data
# dirs in the work dir, creates TOPICS topics of PER_TOPIC partitions with RECORDS small records
# each, and times: a plain consumer (confluent-kafka) reading every partition to its end, our
# `plan`, our backup to a filesystem repository, our restore into the second broker. The
# restored data is read back and compared per partition (count and content digest).
#
# Usage: bench/partitions.sh [--topics T] [--per-topic P] [--records R] [--port N] [--keep]
#   defaults: 1000 topics x 10 partitions x 2 records (10,000 partitions, 20,000 records);
#   --port N: source broker on N, target on N+1 (default 19192)
# Env:   KBO_BIN=path   use this binary and skip `cargo build` (e.g. target/debug/...)
#        BENCH_IDLE_PCT (5), BENCH_IDLE_SECS (3), BENCH_IDLE_TIMEOUT (300): broker idleness
#        BENCH_TIMEOUT (1800): seconds after which one timed step is killed
set -euo pipefail

TOPICS=1000 PER_TOPIC=10 RECORDS=2 PORT=19192 KEEP=0
IDLE_PCT=${BENCH_IDLE_PCT:-5}
IDLE_SECS=${BENCH_IDLE_SECS:-3}
IDLE_TIMEOUT=${BENCH_IDLE_TIMEOUT:-300}
STEP_TIMEOUT=${BENCH_TIMEOUT:-1800}

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --topics) TOPICS=${2:?--topics needs a value}; shift 2 ;;
    --per-topic) PER_TOPIC=${2:?--per-topic needs a value}; shift 2 ;;
    --records) RECORDS=${2:?--records needs a value}; shift 2 ;;
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
for v in TOPICS PER_TOPIC RECORDS PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$(tr 'A-Z_' 'a-z-' <<<"$v") must be a positive integer, got '${!v}'"
done
PARTS=$((TOPICS * PER_TOPIC))

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TESTENV=$ROOT/testenv
PY=$TESTENV/.venv/bin/python
NOIDA=$TESTENV/.venv/lib/python3.11/site-packages/noida_db/noida-db
[ -x "$PY" ] || die "$PY not found (run testenv/install.sh)"
[ -x "$NOIDA" ] || die "$NOIDA not found (run testenv/install.sh)"
/usr/bin/time -f %M -o /dev/null true 2>/dev/null || die "/usr/bin/time (GNU time) is missing: apt-get install time"

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

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kbo-bench-parts.XXXXXX")
OK=0 PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK/repo" "$WORK/noida-src" "$WORK/noida-dst"
  if [ "$KEEP" = 1 ] || [ "$OK" = 0 ]; then echo "bench: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

show_log() { [ -s "$1" ] && { echo "---- tail of $1 ----" >&2; tail -n 30 "$1" >&2; echo "----" >&2; }; return 0; }

# timed NAME CMD...: CMD under /usr/bin/time -v; stdout/stderr -> $WORK/NAME.{out,err},
# the time report -> $WORK/NAME.time. Dies with the log tail on failure.
timed() {
  local name=$1; shift
  local rc=0
  /usr/bin/time -v -o "$WORK/$name.time" timeout "$STEP_TIMEOUT" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if [ "$rc" != 0 ]; then
    show_log "$WORK/$name.out"; show_log "$WORK/$name.err"
    die "$name failed (exit $rc; 124 = killed after ${STEP_TIMEOUT}s): $*"
  fi
}
# From GNU time -v: peak RSS (MiB), wall seconds, CPU seconds (user + system)
peak_mib() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$WORK/$1.time"; }
wall_s() {
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, a, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + a[i]; printf "%.2f", s }' "$WORK/$1.time"
}
cpu_s() {
  awk -F': ' '/User time/ {u = $2} /System time/ {s = $2} END {printf "%.2f", u + s}' "$WORK/$1.time"
}

# ---------------------------------------------------------------------------------------------
# Two private brokers (noida rewrites a snapshot after topic changes and its memory only grows:
# a fresh pair per run, never the shared test broker)
# ---------------------------------------------------------------------------------------------
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && { exec 3>&- 3<&-; return 0; }
    sleep 0.1
  done
  return 1
}
start_noida() { # name port -> pid in NOIDA_PID_<name>
  local name=$1 port=$2
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is in use: choose another --port"; fi
  mkdir -p "$WORK/noida-$name"
  "$NOIDA" start --only kafka --host 127.0.0.1 --kafka-port "$port" --data-dir "$WORK/noida-$name" \
    >"$WORK/noida-$name.log" 2>&1 &
  PIDS+=("$!")
  eval "NOIDA_PID_$name=$!"
  wait_port "$port" || { show_log "$WORK/noida-$name.log"; die "noida-db ($name) does not listen on $port"; }
}
cpu_ticks() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; awk '{print $12 + $13}' <<<"$s"; }
HZ=$(getconf CLK_TCK)
wait_idle() { # label pid...
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
  log "brokers idle before $label (waited $((SECONDS - t0)) s)"
}

read -r LOAD1 _ < /proc/loadavg
log "load average at start: $LOAD1 on $(nproc) cores; $TOPICS topics x $PER_TOPIC partitions x $RECORDS records"
start_noida src "$PORT"
start_noida dst "$((PORT + 1))"
SRC=127.0.0.1:$PORT DST=127.0.0.1:$((PORT + 1))

# ---------------------------------------------------------------------------------------------
# Load: topics bp-0000.. with PER_TOPIC partitions, RECORDS records of ~100 B per partition
# ---------------------------------------------------------------------------------------------
log "creating $TOPICS topics x $PER_TOPIC partitions"
timed create "$PY" - "$SRC" "$TOPICS" "$PER_TOPIC" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient, NewTopic
boot, topics, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = AdminClient({"bootstrap.servers": boot, "log_level": 4})
names = [f"bp-{i:04d}" for i in range(topics)]
for i in range(0, len(names), 100):
    fs = a.create_topics([NewTopic(n, num_partitions=per, replication_factor=1,
                                   config={"retention.ms": "-1"}) for n in names[i:i + 100]],
                         operation_timeout=60, request_timeout=60)
    for n, f in fs.items():
        f.result()
deadline = time.monotonic() + 120
while True:
    md = a.list_topics(timeout=30)
    if all(n in md.topics and len(md.topics[n].partitions) == per for n in names):
        break
    if time.monotonic() > deadline:
        sys.exit("topics not ready after 120 s")
    time.sleep(0.5)
PY
wait_idle "produce" "$NOIDA_PID_src"
log "plain producer: $RECORDS records into each of $PARTS partitions"
timed produce "$PY" - "$SRC" "$TOPICS" "$PER_TOPIC" "$RECORDS" <<'PY'
import json, sys, time
from confluent_kafka import Producer
boot, topics, per, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
t0 = time.monotonic()
p = Producer({"bootstrap.servers": boot, "linger.ms": 20, "acks": "all", "log_level": 4})
errs = []
def cb(err, msg):
    if err is not None:
        errs.append(str(err))
count = 0
for t in range(topics):
    for part in range(per):
        for r in range(n):
            p.produce(f"bp-{t:04d}", key=f"k{t}-{part}-{r}".encode(),
                      value=(f"value {t}/{part}/{r} " * 4).encode(), partition=part, on_delivery=cb)
            count += 1
            if count % 10000 == 0:
                p.poll(0)
left = p.flush(120)
if errs or left:
    sys.exit(f"produce failed: {left} undelivered, errors {errs[:3]}")
print(json.dumps({"records": count, "seconds": round(time.monotonic() - t0, 3)}))
PY

# The plain consumer and the verification: every partition from its start to its end, a count
# and a SHA-256 over (key, value, timestamp) per partition, written as JSON.
cat >"$WORK/consume.py" <<'PY'
import hashlib, json, sys, time, uuid
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING, KafkaError
boot, topics, per, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.monotonic()
c = Consumer({"bootstrap.servers": boot, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
              "enable.auto.commit": False, "enable.partition.eof": True,
              "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100, "log_level": 4,
              "receive.message.max.bytes": 200000000})
c.assign([TopicPartition(f"bp-{t:04d}", p, OFFSET_BEGINNING) for t in range(topics) for p in range(per)])
left = topics * per
eof = set()
digest, count, records = {}, {}, 0
deadline = time.monotonic() + 1200
while len(eof) < left:
    if time.monotonic() > deadline:
        sys.exit(f"only {len(eof)} of {left} partitions read to their end after 1200 s")
    for m in c.consume(10000, timeout=1.0):
        key = (m.topic(), m.partition())
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(key)
                continue
            sys.exit(f"consume error: {m.error()}")
        d = digest.setdefault(key, hashlib.sha256())
        d.update(repr((m.key(), m.value(), m.timestamp()[1])).encode())
        count[key] = count.get(key, 0) + 1
        records += 1
secs = time.monotonic() - t0
c.close()
with open(out, "w") as f:
    json.dump({f"{t}/{p}": [count.get((t, p), 0), digest[(t, p)].hexdigest() if (t, p) in digest else ""]
               for (t, p) in sorted(eof)}, f)
print(json.dumps({"records": records, "partitions": len(eof), "seconds": round(secs, 3)}))
PY

wait_idle "plain consumer" "$NOIDA_PID_src"
log "plain consumer: all $PARTS partitions"
timed consume "$PY" "$WORK/consume.py" "$SRC" "$TOPICS" "$PER_TOPIC" "$WORK/source.json"

cat >"$WORK/backup.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata: {name: bench-parts}
spec:
  kafkaCluster: {bootstrapServers: ["$SRC"]}
  topics: ["bp-*"]
  stopAtCurrentOffsets: true
  compression: none
  storage: {storageType: filesystem, filesystem: {path: "$WORK/repo"}}
YAML
cat >"$WORK/restore.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata: {name: bench-parts-restore}
spec:
  backupRef: {name: bench-parts}
  kafkaCluster: {bootstrapServers: ["$DST"]}
  createTopics: true
YAML

wait_idle "our plan" "$NOIDA_PID_src"
log "our plan"
timed plan "$BIN" plan -f "$WORK/backup.yaml"
log "our backup: $PARTS partitions -> $WORK/repo"
timed backup "$BIN" run --no-progress -f "$WORK/backup.yaml"
grep -E '^backup ' "$WORK/backup.out" | tail -n 1 >&2 || true
REPO_FILES=$(find "$WORK/repo" -type f | wc -l)
REPO_BYTES=$(du -sb "$WORK/repo" | awk '{print $1}')
wait_idle "our restore" "$NOIDA_PID_src" "$NOIDA_PID_dst"
log "our restore: -> $DST"
timed restore "$BIN" run --no-progress -f "$WORK/restore.yaml" -f "$WORK/backup.yaml"
grep -E '^restore ' "$WORK/restore.out" | tail -n 1 >&2 || true

wait_idle "verification" "$NOIDA_PID_dst"
log "verify: read the restored partitions back"
timed verify "$PY" "$WORK/consume.py" "$DST" "$TOPICS" "$PER_TOPIC" "$WORK/target.json"
cmp -s "$WORK/source.json" "$WORK/target.json" || die "the restored partitions differ from the source (see $WORK/source.json and target.json)"

C=$(wall_s consume)
ratio() { awk -v a="$1" -v b="$C" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
{
  echo
  echo "kafka-backup-operator partitions benchmark: $TOPICS topics x $PER_TOPIC partitions = $PARTS partitions,"
  echo "$((PARTS * RECORDS)) records; filesystem repository ($REPO_FILES files, $REPO_BYTES bytes); binary $BIN"
  echo
  printf '%-22s | %8s | %8s | %10s | %12s\n' step "wall s" "CPU s" "x consumer" "peak RSS MiB"
  printf '%-22s-+-%8s-+-%8s-+-%10s-+-%12s\n' ---------------------- -------- -------- ---------- ------------
  for s in consume produce plan backup restore; do
    case $s in
      consume) n="plain consumer" ;; produce) n="plain producer" ;; plan) n="our plan" ;;
      backup) n="our backup" ;; restore) n="our restore" ;;
    esac
    printf '%-22s | %8s | %8s | %10s | %12s\n' "$n" "$(wall_s $s)" "$(cpu_s $s)" "$(ratio "$(wall_s $s)")" "$(peak_mib $s)"
  done
  echo
  echo "verification: every restored partition has the source's count and content digest"
  echo "goal: backup of $PARTS partitions under 60 s: $(awk -v b="$(wall_s backup)" 'BEGIN { print (b < 60 ? "MET" : "NOT MET") }')"
  echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
}
OK=1
