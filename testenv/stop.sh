#!/usr/bin/env bash
# Stops the peers started by start.sh, by the PIDs it recorded.
# `stop.sh --storage-only` stops only Azurite and fake-gcs-server.
here=$(cd "$(dirname "$0")" && pwd)
pids=("$here"/run/*.pid)
[ "${1:-}" = --storage-only ] && pids=("$here/run/azurite.pid" "$here/run/fake-gcs.pid")
for f in "${pids[@]}"; do
  [ -f "$f" ] || continue
  pid=$(cat "$f"); kill "$pid" 2>/dev/null && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  # A large broker takes seconds to exit even after SIGKILL (it frees GBs): wait until it is
  # gone, so that a start.sh right after finds its port free.
  kill -9 "$pid" 2>/dev/null && for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$f"
done
echo "testenv: stopped"
