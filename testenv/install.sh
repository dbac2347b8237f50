#!/usr/bin/env bash
# Installs the test peers (pinned) into testenv/.venv. Idempotent: a second run does nothing
# when the pinned versions are already there.
#   noida-db 0.2.3      Kafka-protocol broker (one prebuilt binary shipped in the wheel)
#   moto[server] 5.2.5  S3 server (credential checking switched on by start.sh)
#   confluent-kafka     librdkafka-based client, the "client that is not ours" for data checks
#   boto3               to create moto's IAM key pair
# tansu (the second, independent broker) is opt-in: KBO_WITH_TANSU=1 (a 12-22 min cargo install).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv="$here/.venv"
stamp="$venv/.kbo-pins"
pins="noida-db==0.2.3 moto[server]==5.2.5 confluent-kafka==2.16.1 boto3==1.44.5"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$pins" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  echo "$pins" > "$stamp"
fi
if [ "${KBO_WITH_TANSU:-0}" = 1 ] && ! [ -x "$here/.tansu/bin/tansu" ]; then
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --root "$here/.tansu"
fi
echo "testenv: peers installed in $venv"
