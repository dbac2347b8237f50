# bench/s3s.sh - sourced by bench/run.sh and bench/recompress.sh (`--storage s3s`): a private
# s3s-fs S3 server (SigV4 checked, objects as plain files, one directory per bucket).
#
#   s3s_start ROOT PORT BUCKET...   installs s3s-fs S3S_VERSION into $TESTENV/.bin on first use
#                                   (`cargo install`, a few minutes), creates the buckets as
#                                   directories under ROOT, starts the server on 127.0.0.1:PORT
#                                   and sets KBO_S3_ENDPOINT, KBO_S3_REGION, KBO_S3_ACCESS_KEY,
#                                   KBO_S3_SECRET_KEY; its pid is appended to PIDS.
# Needs from the caller: TESTENV, PY, WORK, PIDS, and the functions log, die, show_log.
S3S_VERSION=0.14.1

s3s_start() {
  local root=$1 port=$2 bin=$TESTENV/.bin/s3s-fs b
  shift 2
  if [ ! -x "$bin" ] || [ "$(cat "$bin.version" 2>/dev/null)" != "$S3S_VERSION" ]; then
    log "installing s3s-fs $S3S_VERSION into $TESTENV/.bin (cargo install, a few minutes)"
    cargo install s3s-fs --version "$S3S_VERSION" --features binary --locked --root "$WORK/s3s-install" \
      >"$WORK/s3s-install.log" 2>&1 || { show_log "$WORK/s3s-install.log"; die "cargo install s3s-fs failed"; }
    mkdir -p "$TESTENV/.bin"
    mv "$WORK/s3s-install/bin/s3s-fs" "$bin"
    echo "$S3S_VERSION" >"$bin.version"
    rm -rf "$WORK/s3s-install"
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port is in use: choose another --port"; fi
  mkdir -p "$root"
  for b in "$@"; do mkdir -p "$root/$b"; done
  KBO_S3_REGION=us-east-1 KBO_S3_ENDPOINT=http://127.0.0.1:$port
  KBO_S3_ACCESS_KEY=benchkey KBO_S3_SECRET_KEY=benchsecret-$RANDOM$RANDOM
  "$bin" --host 127.0.0.1 --port "$port" --access-key "$KBO_S3_ACCESS_KEY" \
    --secret-key "$KBO_S3_SECRET_KEY" "$root" >"$WORK/s3s.log" 2>&1 &
  PIDS+=("$!")
  local pid=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { show_log "$WORK/s3s.log"; die "s3s-fs does not listen on $port"; }
  log "s3s-fs $S3S_VERSION on $KBO_S3_ENDPOINT (pid $pid), objects in $root"
}

# s3s_storage_yaml BUCKET PREFIX SECRET: the KafkaBackup storage block for that bucket
s3s_storage_yaml() {
  cat <<YAML
  storage:
    storageType: s3
    s3:
      bucket: "$1"
      region: "$KBO_S3_REGION"
      endpoint: "$KBO_S3_ENDPOINT"
      prefix: "$2"
      pathStyle: true
      allowHttp: true
      credentialsSecret: {name: $3}
---
apiVersion: v1
kind: Secret
metadata: {name: $3}
stringData:
  AWS_ACCESS_KEY_ID: "$KBO_S3_ACCESS_KEY"
  AWS_SECRET_ACCESS_KEY: "$KBO_S3_SECRET_KEY"
YAML
}
