#!/usr/bin/env bash
# The main job on real input, on a fresh machine: starts a Kafka-protocol broker and an S3
# server on loopback (testenv/), produces sample topics (keys, null keys, tombstones, headers,
# old timestamps, every codec, idempotent and transactional producers, a 700 KiB record),
# backs them up to the local filesystem and to S3, restores them under new names with a
# point-in-time window, and verifies record by record with confluent-kafka (not our client).
# Everything it writes goes to ./.demo; KEEP_PEERS=1 leaves the peers running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
echo "== building kafka-backup-operator"
cargo build --bins --quiet
bin=$root/target/debug/kafka-backup-operator
plugin=$root/target/debug/kubectl-kafkabackup
echo "== starting test peers (noida-db, moto)"
testenv/start.sh
[ "${KEEP_PEERS:-0}" = 1 ] || trap 'testenv/stop.sh >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
source testenv/env
demo=$root/.demo; rm -rf "$demo"; mkdir -p "$demo"
p="demo$(date +%s)-"
echo "== producing sample topics ${p}*"
"$KBO_PYTHON" testenv/kbo_data.py produce-sample --bootstrap "$KBO_KAFKA_BOOTSTRAP" --prefix "$p" > "$demo/sample.json"
topics=$("$KBO_PYTHON" -c "import json;print(' '.join(json.load(open('$demo/sample.json'))['topics']))")
read -r pstart pend < <("$KBO_PYTHON" -c "import json;s=[w for w in json.load(open('$demo/sample.json'))['pitr_suggestions'] if w['name']=='middle-half'][0];print(s['start_ms'],s['end_ms'])")
pstart_iso=$("$KBO_PYTHON" -c "import datetime;print(datetime.datetime.fromtimestamp($pstart/1000,datetime.timezone.utc).isoformat().replace('+00:00','Z'))")

cat > "$demo/backup-fs.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata:
  name: demo-fs
spec:
  kafkaCluster:
    bootstrapServers: ["$KBO_KAFKA_BOOTSTRAP"]
  topics: ["${p}*"]
  stopAtCurrentOffsets: true
  consumerGroupSnapshot: true
  storage:
    storageType: filesystem
    filesystem:
      path: $demo/repo
YAML
cat > "$demo/backup-s3.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata:
  name: s3-credentials
stringData:
  AWS_ACCESS_KEY_ID: "$KBO_S3_ACCESS_KEY"
  AWS_SECRET_ACCESS_KEY: "$KBO_S3_SECRET_KEY"
---
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaBackup
metadata:
  name: demo-s3
spec:
  kafkaCluster:
    bootstrapServers: ["$KBO_KAFKA_BOOTSTRAP"]
  topics: ["${p}*"]
  stopAtCurrentOffsets: true
  storage:
    storageType: s3
    s3:
      bucket: $KBO_S3_BUCKET
      region: $KBO_S3_REGION
      endpoint: $KBO_S3_ENDPOINT
      pathStyle: true
      allowHttp: true
      prefix: demo
      credentialsSecret:
        name: s3-credentials
YAML
mapping() { for t in $topics; do printf '    %s: %s%s\n' "$t" "$t" "$1"; done; }
cat > "$demo/restore-s3-pitr.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata:
  name: demo-pitr
spec:
  backupRef:
    name: demo-s3
  kafkaCluster:
    bootstrapServers: ["$KBO_KAFKA_BOOTSTRAP"]
  createTopics: true
  pitr:
    startTime: "$pstart_iso"
    endTimestamp: $pend
  topicMapping:
$(mapping -pitr)
YAML
cat > "$demo/restore-fs.yaml" <<YAML
apiVersion: kafka.oso.sh/v1alpha1
kind: KafkaRestore
metadata:
  name: demo-full
spec:
  backupRef:
    name: demo-fs
  kafkaCluster:
    bootstrapServers: ["$KBO_KAFKA_BOOTSTRAP"]
  createTopics: true
  topicMapping:
$(mapping -restored)
YAML

echo; echo "== plan of the filesystem backup (kubectl-kafkabackup plan, writes nothing)"
"$plugin" plan -f "$demo/backup-fs.yaml"
echo "== backup to the local filesystem ($demo/repo)"
"$bin" run --no-progress -f "$demo/backup-fs.yaml"
echo "== backup to S3 (moto, credentials checked)"
"$bin" run --no-progress -f "$demo/backup-s3.yaml"
echo; echo "== plan of the point-in-time restore from S3"
"$plugin" plan -f "$demo/restore-s3-pitr.yaml" -f "$demo/backup-s3.yaml"
echo "== restore from S3, window $pstart_iso .. $pend (epoch ms), under new names *-pitr"
"$bin" run --no-progress -f "$demo/restore-s3-pitr.yaml" -f "$demo/backup-s3.yaml"
echo "== restore everything from the filesystem backup under new names *-restored"
"$bin" run --no-progress -f "$demo/restore-fs.yaml" -f "$demo/backup-fs.yaml"

src=$(echo $topics | tr ' ' ,)
echo; echo "== verification with confluent-kafka: full restore"
"$KBO_PYTHON" testenv/kbo_data.py compare --bootstrap "$KBO_KAFKA_BOOTSTRAP" --source-topics "$src" \
  --target-topics "$(for t in $topics; do printf '%s-restored,' "$t"; done | sed 's/,$//')"
echo; echo "== verification with confluent-kafka: point-in-time restore"
"$KBO_PYTHON" testenv/kbo_data.py compare --bootstrap "$KBO_KAFKA_BOOTSTRAP" --source-topics "$src" \
  --target-topics "$(for t in $topics; do printf '%s-pitr,' "$t"; done | sed 's/,$//')" --pitr-start "$pstart" --pitr-end "$pend"
echo; echo "demo: OK (files in $demo)"
