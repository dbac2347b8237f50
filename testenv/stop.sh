#!/usr/bin/env bash
# Stops the peers started by start.sh, by the PIDs it recorded.
# `stop.sh --storage-only` stops only Azurite and fake-gcs-server.
here=$(cd "$(dirname "$0")" && pwd)
pids=("$here"/run/*.pid)
[ "${1:-}" = --storage-only ] && pids=("$here/run/azurite.pid" "$here/run/fake-gcs.pid")
for f in "${pids[@]}"; do
  [ -f "$f" ] || continue
  pid=$(cat "$f"); kill "$pid" 2>/dev/null && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null; rm -f "$f"
done
echo "testenv: stopped"
