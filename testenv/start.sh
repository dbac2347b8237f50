#!/usr/bin/env bash
# Starts the test peers on loopback and writes their endpoints to testenv/env (sourceable):
#   KBO_KAFKA_BOOTSTRAP  noida-db Kafka listener      (port KBO_KAFKA_PORT, default 19092)
#   KBO_S3_ENDPOINT      moto S3 server, auth checked (port KBO_S3_PORT, default 19000)
#   KBO_S3_BUCKET, KBO_S3_ACCESS_KEY, KBO_S3_SECRET_KEY, KBO_S3_REGION
# PIDs go to testenv/run/*.pid; stop.sh kills exactly those. Runs install.sh first (idempotent).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
"$here/install.sh" >/dev/null
"$here/stop.sh" >/dev/null 2>&1 || true
venv="$here/.venv"; run="$here/run"; mkdir -p "$run"
kport=${KBO_KAFKA_PORT:-19092}; sport=${KBO_S3_PORT:-19000}

wait_port() { # host port seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && { exec 3>&- 3<&-; return 0; }
    sleep 0.1
  done
  echo "testenv: nothing listening on $1:$2 after $3 s" >&2; return 1
}

for port in "$kport" "$sport"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "testenv: port $port is already in use (other test peers?): stop them, or set KBO_KAFKA_PORT / KBO_S3_PORT" >&2
    exit 1
  fi
done

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
